package converge_test

import (
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/belay-sh/belay/converge"
	"github.com/belay-sh/belay/hostspec"
	"github.com/belay-sh/belay/lab"
	"github.com/belay-sh/belay/roles"
	"github.com/belay-sh/belay/topology"
)

const (
	testSeed  = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	adminKey  = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIChIgJ6+x/s9NpdeqMrKwxxyCS68KL8HYo5XvJoE6jYu admin"
	secondKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl second"
)

// hostsFor renders every host of the lab's default stack after edit (a
// replacement applied to the stack file) with apps apps, through the same
// path as belay lab up and belay converge.
func hostsFor(t *testing.T, apps int, edit func(string) string) map[string]converge.Host {
	t.Helper()
	text := string(lab.DefaultStack())
	if edit != nil {
		text = edit(text)
	}
	return hostsForApps(t, text, apps)
}

// hostsForStack renders every host of a stack file's text (its own apps).
func hostsForStack(t *testing.T, text string) map[string]converge.Host {
	t.Helper()
	return hostsForApps(t, text, 0)
}

func hostsForApps(t *testing.T, text string, apps int) map[string]converge.Host {
	t.Helper()
	file := filepath.Join(t.TempDir(), "Pulumi.lab.yaml")
	if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := lab.LoadStack(lab.StackInput{File: file, Apps: apps}, testSeed, adminKey)
	if err != nil {
		t.Fatal(err)
	}
	topo, err := topology.Plan(cfg)
	if err != nil {
		t.Fatal(err)
	}
	env, err := hostspec.DefaultEnv(cfg, topo, true)
	if err != nil {
		t.Fatal(err)
	}
	specs, err := hostspec.Build(cfg, topo, lab.StackName, env)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]converge.Host{}
	for name, s := range specs {
		ud, err := roles.Render(s)
		if err != nil {
			t.Fatal(err)
		}
		h, err := converge.FromUserData(name, ud)
		if err != nil {
			t.Fatal(err)
		}
		out[name] = h
	}
	return out
}

// onDisk is a host as it was left by a converge (or first boot) to h.
func onDisk(h converge.Host) map[string]*converge.Current {
	cur := map[string]*converge.Current{}
	for _, f := range h.Files {
		cur[f.Path] = &converge.Current{Content: f.Content, Owner: f.Owner, Mode: f.Mode}
	}
	return cur
}

// changedPaths plans every host of before (the running stack) towards after.
func changedPaths(before, after map[string]converge.Host) map[string][]string {
	out := map[string][]string{}
	for name, h := range before {
		p := converge.PlanHost(after[name].Files, onDisk(h))
		for _, c := range p.Changes {
			out[name] = append(out[name], c.Path)
		}
	}
	return out
}

