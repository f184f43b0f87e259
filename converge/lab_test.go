//go:build lab

// Lab test of belay converge: the real binary converges the running lab (it
// must have been created by `belay lab up` from this build, so every machine
// has the converge key and the helper's sudoers entry) after config edits, and
// the machines are inspected through the lab console.
package converge_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/belay-sh/belay/converge"
	"github.com/belay-sh/belay/internal/cli"
	"github.com/belay-sh/belay/internal/labtest"
	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/lab"
	"github.com/belay-sh/belay/roles"
)

// labUnits are the services whose restarts the test watches on every machine.
var labUnits = []string{"ssh.service", "nginx.service", "keepalived.service", "pgautofailover.service",
	"postgresql.service", "systemd-journald.service", "belay-route-watch.service", "nftables.service"}

func console(t *testing.T, host string, argv ...string) string {
	t.Helper()
	out, err := lab.Console(context.Background(), lab.DefaultPaths, nil, host, argv...)
	if err != nil {
		t.Fatalf("%s: %v: %v\n%s", host, argv, err, out)
	}
	return string(out)
}

// starts is each watched unit's ActiveEnterTimestampMonotonic: it only moves when the unit (re)starts.
func starts(t *testing.T, host string, units []string) map[string]string {
	t.Helper()
	out := console(t, host, append([]string{"systemctl", "show", "-p", "Id,ActiveEnterTimestampMonotonic"}, units...)...)
	m := map[string]string{}
	var id string
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(l, "Id="); ok {
			id = v
		} else if v, ok := strings.CutPrefix(l, "ActiveEnterTimestampMonotonic="); ok && id != "" {
			m[id] = v
		}
	}
	return m
}

// hashes is sha256 of every file converge manages on host.
func hashes(t *testing.T, host string, files []string) map[string]string {
	t.Helper()
	out, _ := lab.Console(context.Background(), lab.DefaultPaths, nil, host, append([]string{"sha256sum"}, files...)...)
	m := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if sum, p, ok := strings.Cut(l, "  "); ok {
			m[p] = sum
		}
	}
	return m
}

type snap struct {
	files  map[string]map[string]string
	starts map[string]map[string]string
}

func take(t *testing.T, hosts []string, files map[string][]string) snap {
	s := snap{files: map[string]map[string]string{}, starts: map[string]map[string]string{}}
	for _, h := range hosts {
		units := append([]string{}, labUnits...)
		s.files[h], s.starts[h] = hashes(t, h, files[h]), starts(t, h, units)
	}
	return s
}

