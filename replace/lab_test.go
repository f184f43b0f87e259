//go:build lab

package replace_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/belay-sh/belay/drill"
	"github.com/belay-sh/belay/hostcmd"
	"github.com/belay-sh/belay/hostrelease"
	"github.com/belay-sh/belay/internal/cli"
	clireplace "github.com/belay-sh/belay/internal/cli/replace"
	"github.com/belay-sh/belay/internal/labtest"
	"github.com/belay-sh/belay/internal/opsenv"
	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/replace"
)

// labTarget opens the running lab (skipped without one unless BELAY_LAB is set).
func labTarget(t *testing.T) (*inventory.Inventory, *opsenv.Target) {
	t.Helper()
	inv, err := inventory.Load(cli.DefaultInventory)
	if err != nil {
		if os.Getenv("BELAY_LAB") == "" {
			t.Skipf("no lab (run `belay lab up`, or set BELAY_LAB=1 to make this a failure): %v", err)
		}
		t.Fatalf("BELAY_LAB is set but the lab inventory is unreadable: %v", err)
	}
	tg, err := opsenv.Open(inv, opsenv.Flags{}, os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tg.Close)
	return inv, tg
}

// belayBinary builds this checkout's belay (`belay lab replace` runs as a subcommand).
func belayBinary(t *testing.T) string {
	t.Helper()
	return labtest.BuildBelay(t)
}

// runReplace runs `belay replace HOST --yes` in process with the production
// wiring, the lab replacement through the built binary.
func runReplace(t *testing.T, inv *inventory.Inventory, host string) {
	t.Helper()
	bin := belayBinary(t)
	var progress bytes.Buffer
	o := &clireplace.Options{
		IO:        cli.IO{Out: &progress, ErrOut: &progress},
		Inventory: func(string) (*inventory.Inventory, error) { return inv, nil },
		Getenv:    os.Getenv, Connect: clireplace.Open,
		Wire: func(o *clireplace.Options, inv *inventory.Inventory, c clireplace.Conn, held []string) (replace.Replacer, replace.Resizer, replace.Converger, error) {
			_, rs, cv, err := clireplace.Wire(o, inv, c, held)
			return replace.LabReplacer{Call: replace.ExecLab(bin, clireplace.ExecCommand(&progress))}, rs, cv, err
		},
		Host: host, Yes: true, InventoryRef: "lab",
	}
	t0 := time.Now()
	if err := clireplace.RunReplace(context.Background(), o); err != nil {
		t.Fatalf("belay replace %s: %v\n%s", host, err, progress.String())
	}
	t.Logf("belay replace %s: %s\n%s", host, time.Since(t0).Round(time.Second), progress.String())
}

// deployLabApp deploys the lab app (deploy/testdata/labapp) to shop with this
// checkout's belay, straight to every server (no canary: the test is about
// the replacement, not the deploy).
func deployLabApp(t *testing.T) {
	t.Helper()
	id := fmt.Sprintf("replace-%d", time.Now().Unix())
	art, err := labtest.Build(t.TempDir(), "labapp", "github.com/belay-sh/belay/deploy/testdata/labapp", "-X main.buildID="+id, "CGO_ENABLED=0")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(belayBinary(t), "deploy", "--inventory", "lab", "--app", "shop", "--artifact", art, "--release", id,
		"--steps", "none", "--pause", "0", "--health-timeout", "20s")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("belay deploy: %v\n%s", err, out)
	}
}