func TestPlanOfConfigEdits(t *testing.T) {
	base := hostsFor(t, 0, nil)
	if len(base) != 8 {
		t.Fatalf("lab default stack: %d hosts, expected 8", len(base))
	}
	var all []string
	for n := range base {
		all = append(all, n)
	}
	sort.Strings(all)
	addKey := func(s string) string {
		return strings.Replace(s, "    deployUser: deploy\n", "    deployUser: deploy\n    sshKeys: [\""+secondKey+"\"]\n", 1)
	}
	cases := []struct {
		name  string
		apps  int
		edit  func(string) string
		want  func(host string) []string // expected changed paths per existing host
		check func(t *testing.T, before, after map[string]converge.Host, plans map[string]converge.Plan)
	}{
		{name: "nothing changed", want: func(string) []string { return nil }},
		{name: "one admin key added", edit: addKey,
			want: func(string) []string { return []string{"/home/deploy/.ssh/authorized_keys"} },
			check: func(t *testing.T, _, _ map[string]converge.Host, plans map[string]converge.Plan) {
				for h, p := range plans {
					if len(p.Activate) != 0 || len(p.Validate) != 0 {
						t.Errorf("%s: a new admin key needs no check or reload, planned %v %v", h, p.Validate, p.Activate)
					}
				}
			}},
		{name: "ssh CIDR added", edit: func(s string) string {
			return strings.Replace(s, "    deployUser: deploy\n", "    deployUser: deploy\n    sshCidrs: [\"198.51.100.0/24\"]\n", 1)
		},
			want: func(string) []string { return []string{"/etc/nftables.conf"} },
			check: func(t *testing.T, _, _ map[string]converge.Host, plans map[string]converge.Plan) {
				for h, p := range plans {
					if got := cmds(p.Activate); got != "nft -f /etc/nftables.conf" {
						t.Errorf("%s: activate %q, expected only the firewall reload", h, got)
					}
				}
			}},
		{name: "backup schedule weekly", edit: func(s string) string {
			return strings.Replace(s, "fullEvery: daily", "fullEvery: weekly", 1)
		},
			want: func(h string) []string {
				if h == "backup" {
					// Weekly fulls need daily differentials in between.
					return []string{"/etc/systemd/system/belay-backup-diff.timer", "/etc/systemd/system/belay-backup-full.timer"}
				}
				return nil
			},
			check: func(t *testing.T, _, _ map[string]converge.Host, plans map[string]converge.Plan) {
				want := "systemctl daemon-reload; systemctl restart belay-backup-diff.timer; systemctl restart belay-backup-full.timer"
				if got := cmds(plans["backup"].Activate); got != want {
					t.Errorf("backup: activate %q, expected %q (daemon-reload first, the database untouched)", got, want)
				}
			}},
		{name: "synchronous off", edit: func(s string) string {
			return strings.Replace(s, "synchronous: true", "synchronous: false", 1)
		},
			want: func(h string) []string {
				if h == "db-1" || h == "db-2" {
					return []string{"/usr/local/sbin/belay-db-setup"}
				}
				return nil
			},
			// Only pg_autoctl create's arguments change: nothing to reload,
			// and the operator is told what applies it to the running formation.
			check: func(t *testing.T, _, _ map[string]converge.Host, plans map[string]converge.Plan) {
				for _, h := range []string{"db-1", "db-2"} {
					if got := cmds(plans[h].Activate); got != "" || len(plans[h].Notes) != 1 || !strings.Contains(plans[h].Notes[0], "replication-quorum") {
						t.Errorf("%s: activate %q notes %q, expected no reload and the replication-quorum note", h, got, plans[h].Notes)
					}
				}
			}},
		{name: "archive timeout", edit: func(s string) string {
			return strings.Replace(s, "archiveTimeoutSeconds: 30", "archiveTimeoutSeconds: 60", 1)
		},
			want: func(h string) []string {
				if h == "db-1" || h == "db-2" {
					return []string{"/etc/belay/postgresql/belay.conf"}
				}
				return nil
			},
			check: func(t *testing.T, _, _ map[string]converge.Host, plans map[string]converge.Plan) {
				if got := cmds(plans["db-1"].Activate); got != "runuser -u postgres -- psql -X -q -p 5432 -d postgres -c SELECT pg_reload_conf()" {
					t.Errorf("db-1: activate %q, expected a reload only", got)
				}
			}},
		{name: "app added", apps: 2,
			// The new app's own servers are new hosts (created by up, not
			// converged); existing ones: the DB firewalls and pg_hba admit the
			// new app servers, the backup host gets the app's restic repository.
			want: func(h string) []string {
				switch h {
				case "db-1", "db-2":
					return []string{"/etc/belay/postgresql/pg_hba.belay.conf", "/etc/nftables.conf"}
				case "db-standby":
					return []string{"/etc/belay/postgresql/pg_hba.conf", "/etc/nftables.conf"}
				case "backup":
					// One line of the apps list: the new servers' certificates need nothing else here.
					return []string{"/etc/belay/restic-apps"}
				}
				return nil
			},
			check: func(t *testing.T, _, after map[string]converge.Host, plans map[string]converge.Plan) {
				want := map[string]string{
					"db-1":       "nft -f /etc/nftables.conf; runuser -u postgres -- /usr/local/sbin/belay-db-setup config; runuser -u postgres -- psql -X -q -p 5432 -d postgres -c SELECT pg_reload_conf()",
					"db-standby": "nft -f /etc/nftables.conf; runuser -u postgres -- psql -X -q -p 5432 -d postgres -c SELECT pg_reload_conf()",
					"backup":     "systemctl start --no-block belay-restic-maintain.service",
				}
				for h, w := range want {
					if got := cmds(plans[h].Activate); got != w {
						t.Errorf("%s: activate\n %q, expected\n %q", h, got, w)
					}
				}
				i := slices.IndexFunc(after["backup"].Files, func(f converge.File) bool { return f.Path == "/etc/belay/restic-apps" })
				if i < 0 || !strings.Contains(after["backup"].Files[i].Content, "app2 restic-app2\n") {
					t.Errorf("backup: the restic apps list lacks app2")
				}
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			after := hostsFor(t, c.apps, c.edit)
			got := changedPaths(base, after)
			plans := map[string]converge.Plan{}
			for _, h := range all {
				p := converge.PlanHost(after[h].Files, onDisk(base[h]))
				if len(p.Changes) > 0 {
					plans[h] = p
				}
				if w := c.want(h); !slices.Equal(got[h], w) {
					t.Errorf("%s: changed %q, expected %q", h, got[h], w)
				}
			}
			if c.check != nil {
				c.check(t, base, after, plans)
			}
		})
	}
}

func cmds(cs []converge.Cmd) string {
	var s []string
	for _, c := range cs {
		s = append(s, strings.Join(c, " "))
	}
	return strings.Join(s, "; ")
}
