package drill

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestCellDrillDedicatedDB: --kill db on a cell with its own pair finds the
// primary among the pair (not the stack's nodes), blocks and unblocks the
// cell's database there, and does not expect the other cells' databases on
// it; the plan names the pair.
func TestCellDrillDedicatedDB(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the drill's load for a few seconds")
	}
	env, _, _, runner, url := cellEnv(t, true, false)
	c2 := &env.Inv.Apps[0].Cells[1]
	c2.DBNodes, c2.Formation = []string{"shop-c2-db-1", "shop-c2-db-2"}, "shop_c2"
	steps, err := CellSteps(env.Inv, "shop", "c2", CellKillDB, true)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, s := range steps {
		if s.ID == "inject" {
			found = true
			if s.Where != "shop-c2-db-1, shop-c2-db-2" {
				t.Errorf("inject step on %q, want the cell's pair", s.Where)
			}
		}
	}
	if !found {
		t.Error("no inject step")
	}
	rep, err := ExecuteCell(context.Background(), env, CellOptions{App: "shop", Cell: "c2", Kill: CellKillDB, Duration: time.Second, URL: url, Interval: 5 * time.Millisecond, RecoverTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if run := rep.Runs[0]; !run.OK {
		t.Fatalf("failed: %s", run.Error)
	}
	calls := fmt.Sprint(runner.Snapshot())
	for _, want := range []string{
		"shop-c2-db-1 (root): runuser -u postgres -- psql -X -q -t -A -v ON_ERROR_STOP=1 -c ALTER DATABASE \"shop_c2\" WITH ALLOW_CONNECTIONS false",
		"shop-c2-db-1 (root): runuser -u postgres -- psql -X -q -t -A -v ON_ERROR_STOP=1 -c ALTER DATABASE \"shop_c2\" WITH ALLOW_CONNECTIONS true",
	} {
		if !strings.Contains(calls, want) {
			t.Errorf("no call %q in %s", want, calls)
		}
	}
	for _, bad := range []string{"db-2 (root): runuser -u postgres -- psql -X -q -t -A -v ON_ERROR_STOP=1 -c ALTER", "shop_c1"} {
		if strings.Contains(strings.ReplaceAll(calls, "shop-c2-db-2", "X"), bad) {
			t.Errorf("unexpected %q in %s", bad, calls)
		}
	}
}