func changed(before, after map[string]string) []string {
	var out []string
	for k, v := range after {
		if before[k] != v {
			out = append(out, k)
		}
	}
	for k := range before {
		if _, ok := after[k]; !ok {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func TestLabConverge(t *testing.T) {
	inv, err := inventory.Load(cli.DefaultInventory)
	if err != nil {
		t.Skipf("needs `belay lab up`: %v", err)
	}
	dir := t.TempDir()
	bin := labtest.BuildBelay(t)
	// The stack the lab was built from (default: the embedded one).
	stack := os.Getenv("BELAY_LAB_STACK")
	base := []byte(lab.DefaultStack())
	if stack != "" {
		if base, err = os.ReadFile(stack); err != nil {
			t.Fatal(err)
		}
	}
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	baseFile := write("base.yaml", string(base))
	keyFile := write("key.yaml", strings.Replace(string(base), "    deployUser: deploy\n", "    deployUser: deploy\n    sshKeys: [\""+secondKey+"\"]\n", 1))
	if !strings.Contains(string(base), "    deployUser: deploy\n") {
		t.Fatal("the stack file has no `deployUser: deploy` line to add a key after")
	}

	specs, err := lab.HostSpecs(lab.DefaultPaths, lab.StackInput{File: baseFile})
	if err != nil {
		t.Fatal(err)
	}
	var hosts []string
	files := map[string][]string{}
	for _, h := range specs.Order {
		if inv.Host(h) == nil {
			continue
		}
		hosts = append(hosts, h)
		ud, err := roles.Render(specs.Hosts[h])
		if err != nil {
			t.Fatal(err)
		}
		ch, err := converge.FromUserData(h, ud)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range ch.Files {
			files[h] = append(files[h], f.Path)
		}
	}

	converge := func(t *testing.T, args ...string) (Report, time.Duration) {
		t.Helper()
		t0 := time.Now()
		out, err := exec.Command(bin, append([]string{"converge", "--json", "--parallel", "8"}, args...)...).Output()
		d := time.Since(t0)
		var rep Report
		if jerr := json.Unmarshal(out, &rep); jerr != nil || err != nil || !rep.OK {
			t.Fatalf("belay converge %v: %v %v\n%s", args, err, jerr, out)
		}
		return rep, d
	}

	// Start from the lab's own config (a no-op on a fresh lab).
	converge(t, "--stack-file", baseFile)
	primary := primaryDB(t, inv)
	row := fmt.Sprintf("converge-%d", time.Now().UnixNano())
	psql(t, primary, "CREATE TABLE IF NOT EXISTS belay_converge_probe (v text); INSERT INTO belay_converge_probe VALUES ('"+row+"')")

	t.Run("dry run changes nothing", func(t *testing.T) {
		before := take(t, hosts, files)
		out, err := exec.Command(bin, "converge", "--stack-file", keyFile, "--dry-run").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "+"+secondKey) {
			t.Fatalf("dry run: %v\n%s", err, out)
		}
		after := take(t, hosts, files)
		for _, h := range hosts {
			if c := changed(before.files[h], after.files[h]); len(c) > 0 {
				t.Errorf("%s: dry run changed %v", h, c)
			}
		}
	})

	t.Run("one admin key", func(t *testing.T) {
		before := take(t, hosts, files)
		rep, d := converge(t, "--stack-file", keyFile)
		t.Logf("one-key change across %d machines: %s wall time (belay converge reports %d ms; target <= 10 s)", len(hosts), d.Round(time.Millisecond), rep.Millis)
		after := take(t, hosts, files)
		for _, h := range hosts {
			if c := changed(before.files[h], after.files[h]); strings.Join(c, " ") != "/home/deploy/.ssh/authorized_keys" {
				t.Errorf("%s: changed %v, expected only the deploy user's authorized_keys", h, c)
			}
			if c := changed(before.starts[h], after.starts[h]); len(c) > 0 {
				t.Errorf("%s: restarted %v", h, c)
			}
		}
		out := console(t, hosts[0], "cat", "/home/deploy/.ssh/authorized_keys")
		if !strings.Contains(out, secondKey) {
			t.Errorf("new key not on %s:\n%s", hosts[0], out)
		}
	})

	t.Run("app added", func(t *testing.T) {
		before := take(t, hosts, files)
		rep, _ := converge(t, "--stack-file", keyFile, "--apps", "2")
		after := take(t, hosts, files)
		want := map[string]bool{inv.Backup.Host: true, inv.Database.Standby: true}
		for _, n := range inv.Database.Nodes {
			want[n] = true
		}
		for _, h := range rep.Hosts {
			if h.Status == StatusSkipped {
				continue
			}
			if (h.Status == StatusChanged) != want[h.Host] {
				t.Errorf("%s: %s, expected a change only on the DB nodes, the standby DB and the backup host", h.Host, h.Status)
			}
		}
		for _, h := range hosts {
			c := changed(before.files[h], after.files[h])
			if (len(c) > 0) != want[h] {
				t.Errorf("%s: changed %v", h, c)
			}
			for _, p := range c {
				if !strings.Contains(p, "pg_hba") && p != "/etc/nftables.conf" && !strings.Contains(p, "restic") {
					t.Errorf("%s: unexpected change to %s", h, p)
				}
			}
			if r := changed(before.starts[h], after.starts[h]); len(r) > 0 {
				t.Errorf("%s: restarted %v (PostgreSQL and every service must keep running)", h, r)
			}
		}
		for _, n := range inv.Database.Nodes {
			if out := console(t, n, "runuser", "-u", "postgres", "--", "psql", "-p", "5432", "-d", "postgres", "-AtXc", "SELECT count(*) FROM pg_hba_file_rules WHERE error IS NOT NULL"); strings.TrimSpace(out) != "0" {
				t.Errorf("%s: pg_hba has errors: %s", n, out)
			}
		}
	})

	t.Run("data kept and back to the lab's config", func(t *testing.T) {
		if got := psql(t, primaryDB(t, inv), "SELECT count(*) FROM belay_converge_probe WHERE v = '"+row+"'"); got != "1" {
			t.Errorf("the row written before converging: count %q, expected 1", got)
		}
		converge(t, "--stack-file", baseFile)
		rep, _ := converge(t, "--stack-file", baseFile)
		for _, h := range rep.Hosts {
			if h.Status != StatusUnchanged && h.Status != StatusSkipped {
				t.Errorf("%s: %s after converging back twice, expected unchanged", h.Host, h.Status)
			}
		}
	})
}

// Report mirrors belay converge --json (the internal type lives in internal/cli/converge).
type Report struct {
	OK     bool  `json:"ok"`
	Millis int64 `json:"millis"`
	Hosts  []struct {
		Host   string `json:"host"`
		Status string `json:"status"`
	} `json:"hosts"`
}

const (
	StatusChanged   = "converged"
	StatusUnchanged = "unchanged"
	StatusSkipped   = "skipped"
)

func psql(t *testing.T, host, sql string) string {
	t.Helper()
	return strings.TrimSpace(console(t, host, "runuser", "-u", "postgres", "--", "psql", "-h", "/var/run/postgresql", "-p", "5432", "-d", "app", "-AtXc", sql))
}

func primaryDB(t *testing.T, inv *inventory.Inventory) string {
	t.Helper()
	for _, n := range inv.Database.Nodes {
		out, err := lab.Console(context.Background(), lab.DefaultPaths, nil, n, "runuser", "-u", "postgres", "--", "psql", "-h", "/var/run/postgresql", "-p", "5432", "-d", "postgres", "-AtXc", "SELECT pg_is_in_recovery()")
		if err == nil && strings.TrimSpace(string(out)) == "f" {
			return n
		}
	}
	t.Fatal("no primary DB node")
	return ""
}
