package drill

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/belay-sh/belay/remote/remotetest"
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

// TestCellDrillHealsOnTheNewPrimary: the pair fails over while the cell's
// database is blocked (the block replicates; the old primary refuses the
// unblock while it shuts down): the heal finds the new primary and unblocks
// there, and the drill recovers.
func TestCellDrillHealsOnTheNewPrimary(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the drill's load for a few seconds")
	}
	env, _, _, runner, url := cellEnv(t, true, false)
	c2 := &env.Inv.Apps[0].Cells[1]
	c2.DBNodes, c2.Formation = []string{"shop-c2-db-1", "shop-c2-db-2"}, "shop_c2"
	var failedOver atomic.Bool
	orig := runner.Handle
	runner.Handle = func(c remotetest.Call) ([]byte, error) {
		switch {
		case strings.Contains(c.Cmd, "ALLOW_CONNECTIONS false"):
			failedOver.Store(true)
		case failedOver.Load() && strings.Contains(c.Cmd, "pg_is_in_recovery") && strings.HasPrefix(c.Host, "shop-c2-db-"):
			return []byte(map[bool]string{true: "f\n", false: "t\n"}[c.Host == "shop-c2-db-2"]), nil
		case failedOver.Load() && strings.Contains(c.Cmd, "ALLOW_CONNECTIONS true") && c.Host == "shop-c2-db-1":
			return nil, errors.New("psql: FATAL:  the database system is shutting down")
		}
		return orig(c)
	}
	var progress bytes.Buffer
	env.Progress = &progress
	rep, err := ExecuteCell(context.Background(), env, CellOptions{App: "shop", Cell: "c2", Kill: CellKillDB, Duration: time.Second, URL: url, Interval: 5 * time.Millisecond, RecoverTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if run := rep.Runs[0]; !run.OK {
		t.Fatalf("failed: %s", run.Error)
	}
	calls := fmt.Sprint(runner.Snapshot())
	if !strings.Contains(calls, "shop-c2-db-2 (root): runuser -u postgres -- psql -X -q -t -A -v ON_ERROR_STOP=1 -c ALTER DATABASE \"shop_c2\" WITH ALLOW_CONNECTIONS true") {
		t.Errorf("no unblock on the new primary shop-c2-db-2 in %s", calls)
	}
	if !strings.Contains(progress.String(), "failed over during the fault (primary shop-c2-db-2, was shop-c2-db-1)") {
		t.Errorf("progress:\n%s\nwant the failover during the fault named", progress.String())
	}
}
