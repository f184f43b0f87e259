//go:build lab

// Package lab_test runs the cells acceptance checks against the lab's cells
// stack (2 cells × 2 app servers + a router pair, from the cells topology):
// a few hundred shops mapped, propagation to both routers measured, a shop
// with 10 MB of data moved under a load across all shops. The lead runs it
// once the cells lab stack exists:
//
//	go test -tags lab -count=1 -v ./router/lab/
//
// Assumptions about the stack (docs/cells.md), all provisioned by the roles:
// inventory hosts with role "router" (the deploy user may `sudo belay host
// shop-db --app APP`), each cell's servers listed in apps[].cells[].hosts
// (the deploy user may `sudo belay host move-hook APP export|import SHOP`
// there), the lab app deployed on every cell with a belay-move symlink in
// its release and a writable LABAPP_DATA_DIR, the routers' cells.conf naming
// the cells c1 and c2, and unknownShop: 404. BELAY_LAB_CELLS_APP names the
// app (default "shop").
package lab_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/belay-sh/belay/bench/load/loadgen"
	"github.com/belay-sh/belay/internal/cli"
	"github.com/belay-sh/belay/internal/cli/cells"
	"github.com/belay-sh/belay/internal/labapp"
	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/router"
	"github.com/spf13/cobra"
)

func appName() string {
	if a := os.Getenv("BELAY_LAB_CELLS_APP"); a != "" {
		return a
	}
	return "shop"
}

func labInventory(t *testing.T) *inventory.Inventory {
	t.Helper()
	inv, err := inventory.Load(cli.DefaultInventory)
	if err != nil {
		t.Fatalf("lab tests need `belay lab up` with the cells stack: %v", err)
	}
	if len(inv.WithRole(cells.RoleRouter)) < 2 {
		t.Fatalf("the lab inventory has no router pair (role %q): start the cells stack", cells.RoleRouter)
	}
	return inv
}

// get asks router addr for shop (Host header).
func get(addr, shop, path string) (int, string, string, error) {
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
	req.Host = shop
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return 0, "", "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get(labapp.HeaderCell), string(b), nil
}

// routerAnswer asks addr for shop and returns the status and X-Belay-Router.
func routerAnswer(addr, shop string) (int, string, error) {
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
	req.Host = shop
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return 0, "", err
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get(router.HeaderRouter), nil
}

func belay(t *testing.T, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	f := cli.New()
	f.IO = cli.IO{In: strings.NewReader(""), Out: &out, ErrOut: &errb}
	var cmd = cells.NewCmdShop(f)
	if args[0] == "cells" {
		cmd = cells.NewCmdCells(f)
		args = args[1:]
	}
	// The root command's target resolution (BELAY_INVENTORY, belay.yaml), as cmd/belay wires it.
	cmd.PersistentPreRunE = func(c *cobra.Command, _ []string) error { return f.Prepare(cmd, c) }
	cmd.SetArgs(args)
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		t.Fatalf("belay %s: %v\n%s%s", strings.Join(args, " "), err, out.String(), errb.String())
	}
	return out.String()
}

func TestLabCells(t *testing.T) {
	inv := labInventory(t)
	app := appName()
	var routers []string
	for _, h := range inv.WithRole(cells.RoleRouter) {
		routers = append(routers, h.PrivateAddress+":80")
	}
	a := inv.App(app)
	if a == nil || a.Router == nil {
		t.Fatalf("inventory app %s has no router tier", app)
	}
	vip := a.Router.VIP + ":80"
	run := time.Now().Unix() % 100000
	// Before any assignment: an unknown shop gets the router's own 404 page
	// through the router VIP (the cells stack sets unknownShop: 404).
	if code, rh, err := routerAnswer(vip, fmt.Sprintf("unknown%d.lab.test", run)); err != nil || code != 404 || rh != "unknown" {
		t.Fatalf("unknown shop via the router VIP %s: %d %s %q %v, want 404 unknown", vip, code, router.HeaderRouter, rh, err)
	}
	var shops []string
	for i := 0; i < 200; i++ {
		d := fmt.Sprintf("s%d-%d.lab.test", run, i)
		shops = append(shops, d)
		belay(t, "assign", d, "--app", app, "--cell", []string{"c1", "c2"}[i%2])
	}
	for i, d := range shops {
		for _, r := range append([]string{vip}, routers...) {
			if code, cell, _, err := get(r, d, "/"); err != nil || code != 200 || cell != []string{"c1", "c2"}[i%2] {
				t.Fatalf("router %s, %s: %d cell %q %v", r, d, code, cell, err)
			}
		}
	}

	// Propagation: assign, then poll both routers until both route it.
	var ds []time.Duration
	for i := 0; i < 20; i++ {
		d := fmt.Sprintf("p%d-%d.lab.test", run, i)
		start := time.Now()
		belay(t, "assign", d, "--app", app, "--cell", "c2")
		for _, r := range routers {
			for {
				if _, cell, _, err := get(r, d, "/"); err == nil && cell == "c2" {
					break
				}
				if time.Since(start) > 10*time.Second {
					t.Fatalf("router %s: %s not routed within 10 s", r, d)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
		ds = append(ds, time.Since(start))
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	t.Logf("propagation to both routers (command start to routed, includes the SSH round trip): p50 %s, max %s", ds[len(ds)/2], ds[len(ds)-1])

	// Move a shop with 10 MB of data under load across all shops.
	moved := shops[0] // on c1
	data := make([]byte, 10<<20)
	_, _ = rand.Read(data)
	req, _ := http.NewRequest(http.MethodPut, "http://"+routers[0]+"/data?shop="+moved, bytes.NewReader(data))
	req.Host = moved
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("PUT 10 MB for %s: %v %v", moved, resp, err)
	}
	l, err := loadgen.Start(context.Background(), loadgen.Options{Target: "http://" + routers[0], Host: "router.lab.test", Clients: 8, Shops: shops[:40], MaxDuration: 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	out := belay(t, "move", moved, "--app", app, "--to", "c2")
	time.Sleep(time.Second)
	rep := l.Stop()
	t.Logf("move: %s", strings.TrimSpace(out))
	for shop, c := range rep.ByShop {
		if shop != moved && c.Failed() > 0 {
			t.Errorf("shop %s (not moved) failed %d of %d requests: %s", shop, c.Failed(), c.Requests, c)
		}
	}
	t.Logf("moved shop under load: %s", rep.ByShop[moved])
	if code, cell, body, err := get(routers[1], moved, "/data?shop="+moved); err != nil || code != 200 || cell != "c2" || body != string(data) {
		t.Errorf("data of %s after the move: %d cell %q %d bytes %v, want c2 with the 10 MB", moved, code, cell, len(body), err)
	}
	t.Logf("belay cells %s:\n%s", app, belay(t, "cells", app))
}
