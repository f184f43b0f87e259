//go:build lab

package lab_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/belay-sh/belay/failover"
	"github.com/belay-sh/belay/internal/labapp"
	"github.com/belay-sh/belay/internal/labtest"
	"github.com/belay-sh/belay/internal/opsenv"
	"github.com/belay-sh/belay/lab"
)

// logWriter sends the switch's progress lines to the test log.
type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestLabCellsSiteSwitch: the cells stack (lab/cells-stack.yaml) switches
// sites and back. Shops assigned to c1 and c2, one of each with data, then
// `failover site --to standby` (root steps through `sudo -n` as the deploy
// user, as on a cloud): every mapped shop answers through the standby router
// from its cell (the primary cells are fenced: their VIPs are gone), the
// data written before is there; a write on the standby site; then `--to
// primary`: every shop answers through the router VIP again, both writes
// included. Takes 10-20 min (the way back restores the cluster).
func TestLabCellsSiteSwitch(t *testing.T) {
	inv := labInventory(t)
	if os.Getenv("BELAY_INVENTORY") == "" {
		t.Setenv("BELAY_INVENTORY", "lab")
	}
	app := appName()
	a := inv.App(app)
	if a == nil || a.Router == nil || a.Router.Standby == "" || len(a.Cells) < 2 {
		t.Fatalf("inventory app %s: want cells c1, c2 and a router tier with a standby router", app)
	}
	sr := inv.Host(a.Router.Standby)
	if sr == nil {
		t.Fatalf("standby router %q not in the inventory", a.Router.Standby)
	}
	standbyRouter := sr.PrivateAddress + ":80"
	vip := a.Router.VIP + ":80"
	run := time.Now().Unix() % 100000

	// Every standby database answers, in recovery: the stack's and each
	// dedicated cell's own, whose first backup (and so its restore) comes
	// minutes after a fresh lab up, once its pair's primary answers.
	standbyDBs := []string{inv.Database.Standby}
	for _, c := range a.Cells {
		if c.Dedicated() {
			standbyDBs = append(standbyDBs, c.StandbyDB)
		}
	}
	for _, h := range standbyDBs {
		eventually(t, 10*time.Minute, "standby database "+h+" restored and replaying", func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			out, err := lab.Console(ctx, lab.DefaultPaths, nil, h, "runuser", "-u", "postgres", "--", "psql", "-h", "/var/run/postgresql", "-AtXc", "SELECT pg_is_in_recovery()")
			if err != nil || strings.TrimSpace(string(out)) != "t" {
				return fmt.Errorf("in recovery: %q (%v)", strings.TrimSpace(string(out)), err)
			}
			return nil
		})
	}

	// A release on every cell's servers, the standby servers included (a
	// deploy uploads there and switches `current`; the unit starts at the switch).
	release := fmt.Sprintf("site%d", run)
	belayBin := belayBinary(t)
	if _, err := belayBin("deploy", "--app", app, "--artifact", labtest.LabAppTarball(t, release), "--release", release,
		"--steps", "none", "--pause", "0", "--health-timeout", "30s", "--wave-size", "2"); err != nil {
		t.Fatalf("deploying the lab app to every cell: %v", err)
	}

	cellOf := map[string]string{}
	var shops []string
	for i := 0; i < 10; i++ {
		cell := []string{"c1", "c2"}[i%2]
		d := fmt.Sprintf("site%d-%d.%s", run, i, shopZone)
		belay(t, "assign", d, "--app", app, "--cell", cell)
		cellOf[d] = cell
		shops = append(shops, d)
	}
	before := map[string][]byte{shops[0]: []byte("written before the switch to c1 " + release), shops[1]: []byte("written before the switch to c2 " + release)}
	for d, b := range before {
		if err := send(http.MethodPut, vip, d, b); err != nil {
			t.Fatal(err)
		}
	}
	check := func(what, addr string, data map[string][]byte) {
		t.Helper()
		for _, d := range shops {
			eventually(t, time.Minute, fmt.Sprintf("%s: %s through %s", what, d, addr), func() error {
				code, cell, _, err := get(addr, d, "/")
				if err != nil || code != 200 || cell != cellOf[d] {
					return fmt.Errorf("%d cell %q %v, want 200 from %s", code, cell, err, cellOf[d])
				}
				return nil
			})
		}
		for d, want := range data {
			if code, cell, body, err := get(addr, d, "/data?shop="+d); err != nil || code != 200 || cell != cellOf[d] || body != string(want) {
				t.Fatalf("%s: %s's data through %s: %d cell %q %v, body %q, want %q", what, d, addr, code, cell, err, body, want)
			}
		}
	}
	check("before the switch", vip, before)

	// Let the WAL of the assignments and writes reach the repository (the
	// cells stack's archive_timeout is 30 s): the standby replays from it.
	time.Sleep(35 * time.Second)

	tg, err := opsenv.Open(inv, opsenv.Flags{}, os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tg.Close)
	tg.Hosts.Root = nil // sudo -n over SSH, as on a cloud stack: the rendered sudoers must allow every root step
	sw := tg.SiteSwitch(opsenv.DNSFlags{}, filepath.Join(t.TempDir(), "failover.json"))
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	start := time.Now()
	facts, err := sw(ctx, logWriter{t}, failover.ToStandby, false)
	if err != nil {
		t.Fatalf("failover site --to standby: %v (the stack may be half switched: run `belay failover site --to standby` to finish, then --to primary)", err)
	}
	t.Logf("switch to the standby site: %s; facts %v", time.Since(start).Round(time.Second), facts)
	back := false
	t.Cleanup(func() {
		if back {
			return
		}
		if _, err := sw(context.Background(), logWriter{t}, failover.ToPrimary, false); err != nil {
			t.Errorf("way back after a failure: %v (run `belay failover site --to primary`)", err)
		}
	})

	for _, c := range a.Cells {
		if code, _, _, err := get(c.VIP+":80", shops[0], "/"); err == nil {
			t.Errorf("cell %s's VIP %s answers %d after the switch: its pair was not fenced", c.Name, c.VIP, code)
		}
	}
	check("on the standby site", standbyRouter, before)
	// Each cell's standby server serves its shops itself (the standby
	// router's cells.conf points there).
	for _, c := range a.Cells {
		h := inv.Host(c.Standby)
		for d, want := range before {
			if cellOf[d] != c.Name {
				continue
			}
			req, _ := http.NewRequest(http.MethodGet, "http://"+h.PrivateAddress+":80/data?shop="+d, nil)
			req.Host = d
			resp, err := client.Do(req)
			if err != nil {
				t.Fatalf("cell %s's standby server %s: %v", c.Name, c.Standby, err)
			}
			var b bytes.Buffer
			_, _ = b.ReadFrom(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || b.String() != string(want) || resp.Header.Get(labapp.HeaderRelease) != release {
				t.Errorf("cell %s's standby server %s for %s: %d release %q body %q", c.Name, c.Standby, d, resp.StatusCode, resp.Header.Get(labapp.HeaderRelease), b.String())
			}
		}
	}
	after := map[string][]byte{}
	for d, b := range before {
		extra := []byte(" + written on the standby site")
		if err := send(http.MethodPost, standbyRouter, d, extra); err != nil {
			t.Fatal(err)
		}
		after[d] = append(append([]byte{}, b...), extra...)
	}
	check("standby write", standbyRouter, after)

	start = time.Now()
	facts, err = sw(ctx, logWriter{t}, failover.ToPrimary, false)
	back = err == nil
	if err != nil {
		t.Fatalf("failover site --to primary: %v", err)
	}
	t.Logf("way back: %s (downtime %s)", time.Since(start).Round(time.Second), facts["downtime"])
	check("back on the primary site", vip, after)
}
