//go:build lab

package lab_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/belay-sh/belay/hostspec"
	"github.com/belay-sh/belay/lab"
)

// console runs argv inside a machine (as root, through its namespaces) and
// returns its trimmed output.
func console(t *testing.T, name string, argv ...string) string {
	t.Helper()
	out, err := lab.Console(context.Background(), paths, nil, name, argv...)
	if err != nil {
		t.Fatalf("%s: %s: %v\n%s", name, strings.Join(argv, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestStateIsOnTheDataDisks: every stateful machine's state directories are
// on its second disk (ext4 on /dev/belay-data), and PostgreSQL's data
// directory on db-1 is there too.
func TestStateIsOnTheDataDisks(t *testing.T) {
	dirs := map[string][]string{
		"db-1":       {hostspec.PgHome},
		"db-2":       {hostspec.PgHome},
		"db-standby": {hostspec.PgHome},
		"backup":     {hostspec.BackupMount, "/var/lib/pgbackrest", hostspec.ResticRepos},
	}
	var dataDir string
	eventually(t, 2*time.Minute, "PostgreSQL answering on db-1", func() error {
		var err error
		dataDir, err = psql("db-1", "show data_directory")
		return err
	})
	dirs["db-1"] = append(dirs["db-1"], dataDir)
	for host, list := range dirs {
		for _, p := range list {
			got := console(t, host, "findmnt", "-n", "-o", "SOURCE,FSTYPE", "--target", p)
			if f := strings.Fields(got); len(f) != 2 || !strings.HasPrefix(f[0], hostspec.LabDataDevice) || f[1] != "ext4" {
				t.Errorf("%s: %s is on %q, want ext4 on %s", host, p, got, hostspec.LabDataDevice)
			}
		}
	}
	for _, stateless := range []string{"db-monitor", "shop-1"} {
		if out, err := lab.Console(context.Background(), paths, nil, stateless, "test", "-e", hostspec.LabDataDevice); err == nil {
			t.Errorf("%s has %s (a stateless machine gets no data disk): %s", stateless, hostspec.LabDataDevice, out)
		}
	}
}

// TestReplaceKeepsTheDataDisk is the deliberate-replacement drill's lab step:
// a row written before `lab replace db-2` is read on db-2 after it rejoins,
// from a disk that was mounted, not reformatted (same filesystem UUID).
func TestReplaceKeepsTheDataDisk(t *testing.T) {
	const host = "db-2"
	uuid := func() string { return console(t, host, "blkid", "-s", "UUID", "-o", "value", hostspec.LabDataDevice) }
	before := uuid()
	table := fmt.Sprintf("belay_replace_%d", time.Now().UnixNano())
	token := fmt.Sprintf("written before replacing %s at %s", host, time.Now().UTC().Format(time.RFC3339Nano))
	var primary string
	eventually(t, 3*time.Minute, "a primary to write to", func() error {
		for _, n := range inv.Database.Nodes {
			if rec, err := psql(n, "select pg_is_in_recovery()"); err == nil && rec == "f" {
				primary = n
				return nil
			}
		}
		return fmt.Errorf("no node of %v is a primary", inv.Database.Nodes)
	})
	if out, err := psql(primary, fmt.Sprintf("create table %s (v text); insert into %s values ('%s')", table, table, token)); err != nil {
		t.Fatalf("write on %s: %v: %s", primary, err, out)
	}
	readRow := func() error {
		got, err := psql(host, "select v from "+table)
		if err != nil {
			return err
		}
		if got != token {
			return fmt.Errorf("%s has %q, want %q", host, got, token)
		}
		return nil
	}
	// The row is on db-2's disk before the replacement (replicated or written there).
	eventually(t, time.Minute, "the row on "+host+" before the replacement", readRow)
	// A marker on the root disk: the replacement must throw it away.
	const marker = "/root/belay-old-root"
	console(t, host, "touch", marker)

	sum, err := lab.Replace(context.Background(), lab.ReplaceOptions{Paths: paths, Host: host, Progress: os.Stderr, CloudInitTimeout: 6 * time.Minute})
	if err != nil {
		t.Fatalf("lab replace %s: %v", host, err)
	}
	t.Logf("lab replace %s: %.1fs, cloud-init %s, data disk %s", host, sum.Seconds, sum.CloudInit, sum.DataDisk)
	if sum.DataDisk == "" {
		t.Errorf("lab replace %s reported no data disk", host)
	}
	if after := uuid(); after != before {
		t.Errorf("%s's data disk was reformatted: UUID %s, was %s", host, after, before)
	}
	if out, err := lab.Console(context.Background(), paths, nil, host, "test", "-e", marker); err == nil {
		t.Errorf("%s: %s survived the replacement: the root was not new (%s)", host, marker, out)
	}
	eventually(t, 5*time.Minute, host+" back in the cluster with the row", readRow)
	eventually(t, 3*time.Minute, "one primary and one replica again", func() error {
		roles := map[string]int{}
		for _, n := range inv.Database.Nodes {
			rec, err := psql(n, "select pg_is_in_recovery()")
			if err != nil {
				return fmt.Errorf("%s: %w", n, err)
			}
			roles[rec]++
		}
		if roles["f"] != 1 || roles["t"] != len(inv.Database.Nodes)-1 {
			return fmt.Errorf("pg_is_in_recovery across %v: %v", inv.Database.Nodes, roles)
		}
		return nil
	})
	if out, err := psql(primaryNow(t), "drop table "+table); err != nil {
		t.Logf("drop %s: %v: %s", table, err, out)
	}
}

func primaryNow(t *testing.T) string {
	t.Helper()
	for _, n := range inv.Database.Nodes {
		if rec, err := psql(n, "select pg_is_in_recovery()"); err == nil && rec == "f" {
			return n
		}
	}
	t.Fatalf("no primary among %v", inv.Database.Nodes)
	return ""
}
