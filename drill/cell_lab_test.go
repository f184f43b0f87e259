//go:build lab

package drill_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/belay-sh/belay/drill"
	"github.com/belay-sh/belay/internal/labtest"
	"github.com/belay-sh/belay/internal/shq"
	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/router"
)

// The cell drill on the cells lab stack. Bring it up first, then run only this:
//
//	belay lab up --stack lab/cells-stack.yaml
//	go test -tags lab -count=1 -timeout 30m -run TestLabCellDrill ./drill/
//
// It deploys the lab app to every cell with the real belay binary (as a user
// would: `belay deploy`), maps 100 shops to each cell through the router
// helper (belay host shop-db, as `belay shop assign`), then kills cell c2's
// app servers under load: c1's shops must see 0 errors, c2's the router's
// clean 503, and c2 must serve again after the heal. Then c2's database, with
// the load on /data: the lab app reads each shop's data (the Host) from its
// cell's database there, so c2's shops must feel the kill, c1's must not,
// and c2 must answer again after the heal.
func TestLabCellDrill(t *testing.T) {
	env := labEnv(t)
	a := env.Inv.App("shop")
	if a == nil || len(a.Cells) < 2 || a.Router == nil {
		t.Skip("the lab is not the cells stack (belay lab up --stack lab/cells-stack.yaml)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	deployLabApp(t, a)
	mapShops(t, ctx, env, a, 100)

	t.Run("kill app", func(t *testing.T) {
		rep, err := drill.ExecuteCell(ctx, env, drill.CellOptions{App: "shop", Cell: "c2", Kill: drill.CellKillApp, Duration: 20 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		f := checkCellReport(t, rep)
		c2 := f.Cells[1]
		if c2.CleanDown == 0 || f.FirstCleanDown <= 0 || f.FirstCleanDown > 10*time.Second {
			t.Errorf("c2: %d clean 503, first after %s: want some, within 10 s", c2.CleanDown, f.FirstCleanDown)
		}
	})
	t.Run("kill db", func(t *testing.T) {
		rep, err := drill.ExecuteCell(ctx, env, drill.CellOptions{App: "shop", Cell: "c2", Kill: drill.CellKillDB, Duration: 10 * time.Second, Path: "/data"})
		if err != nil {
			t.Fatal(err)
		}
		f := checkCellReport(t, rep)
		if c2 := f.Cells[1]; !f.FaultSeen || c2.Requests == c2.OK {
			t.Errorf("c2: %d of %d requests answered, fault seen %v: the load on /data must feel c2's database going away", c2.OK, c2.Requests, f.FaultSeen)
		}
		if !f.Recovered {
			t.Errorf("c2's shops did not answer again after the database came back")
		}
	})
}

// checkCellReport fails unless the run passed with every cell but c2 at
// 100 % from a real load, and logs the per-cell figures.
func checkCellReport(t *testing.T, rep *drill.Report) *drill.CellFigures {
	t.Helper()
	run := rep.Runs[0]
	f := run.Cells
	if f == nil {
		t.Fatalf("no cell figures: %s", run.Error)
	}
	for _, st := range f.Cells {
		t.Logf("cell %s: %d shops, %d requests, %.2f %% answered, %d clean 503, errors %v, in flight %d", st.Cell, st.Shops, st.Requests, st.SuccessRate, st.CleanDown, st.Reasons, st.InFlight)
	}
	t.Logf("first clean 503 after %s, recovery %s (recovered %v), warnings %q", f.FirstCleanDown, f.Recovery, f.Recovered, f.Warnings)
	if !run.OK {
		t.Fatalf("drill failed: %s (notes: %v)", run.Error, run.Notes)
	}
	c1 := f.Cells[0]
	if c1.Cell != "c1" || c1.Requests < 200 || c1.Errors != 0 || c1.CleanDown != 0 || c1.SuccessRate != 100 {
		t.Errorf("c1: %+v, want >= 200 requests, 0 errors", c1)
	}
	return f
}

// deployLabApp deploys the lab app to every cell of a with the real belay
// binary: no canary steps (the test is about the drill, not the verdict).
func deployLabApp(t *testing.T, a *inventory.App) {
	t.Helper()
	release := fmt.Sprintf("celldrill%d", time.Now().Unix()%100000)
	r := labtest.Belay(t, labtest.BuildBelay(t), 15*time.Minute, "deploy", "--app", a.Name,
		"--artifact", labtest.LabAppTarball(t, release), "--release", release,
		"--steps", "none", "--pause", "0", "--health-timeout", "30s", "--wave-size", "2")
	if r.Err != nil {
		t.Fatalf("deploying the lab app to every cell: %v", r.Err)
	}
}

// mapShops assigns n shops to every cell through the router helper and waits
// until the router's cached mapping holds them all.
func mapShops(t *testing.T, ctx context.Context, env *drill.Env, a *inventory.App, n int) {
	t.Helper()
	rt := a.Router.Hosts[0]
	for _, c := range a.Cells {
		for i := 0; i < n; i++ {
			req, _ := json.Marshal(map[string]string{"op": "assign", "domain": fmt.Sprintf("s%03d-%s.shops.lab.belay.test", i, c.Name), "cell": c.Name, "actor": "drill lab test"})
			cmd := "printf '%s' " + shq.Quote(string(req)) + " | " + shq.Join("sudo", "-n", "/usr/local/bin/belay", "host", "shop-db", "--app", a.Name)
			out, err := env.Hosts.Run(ctx, rt, cmd)
			if err != nil || strings.Contains(string(out), `"error"`) {
				t.Fatalf("assign on %s: %v %s", rt, err, out)
			}
		}
	}
	deadline := time.Now().Add(time.Minute)
	for {
		out, err := env.Hosts.Run(ctx, rt, drill.MappingCommand(a.Name))
		var m router.Mapping
		if err == nil && json.Unmarshal(out, &m) == nil && len(m.Shops) >= n*len(a.Cells) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("router %s's mapping did not get the %d shops within a minute (%v): %.300s", rt, n*len(a.Cells), err, out)
		}
		time.Sleep(time.Second)
	}
}
