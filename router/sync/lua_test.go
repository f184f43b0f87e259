package sync_test

// The routes in nginx's Lua shared dict, through real nginx with Debian's
// libnginx-mod-http-lua on loopback: the routing table, pushes without a
// reload, the freeze guarantee held by the in-flight counters, and a
// restart that routes from routes.txt with the database down.

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/belay-sh/belay/router"
	rt "github.com/belay-sh/belay/router/routertest"
	rsync "github.com/belay-sh/belay/router/sync"
)

// deadAddr is a loopback address nothing listens on (a cell that is down).
func deadAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := l.Addr().String()
	l.Close()
	return a
}

func shops(pairs ...string) router.Mapping {
	m := router.Mapping{App: app, Version: 1}
	for i := 0; i+1 < len(pairs); i += 2 {
		s := router.Shop{Domain: pairs[i], App: app, Cell: pairs[i+1], State: router.Active}
		if strings.HasSuffix(s.Cell, "!") {
			s.Cell, s.State = strings.TrimSuffix(s.Cell, "!"), router.Frozen
		}
		m.Shops = append(m.Shops, s)
	}
	return m
}

func push(t *testing.T, r *rt.Router, m router.Mapping) {
	t.Helper()
	if err := router.Validate(m, r.Cells); err != nil {
		t.Fatal(err)
	}
	body, _ := router.RenderRoutes(m)
	if err := rsync.NewControl(r.Paths.Socket).Load(context.Background(), body); err != nil {
		t.Fatal(err)
	}
}

// TestRoutingTable: every answer of the router, by the shop's key, for each
// way of answering unknown shops; afterwards no request is counted in flight
// (the log phase ran for proxied, refused, cell-down and aborted requests,
// the last one finished by a worker retired by a reload).
func TestRoutingTable(t *testing.T) {
	c1, c2 := rt.StartHoldCell(t, "c1"), rt.StartCell(t, "c2")
	base := "# test\n" + c1.Conf() + fmt.Sprintf("cell c2 %s\ncell c3 %s\nretry-after 7\n", c2.Addr, deadAddr(t))
	m := shops("a.test", "c1", "b.test", "c2", "f.test", "c1!", "d.test", "c3")
	req := func(host, path string, hdr map[string]string) *http.Request {
		r, _ := http.NewRequest(http.MethodGet, path, nil)
		r.Host = host
		for k, v := range hdr {
			r.Header.Set(k, v)
		}
		return r
	}
	rows := []struct {
		name string
		req  *http.Request
		want rt.Answer // Status, Cell, Router, RetryAfter
	}{
		{"assigned by Host", req("a.test", "/", nil), rt.Answer{Status: 200, Cell: "c1"}},
		{"Host in capitals", req("A.Test", "/", nil), rt.Answer{Status: 200, Cell: "c1"}},
		{"parameter in capitals wins over Host", req("a.test", "/?shop=B.TEST", nil), rt.Answer{Status: 200, Cell: "c2"}},
		{"header", req("x.test", "/", map[string]string{"X-Shop-Domain": "b.test"}), rt.Answer{Status: 200, Cell: "c2"}},
		{"cookie", req("x.test", "/", map[string]string{"Cookie": "shop=B.test"}), rt.Answer{Status: 200, Cell: "c2"}},
		{"frozen", req("f.test", "/", nil), rt.Answer{Status: 503, Router: "frozen", RetryAfter: "7"}},
		{"cell down", req("d.test", "/", nil), rt.Answer{Status: 503, Router: "cell-down", RetryAfter: "10"}},
	}
	for _, unknown := range []struct {
		conf string
		want rt.Answer
	}{
		{"", rt.Answer{Status: 421, Router: "unknown"}},
		{"unknown 404\n", rt.Answer{Status: 404, Router: "unknown"}},
		{"default c2\n", rt.Answer{Status: 200, Cell: "c2"}},
	} {
		t.Run("unknown "+strings.TrimSpace(unknown.conf), func(t *testing.T) {
			r := rt.StartRouter(t, "r1", app, base+unknown.conf)
			push(t, r, m)
			for _, row := range append(rows, struct {
				name string
				req  *http.Request
				want rt.Answer
			}{"unknown", req("nobody.test", "/", nil), unknown.want}) {
				a, err := r.Do(row.req.Clone(context.Background()))
				if err != nil {
					t.Fatalf("%s: %v", row.name, err)
				}
				if a.Status != row.want.Status || a.Cell != row.want.Cell || a.Router != row.want.Router || a.RetryAfter != row.want.RetryAfter {
					t.Errorf("%s: %d cell %q router %q retry-after %q, want %+v", row.name, a.Status, a.Cell, a.Router, a.RetryAfter, row.want)
				}
			}
			// A client that gives up on a long request is uncounted too.
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() {
				defer close(done)
				hr, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+r.Listen+"/hold", nil)
				hr.Host = "a.test"
				if resp, err := http.DefaultClient.Do(hr); err == nil {
					resp.Body.Close()
				}
			}()
			waitInFlight(t, r, "a.test", 1)
			// A reload keeps the shared dicts: the old worker's request is
			// still counted, and uncounted when it ends.
			r.Reload()
			waitInFlight(t, r, "a.test", 1)
			cancel()
			<-done
			waitInFlight(t, r, "a.test", 0)
			busy, err := rsync.NewControl(r.Paths.Socket).InFlight(context.Background(), []string{"a.test", "b.test", "f.test", "d.test", "nobody.test"})
			if err != nil || len(busy) != 0 {
				t.Errorf("in flight after every request ended: %v %v, want none", busy, err)
			}
		})
	}
}

