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
	"github.com/belay-sh/belay/internal/shq"
	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/router"
)

// The cell drill on the cells lab stack. Bring it up first, then run only this:
//
//	belay lab up --stack lab/cells-stack.yaml
//	go test -tags lab -count=1 -timeout 30m -run TestLabCellDrill ./drill/
//
// It deploys a stand-in release on every cell server, maps 100 shops to each
// cell through the router helper (belay host shop-db, as `belay shop assign`),
// then kills cell c2's app servers under load: c1's shops must see 0 errors,
// c2's the router's clean 503, and c2 must serve again after the heal. Then
// the same with c2's database (the stand-in does not read it: the drill
// must still block and unblock it, confirm only c2's refuses, and keep c1 whole).
func TestLabCellDrill(t *testing.T) {
	env := labEnv(t)
	a := env.Inv.App("shop")
	if a == nil || len(a.Cells) < 2 || a.Router == nil {
		t.Skip("the lab is not the cells stack (belay lab up --stack lab/cells-stack.yaml)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	for _, c := range a.Cells {
		for _, h := range c.Hosts {
			deployCellStandIn(t, ctx, env, h, a)
		}
	}
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
		rep, err := drill.ExecuteCell(ctx, env, drill.CellOptions{App: "shop", Cell: "c2", Kill: drill.CellKillDB, Duration: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		checkCellReport(t, rep)
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

// deployCellStandIn starts a tiny HTTP app as the cell's release (as the
// deploy user, like lab/cellslab): "/" lists a directory, /up answers 200.
func deployCellStandIn(t *testing.T, ctx context.Context, env *drill.Env, host string, a *inventory.App) {
	t.Helper()
	srv := "/srv/" + a.Name
	cmd := fmt.Sprintf(`set -e; d=%[1]s/releases/celldrill; mkdir -p "$d/www"; echo ok > "$d/www/up"; cat >"$d/start" <<'EOF'
#!/bin/sh
exec python3 -m http.server "$PORT" --directory "$(dirname "$0")/www"
EOF
chmod 755 "$d/start"; ln -sfn "$d" %[1]s/current; sudo -n systemctl restart %[2]s`, shq.Quote(srv), shq.Quote("belay-app@"+a.Name+".service"))
	if out, err := env.Hosts.Run(ctx, host, cmd); err != nil {
		t.Fatalf("stand-in on %s: %v\n%s", host, err, out)
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
