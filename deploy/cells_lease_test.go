package deploy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/belay-sh/belay/deploy/lease"
	"github.com/belay-sh/belay/deploy/run"
)

// localExec runs lease commands with sh on this machine, one root per host.
func localExec(t *testing.T, hosts ...string) (lease.Exec, map[string]string) {
	t.Helper()
	roots := map[string]string{}
	for _, h := range hosts {
		roots[h] = filepath.Join(t.TempDir(), h)
		os.MkdirAll(roots[h], 0o755)
	}
	return func(ctx context.Context, host, cmd string) ([]byte, int, error) {
		root, ok := roots[host]
		if !ok {
			return nil, -1, fmt.Errorf("host %s: not a test host", host)
		}
		c := exec.CommandContext(ctx, "sh", "-c", cmd)
		c.Env = append(os.Environ(), "BELAY_ROOT="+root)
		c.WaitDelay = 200 * time.Millisecond
		out, err := c.Output()
		if err != nil {
			return out, c.ProcessState.ExitCode(), err
		}
		return out, 0, nil
	}, roots
}

func cellsLeaseDeployer(t *testing.T, n int, exec lease.Exec) (*Deployer, map[string]*Deployer) {
	t.Helper()
	d := &Deployer{Inv: cellsInventory(t, n), App: "shop", Base: "$BELAY_ROOT", SkipStandby: true, leaseExec: exec,
		Actor: Actor{Who: "cells-test", PID: 1}, Runner: &run.Runner{}, LeaseTTL: time.Minute}
	cells := map[string]*Deployer{}
	for i := 1; i <= n; i++ {
		c := fmt.Sprintf("c%d", i)
		cd, err := d.ForCell(c)
		if err != nil {
			t.Fatal(err)
		}
		cells[c] = cd
	}
	return d, cells
}

// TestHoldCellsLeases: a cells deploy takes the lease of every cell it
// touches, in name order, on each cell's own first server; one held by
// another run refuses the whole deploy naming the cell and frees the ones
// already taken.
func TestHoldCellsLeases(t *testing.T) {
	exec, roots := localExec(t, "shop-c1-1", "shop-c1-2", "shop-c2-1", "shop-c2-2", "shop-c3-1", "shop-c3-2")
	_, cells := cellsLeaseDeployer(t, 3, exec)
	ctx, release, err := holdCells(context.Background(), []string{"c1", "c2", "c3"}, cells, "deploy v2")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"c1", "c2", "c3"} {
		if cells[c].held == nil {
			t.Fatalf("cell %s: no fence", c)
		}
		if _, err := os.Stat(filepath.Join(roots["shop-"+c+"-1"], "shop", ".belay", "lease")); err != nil {
			t.Fatalf("cell %s: no lease on its first server: %v", c, err)
		}
		if _, err := os.Stat(filepath.Join(roots["shop-"+c+"-2"], "shop", ".belay", "fence")); err != nil {
			t.Fatalf("cell %s: its second server is not fenced: %v", c, err)
		}
	}
	if ctx.Err() != nil {
		t.Fatal(ctx.Err())
	}
	release()

	// Another run holds c2: refused, naming c2 and its holder; c1 is free again.
	_, other := cellsLeaseDeployer(t, 3, exec)
	other["c2"].Actor.Who = "someone-else"
	oa, _ := other["c2"].app()
	h := other["c2"].holder(oa, "deploy v9")
	if err := h.Take(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, cells = cellsLeaseDeployer(t, 3, exec)
	_, _, err = holdCells(context.Background(), []string{"c1", "c2", "c3"}, cells, "deploy v2")
	var held *lease.HeldError
	if err == nil || !errors.As(err, &held) || !strings.Contains(err.Error(), "cell c2: ") || !strings.Contains(err.Error(), "someone-else") ||
		!strings.Contains(err.Error(), "no cell was touched") || !strings.Contains(err.Error(), "belay lease break --app shop --cell c2") {
		t.Fatalf("held cell: %v", err)
	}
	if _, err := os.Stat(filepath.Join(roots["shop-c3-1"], "shop", ".belay", "lease")); err == nil {
		t.Fatal("c3's lease was taken after c2 refused (name order)")
	}
	_, again := cellsLeaseDeployer(t, 3, exec)
	a1, _ := again["c1"].app()
	if err := again["c1"].holder(a1, "deploy v3").Take(context.Background()); err != nil {
		t.Fatalf("c1's lease was not released after the refusal: %v", err)
	}
}

// TestLockedUnderCellsLease: a cell whose lease the cells deploy holds runs
// its pipeline fenced by that lease, taking (and connecting for) none of its own.
func TestLockedUnderCellsLease(t *testing.T) {
	var calls []string
	exec := func(ctx context.Context, host, cmd string) ([]byte, int, error) {
		calls = append(calls, host)
		return nil, -1, errors.New("no lease command may run")
	}
	_, cells := cellsLeaseDeployer(t, 2, exec)
	cd := cells["c2"]
	fence := &lease.Fence{Token: "t0k", LeaseHost: "shop-c2-1"}
	cd.held = fence
	ran := false
	out, err := cd.locked(context.Background(), "deploy v2", func(ctx context.Context) (*Outcome, error) {
		ran = cd.Runner.Fence == fence
		return &Outcome{Result: "ok"}, nil
	})
	if err != nil || !ran || out.Result != "ok" || len(calls) != 0 {
		t.Fatalf("locked: %v, fenced %v, lease commands on %v", err, ran, calls)
	}
	// A lost cells lease (the cause of ctx's end) is the run's error.
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(lease.ErrLost)
	_, err = cd.locked(ctx, "deploy v2", func(ctx context.Context) (*Outcome, error) { return nil, nil })
	if !errors.Is(err, lease.ErrLost) {
		t.Fatalf("lost lease: %v", err)
	}
}