// TestDiffPush: a diff changes, adds and removes routes in place and
// carries the new id; a diff on a base nginx does not hold, or cut short, is
// refused and changes nothing.
func TestDiffPush(t *testing.T) {
	c1, c2 := rt.StartCell(t, "c1"), rt.StartCell(t, "c2")
	r := rt.StartRouter(t, "r1", app, rt.CellsConf([]*rt.Cell{c1, c2}, ""))
	ctl := rsync.NewControl(r.Paths.Socket)
	ctx := context.Background()
	m1 := shops("a.test", "c1", "b.test", "c2", "f.test", "c1")
	push(t, r, m1)
	_, id1 := router.RenderRoutes(m1)
	m2 := shops("b.test", "c1", "f.test", "c1!", "n.test", "c2")
	m2.Version = 2
	diff, id2 := router.RenderDiff(router.RoutesOf(m1), id1, m2)
	if want := "b.test c1\nf.test _frozen\nn.test c2\na.test -\nend 4\n"; !strings.HasSuffix(string(diff), want) {
		t.Fatalf("diff:\n%s\nwant the suffix:\n%s", diff, want)
	}
	check := func(when string, want map[string]string) {
		t.Helper()
		for host, w := range want {
			a, err := r.Get(host, "/")
			got := a.Cell
			if a.Router != "" {
				got = a.Router
			}
			if err != nil || got != w {
				t.Errorf("%s: %s answered %+v %v, want %s", when, host, a, err, w)
			}
		}
	}
	before := map[string]string{"a.test": "c1", "b.test": "c2", "f.test": "c1", "n.test": "unknown"}
	cut := diff[:len(diff)-len("end 4\n")]
	if err := ctl.Load(ctx, cut); err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Errorf("diff without its end line: %v, want refused", err)
	}
	check("after a cut diff", before)
	stale, _ := router.RenderDiff(router.RoutesOf(m1), "7 0123456789abcdef", m2)
	if err := ctl.Load(ctx, stale); err == nil || !strings.Contains(err.Error(), "base mismatch") {
		t.Errorf("diff on a base nginx does not hold: %v, want refused", err)
	}
	check("after a stale diff", before)
	if err := ctl.Load(ctx, diff); err != nil {
		t.Fatal(err)
	}
	check("after the diff", map[string]string{"a.test": "unknown", "b.test": "c1", "f.test": "frozen", "n.test": "c2"})
	if got, err := ctl.Loaded(ctx); err != nil || got != id2 {
		t.Errorf("loaded %q %v, want %q", got, err, id2)
	}
}

