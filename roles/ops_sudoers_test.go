package roles

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/belay-sh/belay/hostcmd"
)

// TestOpsSudoers: every role's host gets a sudoers file that visudo accepts,
// that lists each of hostcmd's commands for that host (escaped), and that
// grants nothing wider (no ALL, no unescaped wildcard).
func TestOpsSudoers(t *testing.T) {
	visudo := tool(t, "visudo")
	specs := map[string]func(testing.TB) *Spec{
		"app":         abAppSpec,
		"standby-app": abStandbyAppSpec,
		"backup":      abBackupSpec,
		"db":          func(t testing.TB) *Spec { return dbSpec(t, "db-1", "10.213.0.10") },
		"db-monitor":  monitorSpec,
		"standby-db":  standbyDBSpec,
		// The site switch fences/starts the routers and the standby router's sync.
		"router":         routerSpec,
		"standby-router": standbyRouterSpec,
		// A dedicated cell's stanza on the repository host, its formation on the monitor.
		"backup-cells": func(t testing.TB) *Spec { return backupSpecCells(t, 2) },
		"db-monitor-formations": func(t testing.TB) *Spec {
			s := monitorSpec(t)
			s.DB.Formations = []string{"shop_c2", "shop_c3"}
			return s
		},
	}
	for name, mk := range specs {
		t.Run(name, func(t *testing.T) {
			s := mk(t)
			c, _ := renderParsed(t, s)
			f := fileAt(t, c, OpsSudoersFile)
			if f.Permissions != "0440" || f.Owner != "root:root" {
				t.Errorf("mode/owner = %s %s", f.Permissions, f.Owner)
			}
			if strings.Contains(f.Content, "ALL=(ALL)") || strings.Contains(f.Content, "NOPASSWD: ALL") {
				t.Errorf("grants everything:\n%s", f.Content)
			}
			for _, line := range strings.Split(f.Content, "\n") {
				for i := 0; i < len(line); i++ {
					if strings.IndexByte("*?[", line[i]) >= 0 && (i == 0 || line[i-1] != '\\') {
						t.Errorf("unescaped wildcard %q in %q", line[i], line)
					}
				}
			}
			h := hostcmd.Host{Roles: s.Roles}
			if s.App != nil {
				h.Apps = []string{s.App.Name}
			}
			if s.Router != nil {
				h.Routers = []string{s.Router.App}
			}
			if s.Backup != nil {
				h.Stanza = s.Backup.Stanza
				for _, c := range s.Backup.Cells {
					h.CellStanzas = append(h.CellStanzas, c.Stanza)
				}
			}
			if s.DB != nil && s.DB.Monitor {
				h.Formations = s.DB.Formations
				if n := strings.Count(f.Content, "FROM pgautofailover.node WHERE formationid \\= "); n != 2*(1+len(h.Formations)) {
					t.Errorf("%d formation-filtered monitor queries, want 2 per formation (default and %v)", n, h.Formations)
				}
			}
			if s.StandbyDB != nil {
				h.Stanza = s.StandbyDB.Stanza
			}
			cmds := hostcmd.ForHost(h)
			if len(cmds) == 0 {
				t.Fatal("no commands for this role")
			}
			for _, argv := range cmds {
				line, err := sudoersCommand(argv)
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(f.Content, line) {
					t.Errorf("lacks %s", line)
				}
			}
			p := writeTemp(t, t.TempDir(), "belay-ops", f.Content, 0o440)
			if out, err := exec.Command(visudo, "-c", "-f", p).CombinedOutput(); err != nil {
				t.Fatalf("visudo -cf: %v\n%s\n%s", err, out, f.Content)
			}
		})
	}
}

func TestSudoersCommand(t *testing.T) {
	tests := []struct {
		argv    []string
		want    string
		wantErr string
	}{
		{[]string{"systemctl", "stop", "pgautofailover*"}, `/usr/bin/systemctl stop pgautofailover\*`, ""},
		{[]string{"runuser", "-u", "postgres", "--", "psql", "-c", "SELECT a::text, b = 'x'"}, `/usr/sbin/runuser -u postgres -- psql -c SELECT a\:\:text\, b \= 'x'`, ""},
		{[]string{"/usr/local/sbin/belay-db-reseed", "primary"}, "/usr/local/sbin/belay-db-reseed primary", ""},
		{[]string{"rm", "-rf", "/"}, "", `no absolute path known for "rm"`},
		{[]string{"systemctl", ""}, "", "cannot be matched exactly"},
		{[]string{"systemctl", "a  b"}, "", "cannot be matched exactly"},
	}
	for _, tc := range tests {
		got, err := sudoersCommand(tc.argv)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%q: err %v, want %q", tc.argv, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q = %q (%v), want %q", tc.argv, got, err, tc.want)
		}
	}
}
