//go:build lab

// Package lab_test runs the cells acceptance checks against the lab's cells
// stack (2 cells × 2 app servers + a router pair, from the cells topology),
// self-contained on a fresh stack: the lab app deployed on every cell with
// the real belay binary, 200 shops mapped in two bulk assignments,
// propagation to both routers measured, router overhead measured (through
// the router VIP against straight to the cell VIP), routing from the
// routers' cache while they cannot reach PostgreSQL, and a shop with 10 MB of
// data moved under a load across shops. The lead runs it once the cells lab
// stack exists (as root: the database outage is an nft rule on the routers,
// set through the lab console):
//
//	belay lab up --stack lab/cells-stack.yaml
//	BELAY_INVENTORY=lab go test -tags lab -count=1 -timeout 40m -v ./router/lab/
//
// What the stack provides (docs/cells.md), all by the roles: inventory hosts
// with role "router" (the deploy user may `sudo belay host shop-db --app
// APP`), each cell's servers in apps[].cells[].hosts (the deploy user may
// `sudo belay host move-hook APP export|import SHOP` there), each cell's
// DATABASE_URL in /etc/belay/APP.env naming its own database (the lab app
// keeps shop data there, so both servers of a cell and the move hook see the
// same data), the routers' cells.conf naming the cells c1 and c2, and
// unknownShop: 404. BELAY_LAB_CELLS_APP names the app (default "shop").
package lab_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/belay-sh/belay/bench/load/loadgen"
	"github.com/belay-sh/belay/internal/labapp"
	"github.com/belay-sh/belay/internal/labtest"
	"github.com/belay-sh/belay/router"
)

// shopZone is under the app's wildcard domain (*.shops.lab.belay.test), so
// the cells' nginx server blocks take the shops' Host as the app's.
const shopZone = "shops.lab.belay.test"