// waitInFlight waits until nginx counts n requests of shop in flight.
func waitInFlight(t *testing.T, r *rt.Router, shop string, n int) {
	t.Helper()
	var busy map[string]int
	var err error
	if _, ok := rt.WaitFor(testWait, func() bool {
		busy, err = rsync.NewControl(r.Paths.Socket).InFlight(context.Background(), []string{shop})
		return err == nil && busy[shop] == n
	}); !ok {
		t.Fatalf("%s in flight: %v %v, want %d", shop, busy, err, n)
	}
}

// TestPushWithoutReload: mapping changes reach nginx with no reload (the
// master's workers are the same processes before and after 20 changes);
// the time from the commit to the first routed request is logged.
func TestPushWithoutReload(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	var before []int
	if _, ok := rt.WaitFor(testWait, func() bool { before = e.r.Workers(); return len(before) == 2 }); !ok {
		t.Fatalf("nginx workers %v, want the 2 of worker_processes", before)
	}
	var ds []time.Duration
	for i := 0; i < 20; i++ {
		d := fmt.Sprintf("n%d.test", i)
		start := time.Now()
		if _, err := e.lab.Store.Assign(ctx, app, d, []string{"c1", "c2"}[i%2], "test"); err != nil {
			t.Fatal(err)
		}
		want := []string{"c1", "c2"}[i%2]
		if _, ok := rt.WaitFor(testWait, func() bool { a, err := e.r.Get(d, "/"); return err == nil && a.Cell == want }); !ok {
			t.Fatalf("%s not routed to %s within %s", d, want, testWait)
		}
		ds = append(ds, time.Since(start))
	}
	t.Logf("commit → routed over %d changes, no reload: p50 %s, max %s", len(ds), rt.Percentile(ds, 50).Round(time.Millisecond), rt.Percentile(ds, 100).Round(time.Millisecond))
	if after := e.r.Workers(); !slices.Equal(before, after) {
		t.Errorf("nginx workers %v before, %v after: a mapping change reloaded nginx", before, after)
	}
}