// TestLabReplaceAppServerUnderLoad replaces shop-2 while a browser-like probe
// sends GET / through the VIP every 20 ms: no probe may fail, and afterwards
// shop-2 runs the release shop-1 runs, byte for byte (the copy-release step).
func TestLabReplaceAppServerUnderLoad(t *testing.T) {
	inv, tg := labTarget(t)
	a := inv.App("shop")
	if a == nil || len(a.Domains) == 0 {
		t.Fatal("the lab has no app shop with a domain")
	}
	manifest := func(host string) *hostrelease.Manifest {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		out, err := tg.Hosts.Run(ctx, host, hostrelease.Layout{App: "shop"}.ManifestCommand(""))
		if err != nil {
			t.Fatalf("%s: %v", host, err)
		}
		m, err := hostrelease.ParseManifest(string(out))
		if err != nil {
			t.Fatalf("%s: %v", host, err)
		}
		return m
	}
	if !manifest("shop-1").Present {
		// A fresh lab has no release yet: deploy the lab app, as a user would.
		deployLabApp(t)
	}
	src := manifest("shop-1")
	if !src.Present {
		t.Fatalf("shop-1 has no active release to copy (current %q) after a deploy", src.CurrentPath)
	}
	p := &drill.Prober{URL: "http://" + a.VIP + "/", Host: a.Domains[0], Interval: drill.ProbeInterval, Timeout: drill.ProbeTimeout}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { defer close(done); p.Run(context.Background(), stop) }()
	runReplace(t, inv, "shop-2")
	time.Sleep(2 * time.Second)
	close(stop)
	<-done
	res := p.Results()
	failed := 0
	for _, r := range res {
		if !r.OK {
			failed++
		}
	}
	t.Logf("%d probes through the VIP, %d failed", len(res), failed)
	if len(res) < 100 || failed != 0 {
		t.Errorf("%d of %d probes failed (want 0, and at least 100 probes)", failed, len(res))
	}
	// What `belay status` reads: both servers on the same release, the same bytes.
	got := manifest("shop-2")
	t.Logf("shop-1 runs %s (manifest %s, %d entries, %d bytes); shop-2 runs %s (manifest %s)", src.Current, src.Digest, src.Entries, src.Bytes, got.Current, got.Digest)
	if got.Current != src.Current || got.Digest != src.Digest || got.Sum != src.Sum {
		t.Fatalf("shop-2 runs %q (manifest %s, sum %s) after the replacement, want shop-1's %q (manifest %s, sum %s)",
			got.Current, got.Digest, got.Sum, src.Current, src.Digest, src.Sum)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, h := range []string{"shop-1", "shop-2"} {
		out, err := tg.Hosts.Run(ctx, h, replace.ActiveCmd("shop")+"\nsystemctl is-active belay-app@shop.service")
		if err != nil {
			t.Fatalf("%s: %v", h, err)
		}
		if act := replace.ParseActive(string(out)); act.Release != src.Current || !strings.HasSuffix(strings.TrimSpace(string(out)), "\nactive") {
			t.Errorf("%s: %s, want current %s and belay-app@shop active\n%s", h, act, src.Current, out)
		}
	}
}

// TestLabReplaceDBNodeLosesNoRow replaces db-2 while rows are inserted on the
// primary one by one (each counted once psql acknowledged it): afterwards
// every acknowledged row is there and db-2 is a streaming secondary.
func TestLabReplaceDBNodeLosesNoRow(t *testing.T) {
	inv, tg := labTarget(t)
	f := replace.Observe(context.Background(), tg.Hosts, inv, "db-2")
	primary := ""
	for n, st := range f.DB {
		if st.Reported == "primary" {
			primary = n
		}
	}
	if primary == "" {
		t.Fatalf("no primary: %+v (%s)", f.DB, f.DBError)
	}
	if primary == "db-2" {
		t.Logf("db-2 is the primary: belay replace switches over first")
	}
	table := fmt.Sprintf("belay_replace_drill_%d", time.Now().Unix())
	sql := func(ctx context.Context, host, q string) (string, error) {
		out, err := tg.Hosts.RunRoot(ctx, host, hostcmd.Psql(q)...)
		return strings.TrimSpace(string(out)), err
	}
	if _, err := sql(context.Background(), primary, "CREATE TABLE "+table+" (id bigint PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	var acked []int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for id := int64(1); ctx.Err() == nil; id++ {
			// Whichever node is the primary now (db-2 may be switched away from).
			for _, n := range inv.Database.Nodes {
				cctx, c := context.WithTimeout(ctx, 5*time.Second)
				_, err := sql(cctx, n, "INSERT INTO "+table+" VALUES ("+strconv.FormatInt(id, 10)+")")
				c()
				if err == nil {
					mu.Lock()
					acked = append(acked, id)
					mu.Unlock()
					break
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	runReplace(t, inv, "db-2")
	cancel()
	wg.Wait()
	f = replace.Observe(context.Background(), tg.Hosts, inv, "db-2")
	if st := f.DB["db-2"]; st.Reported != "secondary" || !st.Settled() {
		t.Fatalf("db-2 is %s after the replacement, want secondary", st)
	}
	var now string
	for n, st := range f.DB {
		// Just after its peer rejoined, the primary may still report wait_primary.
		if st.Reported == "primary" || st.Reported == "wait_primary" {
			now = n
		}
	}
	present := map[int64]bool{}
	out, err := sql(context.Background(), now, "SELECT string_agg(id::text, ' ') FROM "+table)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range strings.Fields(out) {
		id, _ := strconv.ParseInt(s, 10, 64)
		present[id] = true
	}
	missing := drill.MissingWrites(acked, present)
	t.Logf("%d acknowledged rows, %d missing", len(acked), len(missing))
	if len(acked) < 50 || len(missing) != 0 {
		t.Fatalf("%d of %d acknowledged rows missing (want 0, and at least 50 rows)", len(missing), len(acked))
	}
	if _, err := sql(context.Background(), now, "DROP TABLE "+table); err != nil {
		t.Logf("drop %s: %v", table, err)
	}
}
