package opsenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/belay-sh/belay/deploy"
	"github.com/belay-sh/belay/deploy/lease"
	"github.com/belay-sh/belay/hostrelease"
	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/remote/remotetest"
)

// cellsInventory is the test inventory with app shop split into two cells of
// two servers each (shop-cN-1, shop-cN-2), listed c2 before c1 so the lease
// order is the cells' names, not the inventory's.
func cellsInventory(t *testing.T) *inventory.Inventory {
	t.Helper()
	inv, err := inventory.Load("../../deploy/plan/testdata/inventory.json")
	if err != nil {
		t.Fatal(err)
	}
	tmpl := *inv.Host("shop-1")
	a := inv.App("shop")
	a.Hosts, a.Standby = nil, ""
	for _, i := range []int{2, 1} {
		c := inventory.Cell{Name: fmt.Sprintf("c%d", i), VIP: fmt.Sprintf("10.213.0.%d", 120+i), Database: fmt.Sprintf("shop_c%d", i)}
		for j := 1; j <= 2; j++ {
			h := tmpl
			h.Name, h.Cell = fmt.Sprintf("shop-c%d-%d", i, j), c.Name
			h.PrivateAddress = fmt.Sprintf("10.213.0.%d", 20+10*i+j)
			h.SSHAddress = h.PrivateAddress
			inv.Hosts = append(inv.Hosts, h)
			c.Hosts = append(c.Hosts, h.Name)
		}
		a.Cells = append(a.Cells, c)
	}
	return inv
}

// cellsRunner runs deploy-user commands with sh, one root per host, and
// records which host each lease write went to.
func cellsRunner(t *testing.T) (*remotetest.Runner, map[string]string, *[]string) {
	t.Helper()
	var mu sync.Mutex
	roots := map[string]string{}
	var leaseHosts []string
	return &remotetest.Runner{Handle: func(c remotetest.Call) ([]byte, error) {
		mu.Lock()
		root, ok := roots[c.Host]
		if !ok {
			root = filepath.Join(t.TempDir(), c.Host)
			os.MkdirAll(root, 0o755)
			roots[c.Host] = root
		}
		mu.Unlock()
		cmd := exec.Command("sh", "-c", c.Cmd)
		cmd.Env = append(os.Environ(), "BELAY_ROOT="+root)
		out, err := cmd.Output()
		mu.Lock()
		if b, _ := os.ReadFile(filepath.Join(root, "shop", ".belay", "lease")); len(b) > 0 && !contains(leaseHosts, c.Host) {
			leaseHosts = append(leaseHosts, c.Host)
		}
		mu.Unlock()
		return out, err
	}}, roots, &leaseHosts
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// TestHoldLeasesCells: converge, drills and replace on a cells stack hold
// every cell's lease, each on the cell's first server, in cell-name order,
// and fence every server of every cell; a cell's lease held by a deploy
// refuses the command naming the cell and releases what was taken.
func TestHoldLeasesCells(t *testing.T) {
	inv := cellsInventory(t)
	r, roots, leaseHosts := cellsRunner(t)
	var progress bytes.Buffer
	o := LeaseOptions{Apps: []string{"shop"}, Action: "converge", Actor: deploy.Actor{Who: "ops@box", From: "box", PID: 7},
		Progress: &progress, Base: "$BELAY_ROOT", TTL: time.Minute}
	ctx, f, release_, err := HoldFenced(context.Background(), r, inv, o)
	if err != nil {
		t.Fatalf("converge on a cells stack: %v", err)
	}
	if ctx.Err() != nil {
		t.Fatal("held context already done")
	}
	if got := strings.Join(*leaseHosts, " "); got != "shop-c1-1 shop-c2-1" {
		t.Errorf("leases taken on %q, want shop-c1-1 then shop-c2-1", got)
	}
	for _, h := range []string{"shop-c1-1", "shop-c1-2", "shop-c2-1", "shop-c2-2"} {
		if len(f.Fences[h]) != 1 {
			t.Errorf("%s: %d fences, want 1 (its own cell's)", h, len(f.Fences[h]))
		}
		if b, _ := os.ReadFile(filepath.Join(roots[h], "shop", ".belay", "fence")); len(bytes.TrimSpace(b)) == 0 {
			t.Errorf("%s: no fence written", h)
		}
	}
	for _, want := range []string{"holding the lease of app shop cell c1 for converge", "holding the lease of app shop cell c2 for converge"} {
		if !strings.Contains(progress.String(), want) {
			t.Errorf("progress lacks %q:\n%s", want, progress.String())
		}
	}
	release_()
	for _, h := range []string{"shop-c1-1", "shop-c2-1"} {
		if b, _ := os.ReadFile(filepath.Join(roots[h], "shop", ".belay", "lease")); len(b) != 0 {
			t.Errorf("%s: lease left after release: %s", h, b)
		}
	}

	// A deploy holds cell c2's lease: refused naming the cell; c1's is released.
	dep := &lease.Holder{Exec: RunnerExec(r), Layout: hostrelease.Layout{App: "shop", Base: "$BELAY_ROOT"}, LeaseHost: "shop-c2-1",
		Servers: []string{"shop-c2-1", "shop-c2-2"}, Owner: lease.Owner{Who: "alice@laptop", Action: "deploy v42"}, TTL: time.Minute}
	if err := dep.Take(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, _, _, err = HoldFenced(context.Background(), r, inv, o)
	var held *lease.HeldError
	if !errors.As(err, &held) || !strings.Contains(err.Error(), "cell c2") || !strings.Contains(err.Error(), "alice@laptop") {
		t.Fatalf("converge during a cell's deploy: %v, want refused naming cell c2 and the holder", err)
	}
	if b, _ := os.ReadFile(filepath.Join(roots["shop-c1-1"], "shop", ".belay", "lease")); len(b) != 0 {
		t.Errorf("cell c1's lease kept after the refusal: %s", b)
	}
}

// TestHoldLeasesSomeCells: a command on some cells (LeaseOptions.Cells)
// holds only their leases and fences only their servers.
func TestHoldLeasesSomeCells(t *testing.T) {
	inv := cellsInventory(t)
	r, _, leaseHosts := cellsRunner(t)
	o := LeaseOptions{Apps: []string{"shop"}, Cells: []string{"c2"}, Action: "maintenance on", Base: "$BELAY_ROOT", TTL: time.Minute}
	_, f, release_, err := HoldFenced(context.Background(), r, inv, o)
	if err != nil {
		t.Fatal(err)
	}
	defer release_()
	if got := strings.Join(*leaseHosts, " "); got != "shop-c2-1" {
		t.Errorf("leases taken on %q, want shop-c2-1 only", got)
	}
	if len(f.Fences["shop-c1-1"]) != 0 || len(f.Fences["shop-c2-2"]) != 1 {
		t.Errorf("fences %v: want cell c2's servers only", f.Fences)
	}
}