// TestFreezeWaitsForRequestsInFlight: a long request of a shop to its cell
// delays the report of the version that freezes the shop until it ends;
// meanwhile the shop's new requests already get the freeze page and the
// other shops are served.
func TestFreezeWaitsForRequestsInFlight(t *testing.T) {
	lab := rt.StartDB(t)
	c1, c2 := rt.StartHoldCell(t, "c1"), rt.StartCell(t, "c2")
	r := rt.StartRouter(t, "router-1", app, "# test\n"+c1.Conf()+fmt.Sprintf("cell c2 %s\nretry-after 7\n", c2.Addr))
	rt.RunSync(t, r, app, lab.DSN)
	ctx := context.Background()
	st := lab.Store
	var v int64
	for _, d := range []string{"a.test", "b.test"} {
		var err error
		if v, err = st.Assign(ctx, app, d, "c1", "test"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.WaitApplied(ctx, app, v, testWait); err != nil {
		t.Fatal(err)
	}
	held := make(chan rt.Answer, 1)
	go func() { a, _ := r.Get("a.test", "/hold"); held <- a }()
	waitInFlight(t, r, "a.test", 1)

	frozen, err := st.BeginMove(ctx, app, "a.test", "c2", "test")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := rt.WaitFor(testWait, func() bool {
		a, err := r.Get("a.test", "/")
		return err == nil && a.Status == 503 && a.Router == "frozen"
	}); !ok {
		t.Fatal("a.test: the freeze was not pushed")
	}
	if a, err := r.Get("b.test", "/"); err != nil || a.Status != 200 || a.Cell != "c1" {
		t.Errorf("b.test while a.test is frozen: %+v %v, want c1", a, err)
	}
	time.Sleep(1500 * time.Millisecond) // several re-reads: still not reported
	if rs, err := st.Routers(ctx, app); err != nil || len(rs) != 1 || rs[0].Version >= frozen {
		t.Fatalf("router reported %+v %v while a request of the frozen shop is in flight to c1, want a version below %d", rs, err, frozen)
	}
	released := time.Now()
	c1.Release()
	if a := <-held; a.Status != 200 || a.Cell != "c1" {
		t.Errorf("the long request: %+v, want answered by c1", a)
	}
	if _, ok := rt.WaitFor(testWait, func() bool {
		rs, err := st.Routers(ctx, app)
		return err == nil && len(rs) == 1 && rs[0].Version >= frozen
	}); !ok {
		t.Fatal("router never reported the freeze")
	}
	t.Logf("freeze reported %s after the long request ended", time.Since(released).Round(time.Millisecond))
}

// TestRestartRoutesFromCacheWithDBDown: nginx restarted (fresh shared
// memory) while the database is down routes every shop, frozen ones
// included, from routes.txt.
func TestRestartRoutesFromCacheWithDBDown(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	st := e.lab.Store
	var v int64
	for d, c := range map[string]string{"a.test": "c1", "b.test": "c2", "f.test": "c1"} {
		var err error
		if v, err = st.Assign(ctx, app, d, c, "test"); err != nil {
			t.Fatal(err)
		}
	}
	if v, _ = st.BeginMove(ctx, app, "f.test", "c2", "test"); v == 0 {
		t.Fatal("BeginMove failed")
	}
	if _, err := st.WaitApplied(ctx, app, v, testWait); err != nil {
		t.Fatal(err)
	}
	_ = st.Close()
	if err := e.lab.PG.Stop(); err != nil {
		t.Fatal(err)
	}
	e.r.Stop()
	e.r.Start()
	for host, ok := range map[string]func(rt.Answer) bool{
		"a.test":      onCell("c1"),
		"b.test":      onCell("c2"),
		"f.test":      func(a rt.Answer) bool { return a.Status == 503 && a.Router == "frozen" },
		"nobody.test": func(a rt.Answer) bool { return a.Status == 421 && a.Router == "unknown" },
	} {
		// At once: the routes are loaded before nginx accepts a request.
		if a, err := e.r.Get(host, "/"); err != nil || !ok(a) {
			t.Errorf("after a restart with the database down, %s: %+v %v", host, a, err)
		}
	}
}

// TestRoutesDictHoldsMaxShops pushes router.MaxShops shops of the longest
// domains (253 characters): each routes dict (router.DictSize) holds them
// (a second push refills the idle slot). A counter ("f:" + domain, a number)
// takes the same 512-byte slab as a route, so the counters dict of the same
// size holds one per shop.
func TestRoutesDictHoldsMaxShops(t *testing.T) {
	if testing.Short() {
		t.Skip("pushes 26 MB of routes")
	}
	c1 := rt.StartCell(t, "c1")
	r := rt.StartRouter(t, "r1", app, rt.CellsConf([]*rt.Cell{c1}, ""))
	m := router.Mapping{App: app, Version: 1}
	tail := "." + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 61)
	for i := 0; i < router.MaxShops; i++ {
		d := fmt.Sprintf("s%06d", i) + strings.Repeat("a", 56) + tail
		m.Shops = append(m.Shops, router.Shop{Domain: d, App: app, Cell: "c1", State: router.Active})
	}
	if len(m.Shops[0].Domain) != 253 {
		t.Fatalf("domain of %d characters, want 253", len(m.Shops[0].Domain))
	}
	start := time.Now()
	if err := router.Validate(m, r.Cells); err != nil {
		t.Fatal(err)
	}
	body, _ := router.RenderRoutes(m)
	rendered := time.Now()
	if err := rsync.NewControl(r.Paths.Socket).Load(context.Background(), body); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d shops of 253 characters: validated and rendered in %s, loaded by nginx in %s", len(m.Shops),
		rendered.Sub(start).Round(time.Millisecond), time.Since(rendered).Round(time.Millisecond))
	// Twice: the idle slot is emptied and refilled, the live one stays whole.
	m1 := m
	m1.Version = 2
	push(t, r, m1)
	// One change as a diff: its cost follows the change, not the mapping.
	_, id1 := router.RenderRoutes(m1)
	m.Shops = append([]router.Shop(nil), m1.Shops...)
	m.Version, m.Shops[0].State = 3, router.Frozen
	start = time.Now()
	diff, _ := router.RenderDiff(router.RoutesOf(m1), id1, m)
	if err := rsync.NewControl(r.Paths.Socket).Load(context.Background(), diff); err != nil {
		t.Fatal(err)
	}
	t.Logf("one change as a diff on top of %d shops: rendered and loaded in %s", len(m.Shops), time.Since(start).Round(time.Millisecond))
	if a, err := r.Get(m.Shops[0].Domain, "/"); err != nil || a.Router != "frozen" {
		t.Errorf("shop 0 after the diff: %+v %v, want frozen", a, err)
	}
	for _, i := range []int{1, router.MaxShops / 2, router.MaxShops - 1} {
		d := m.Shops[i].Domain
		if a, err := r.Get(d, "/"); err != nil || a.Cell != "c1" {
			t.Errorf("shop %d: %+v %v, want c1", i, a, err)
		}
	}
}