func TestLabCells(t *testing.T) {
	inv := labInventory(t)
	if os.Getenv("BELAY_INVENTORY") == "" {
		t.Setenv("BELAY_INVENTORY", "lab")
	}
	app := appName()
	var routers, routerHosts []string
	for _, h := range appRouters(inv, app) {
		routers = append(routers, h.PrivateAddress+":80")
		routerHosts = append(routerHosts, h.Name)
	}
	if len(routers) < 2 {
		t.Fatalf("the primary site has %d routers, want a pair", len(routers))
	}
	a := inv.App(app)
	if a == nil || a.Router == nil {
		t.Fatalf("inventory app %s has no router tier", app)
	}
	cellVIP := map[string]string{}
	for _, c := range a.Cells {
		cellVIP[c.Name] = c.VIP + ":80"
	}
	if cellVIP["c1"] == "" || cellVIP["c2"] == "" {
		t.Fatalf("app %s: cells %v, want c1 and c2 with their VIPs", app, cellVIP)
	}
	vip := a.Router.VIP + ":80"
	run := time.Now().Unix() % 100000

	// 1. The lab app on every cell, with the real belay binary: a tarball
	// whose start is the app and whose belay-move is the move hook.
	release := fmt.Sprintf("cells%d", run)
	belayBin := belayBinary(t)
	if _, err := belayBin("deploy", "--app", app, "--artifact", labtest.LabAppTarball(t, release), "--release", release,
		"--steps", "none", "--pause", "0", "--health-timeout", "30s", "--wave-size", "2"); err != nil {
		t.Fatalf("deploying the lab app to every cell: %v", err)
	}
	for name, addr := range cellVIP {
		eventually(t, time.Minute, "cell "+name+" serving "+release, func() error {
			req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
			req.Host = "probe." + shopZone
			resp, err := client.Do(req)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if r := resp.Header.Get(labapp.HeaderRelease); resp.StatusCode != 200 || r != release {
				return fmt.Errorf("%d release %q", resp.StatusCode, r)
			}
			return nil
		})
	}

	// Before any assignment: an unknown shop gets the router's own 404 page
	// through the router VIP (the cells stack sets unknownShop: 404).
	if code, rh, err := routerAnswer(vip, fmt.Sprintf("unknown%d.%s", run, shopZone)); err != nil || code != 404 || rh != "unknown" {
		t.Fatalf("unknown shop via the router VIP %s: %d %s %q %v, want 404 unknown", vip, code, router.HeaderRouter, rh, err)
	}

	// 2. 200 shops, alternating cells, in one bulk assignment per cell.
	var shops []string
	lists := map[string]*strings.Builder{"c1": {}, "c2": {}}
	cellOf := func(i int) string { return []string{"c1", "c2"}[i%2] }
	for i := 0; i < 200; i++ {
		d := fmt.Sprintf("s%d-%d.%s", run, i, shopZone)
		shops = append(shops, d)
		fmt.Fprintf(lists[cellOf(i)], "%s # shop %d\n", d, i)
	}
	start := time.Now()
	for _, cell := range []string{"c1", "c2"} {
		p := filepath.Join(t.TempDir(), cell+".txt")
		if err := os.WriteFile(p, []byte("# lab shops of "+cell+"\n\n"+lists[cell].String()), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s", strings.TrimSpace(belay(t, "assign", "--from-file", p, "--app", app, "--cell", cell)))
	}
	t.Logf("bulk assignment of 200 shops (two commands, each waiting for every router): %s", time.Since(start).Round(time.Millisecond))
	checkRouting := func(what string, shops []string, cellOf func(int) string) {
		t.Helper()
		for i, d := range shops {
			for _, r := range append([]string{vip}, routers...) {
				if code, cell, _, err := get(r, d, "/"); err != nil || code != 200 || cell != cellOf(i) {
					t.Fatalf("%s: router %s, %s: %d cell %q %v, want 200 from %s", what, r, d, code, cell, err, cellOf(i))
				}
			}
		}
	}
	checkRouting("after the bulk assignment", shops, cellOf)

	// 3. Propagation: assign, then poll both routers until both route it;
	// no change reloads nginx (the same workers before and after).
	workersBefore := map[string]string{}
	for _, h := range routerHosts {
		w, err := nginxWorkers(h)
		if err != nil {
			t.Fatal(err)
		}
		workersBefore[h] = w
	}
	var ds []time.Duration
	var late []string
	for i := 0; i < 20; i++ {
		d := fmt.Sprintf("p%d-%d.%s", run, i, shopZone)
		late = append(late, d)
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
	t.Logf("propagation to both routers (command start to routed, includes the SSH round trip): p50 %s, max %s", pct(ds, 50), pct(ds, 100))
	for _, h := range routerHosts {
		if w, err := nginxWorkers(h); err != nil || w != workersBefore[h] {
			t.Errorf("router %s: nginx workers %q before 20 mapping changes, %q %v after: a change reloaded nginx", h, workersBefore[h], w, err)
		}
	}

	// 4. Router overhead: the same shop through the router VIP and straight
	// to its cell's VIP, interleaved, each over its own kept-alive
	// connection. Logged, never asserted: timings are not pass/fail.
	overhead(t, vip, cellVIP[cellOf(1)], shops[1], 500)

	// 5. Database down: the routers cannot reach PostgreSQL; every mapped
	// shop still routes from their cached map, through both routers.
	dbDown(t, app, vip, routers, routerHosts, run, func(what string) {
		checkRouting(what, shops, cellOf)
		checkRouting(what, late, func(int) string { return "c2" })
	})

	// 6. Move a shop with 10 MB of data under load across shops. The data
	// goes in as 512 KiB writes (the cells' nginx keeps its default 1 MiB
	// body limit) that land on either server of c1: the app keeps them in
	// c1's database, where the hook on c1's first server exports them.
	moved := shops[0] // on c1
	data := make([]byte, 10<<20)
	_, _ = rand.Read(data)
	const chunk = 512 << 10
	for off := 0; off < len(data); off += chunk {
		method := http.MethodPost
		if off == 0 {
			method = http.MethodPut
		}
		if err := send(method, routers[off/chunk%2], moved, data[off:off+chunk]); err != nil {
			t.Fatalf("writing %s's 10 MB: %v", moved, err)
		}
	}
	if code, cell, body, err := get(vip, moved, "/data?shop="+moved); err != nil || code != 200 || cell != "c1" || body != string(data) {
		t.Fatalf("data of %s before the move: %d cell %q %d bytes %v, want c1 with the 10 MB", moved, code, cell, len(body), err)
	}
	l, err := loadgen.Start(context.Background(), loadgen.Options{Target: "http://" + routers[0], Host: "router." + shopZone, Clients: 8, Shops: shops[:40], MaxDuration: 5 * time.Minute})
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

// overhead logs p50/p90 of n GETs of shop through the router VIP and n
// straight to the cell VIP, interleaved so both see the same load.
func overhead(t *testing.T, routerVIP, cellVIP, shop string, n int) {
	t.Helper()
	via, direct := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{}}, &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{}}
	one := func(c *http.Client, addr string) time.Duration {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
		req.Host = shop
		start := time.Now()
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("GET %s via %s: %v", shop, addr, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		took := time.Since(start)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s via %s: %d", shop, addr, resp.StatusCode)
		}
		return took
	}
	one(via, routerVIP) // open both connections first
	one(direct, cellVIP)
	var dv, dd []time.Duration
	for i := 0; i < n; i++ {
		dv = append(dv, one(via, routerVIP))
		dd = append(dd, one(direct, cellVIP))
	}
	t.Logf("router overhead, %d GETs each, interleaved: through the router VIP p50 %s p90 %s; straight to the cell VIP p50 %s p90 %s; p50 difference %s",
		n, pct(dv, 50), pct(dv, 90), pct(dd, 50), pct(dd, 90), pct(dv, 50)-pct(dd, 50))
}

// dbDown cuts every router off PostgreSQL (restored in t.Cleanup too),
// proves the database is out of their reach (an assignment through a router
// fails), runs check twice across a few of the routers' resync periods, then
// restores access and checks a new assignment propagates again.
func dbDown(t *testing.T, app, vip string, routers, hosts []string, run int64, check func(what string)) {
	t.Helper()
	t.Cleanup(func() {
		for _, h := range hosts {
			if err := unblockDB(h); err != nil {
				t.Errorf("restoring the database access of %s: %v", h, err)
			}
		}
	})
	for _, h := range hosts {
		if err := blockDB(h); err != nil {
			t.Fatal(err)
		}
	}
	cut := time.Now()
	refused := fmt.Sprintf("dbdown%d.%s", run, shopZone)
	if out, err := belayRun("assign", refused, "--app", app, "--cell", "c1"); err == nil {
		t.Fatalf("assign with the database cut off the routers succeeded: %s", out)
	} else {
		t.Logf("database cut off the routers: assign fails as expected: %v", err)
	}
	check("database unreachable from the routers")
	// router-sync re-reads every 5 s: let a few of those fail too.
	if rest := 20*time.Second - time.Since(cut); rest > 0 {
		time.Sleep(rest)
	}
	check(fmt.Sprintf("database unreachable for %s", time.Since(cut).Round(time.Second)))
	t.Logf("every mapped shop routed through both routers and the VIP from the cache for %s without the database", time.Since(cut).Round(time.Second))

	for _, h := range hosts {
		if err := unblockDB(h); err != nil {
			t.Fatal(err)
		}
	}
	restored := time.Now()
	// belay cells exits 0 once the helper reaches the database again and
	// no router reports an error (router-sync clears it on reconnecting);
	// only then is an assign's wait for every router meaningful.
	back := eventually(t, 2*time.Minute, "belay cells clean after the database is back", func() error {
		out, err := belayRun("cells", app)
		if err != nil {
			return fmt.Errorf("%v\n%s", err, out)
		}
		return nil
	})
	t.Logf("database access restored: belay cells clean after %s", back.Round(time.Millisecond))
	d := fmt.Sprintf("back%d.%s", run, shopZone)
	belay(t, "assign", d, "--app", app, "--cell", "c1")
	took := eventually(t, 60*time.Second, "a new assignment at every router after the database is back", func() error {
		for _, r := range append([]string{vip}, routers...) {
			if code, cell, _, err := get(r, d, "/"); err != nil || code != 200 || cell != "c1" {
				return fmt.Errorf("router %s: %d cell %q %v", r, code, cell, err)
			}
		}
		return nil
	})
	t.Logf("database back: a new assignment routed by every router %s after the assign returned (%s after access was restored)",
		took.Round(time.Millisecond), time.Since(restored).Round(time.Millisecond))
	if code, _, _, err := get(vip, refused, "/"); err != nil || code != 404 {
		t.Errorf("%s (refused while the database was cut off): %d %v, want 404 (never assigned)", refused, code, err)
	}
}