// TestCellsChangeReloadKeepsRoutes: a new cell in cells.conf re-renders
// map.conf and reloads nginx (its upstream is config); the routes survive
// the reload in shared memory, so mapped shops are served throughout, and a
// shop on the new cell is routed once the reload is done.
func TestCellsChangeReloadKeepsRoutes(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	v, err := e.lab.Store.Assign(ctx, app, "a.test", "c1", "test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.lab.Store.WaitApplied(ctx, app, v, testWait); err != nil {
		t.Fatal(err)
	}
	var before []int
	if _, ok := rt.WaitFor(testWait, func() bool { before = e.r.Workers(); return len(before) == 2 }); !ok {
		t.Fatalf("nginx workers %v, want the 2 of worker_processes", before)
	}
	stop := make(chan struct{})
	bad := make(chan string, 1000)
	done := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				done <- n
				return
			default:
			}
			if a, err := e.r.Get("a.test", "/"); err != nil || a.Status != 200 || a.Cell != "c1" {
				select {
				case bad <- fmt.Sprintf("%+v %v", a, err):
				default:
				}
			}
			n++
			time.Sleep(2 * time.Millisecond)
		}
	}()
	c3 := rt.StartCell(t, "c3")
	conf := rt.CellsConf([]*rt.Cell{e.c1, e.c2, c3}, "")
	if err := os.WriteFile(filepath.Join(e.r.Dir, router.CellsFile), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := e.lab.Store.Assign(ctx, app, "x.test", "c3", "test"); err != nil {
		t.Fatal(err)
	}
	e.expect(t, "x.test", "the shop on the new cell", onCell("c3"))
	close(stop)
	n := <-done
	close(bad)
	for b := range bad {
		t.Errorf("a.test during the cells.conf reload: %s", b)
	}
	if after := e.r.Workers(); slices.Equal(before, after) {
		t.Errorf("nginx workers %v unchanged: the new cell's upstream needs a reload", after)
	}
	t.Logf("a.test served %d requests during the change", n)
}
