package sync_test

// Real PostgreSQL and real nginx on loopback: the mapping in the database
// reaches nginx through LISTEN/NOTIFY, frozen and unknown shops and a dead
// cell get the router's own clean answers, a bad mapping is refused whole, and
// routing goes on from the loaded map while the database is down.

import (
	"context"
	"strings"
	"testing"
	"time"

	rt "github.com/belay-sh/belay/router/routertest"
)

const app = "shop"

type env struct {
	lab    *rt.Lab
	c1, c2 *rt.Cell
	r      *rt.Router
}

func newEnv(t *testing.T, def string) *env {
	t.Helper()
	e := &env{lab: rt.StartDB(t)}
	e.c1, e.c2 = rt.StartCell(t, "c1"), rt.StartCell(t, "c2")
	e.r = rt.StartRouter(t, "router-1", app, rt.CellsConf([]*rt.Cell{e.c1, e.c2}, def))
	rt.RunSync(t, e.r, app, e.lab.DSN)
	return e
}

// expect polls until host gets an answer satisfying ok (1 s is the target; testWait bounds the test).
func (e *env) expect(t *testing.T, host, what string, ok func(rt.Answer) bool) time.Duration {
	t.Helper()
	var last rt.Answer
	var lastErr error
	d, good := rt.WaitFor(testWait, func() bool {
		last, lastErr = e.r.Get(host, "/")
		return lastErr == nil && ok(last)
	})
	if !good {
		t.Fatalf("%s: %s not seen within %s; last answer %+v, error %v", host, what, testWait, last, lastErr)
	}
	t.Logf("%s: %s after %s", host, what, d.Round(time.Millisecond))
	return d
}

func onCell(c string) func(rt.Answer) bool {
	return func(a rt.Answer) bool { return a.Status == 200 && a.Cell == c }
}

func TestSyncRoutesFreezesAndRefuses(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	st := e.lab.Store

	// Unknown shop, no default cell: the router's clean 421.
	e.expect(t, "nobody.test", "421 unknown", func(a rt.Answer) bool { return a.Status == 421 && a.Router == "unknown" })

	var v int64
	for d, c := range map[string]string{"a.test": "c1", "b.test": "c2"} {
		var err error
		if v, err = st.Assign(ctx, app, d, c, "test"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.WaitApplied(ctx, app, v, testWait); err != nil {
		t.Fatal(err)
	}
	e.expect(t, "a.test", "cell c1", onCell("c1"))
	e.expect(t, "b.test", "cell c2", onCell("c2"))
	// The shop parameter, header and cookie name the shop like the canary whitelist's keys.
	for _, how := range []string{"/?shop=b.test", "/x?shop=B.TEST"} {
		if a, err := e.r.Get("a.test", how); err != nil || a.Cell != "c2" {
			t.Errorf("Host a.test, %s: %+v %v, want cell c2", how, a, err)
		}
	}

	// Assigning a mapped shop elsewhere is refused: only a move carries its data.
	if _, err := st.Assign(ctx, app, "a.test", "c2", "test"); err == nil || !strings.Contains(err.Error(), "belay shop move") {
		t.Errorf("re-assign a.test to c2: %v, want a refusal naming belay shop move", err)
	}

	// Frozen: 503 with Retry-After for that shop alone.
	if _, err := st.BeginMove(ctx, app, "a.test", "c2", "test"); err != nil {
		t.Fatal(err)
	}
	e.expect(t, "a.test", "frozen 503", func(a rt.Answer) bool {
		return a.Status == 503 && a.Router == "frozen" && a.RetryAfter == "7"
	})
	e.expect(t, "b.test", "b.test still on c2", onCell("c2"))
	unfrozen, err := st.AbortMove(ctx, app, "a.test", "test", "test")
	if err != nil {
		t.Fatal(err)
	}
	e.expect(t, "a.test", "a.test unfrozen on c1", onCell("c1"))
	// The router reports the unfreeze as loaded before the bad row below: an
	// answer alone does not prove it (nginx answers from a push before the
	// daemon reports it), and a refused mapping keeps the last good one,
	// which must not be the frozen one.
	if _, ok := rt.WaitFor(testWait, func() bool {
		rs, err := st.Routers(ctx, app)
		return err == nil && len(rs) == 1 && rs[0].Version >= unfrozen
	}); !ok {
		rs, _ := st.Routers(ctx, app)
		t.Fatalf("router did not load the unfreeze (version %d): %+v", unfrozen, rs)
	}

	// A row naming a cell this router does not know (written around the
	// commands, by hand) is refused whole: nginx keeps the last good map,
	// and the router reports the reason in the routers table.
	if _, err := st.Conn.Exec(ctx, "INSERT INTO belay_router.shops (domain, app, cell) VALUES ('c.test', $1, 'c9'), ('d.test', $1, 'c1')", app); err != nil {
		t.Fatal(err)
	}
	_, ok := rt.WaitFor(testWait, func() bool {
		rs, err := st.Routers(ctx, app)
		return err == nil && len(rs) == 1 && strings.Contains(rs[0].Error, `cell "c9" is not in cells.conf`)
	})
	if !ok {
		rs, _ := st.Routers(ctx, app)
		t.Fatalf("router did not report the bad row: %+v", rs)
	}
	if a, _ := e.r.Get("d.test", "/"); a.Status != 421 {
		t.Errorf("d.test (in the refused mapping): %+v, want still unknown (421)", a)
	}
	e.expect(t, "a.test", "a.test still routed", onCell("c1"))
	if _, err := st.Conn.Exec(ctx, "DELETE FROM belay_router.shops WHERE domain = 'c.test'"); err != nil {
		t.Fatal(err)
	}
	e.expect(t, "d.test", "d.test once the bad row is gone", onCell("c1"))

	// A dead cell: a clean 503 for its shops only.
	e.c2.Stop()
	e.expect(t, "b.test", "cell-down 503", func(a rt.Answer) bool {
		return a.Status == 503 && a.Router == "cell-down" && strings.Contains(a.Body, "(c2)")
	})
	e.expect(t, "a.test", "a.test unaffected", onCell("c1"))
}

// TestSchemaRefusesHostileRows: the CHECK constraints keep rows the routers
// would refuse out of the table, whoever writes them.
func TestSchemaRefusesHostileRows(t *testing.T) {
	lab := rt.StartDB(t)
	ctx := context.Background()
	for _, row := range []struct{ domain, app, cell, state string }{
		{"*.evil.test", app, "c1", "active"},
		{"UPPER.test", app, "c1", "active"},
		{"single", app, "c1", "active"},
		{`a.test"; include /etc/passwd; #`, app, "c1", "active"},
		{"a.test\n", app, "c1", "active"},
		{"a.test", app, "c1; return 200", "active"},
		{"a.test", app, "_frozen", "active"},
		{"a.test", "Shop", "c1", "active"},
		{"a.test", app, "c1", "deleted"},
		{strings.Repeat("a", 250) + ".test", app, "c1", "active"},
	} {
		_, err := lab.Store.Conn.Exec(ctx, "INSERT INTO belay_router.shops (domain, app, cell, state) VALUES ($1, $2, $3, $4)", row.domain, row.app, row.cell, row.state)
		if err == nil {
			t.Errorf("row %+v accepted, want a CHECK violation", row)
		}
	}
	// And the schema is idempotent.
	if err := lab.Store.EnsureSchema(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestSyncRoutesFromCacheWhileDBDown stops PostgreSQL: nginx keeps routing
// every shop; once the database is back the daemon reconnects and loads the
// next change.
func TestSyncRoutesFromCacheWhileDBDown(t *testing.T) {
	e := newEnv(t, "c1")
	ctx := context.Background()
	if _, err := e.lab.Store.Assign(ctx, app, "b.test", "c2", "test"); err != nil {
		t.Fatal(err)
	}
	e.expect(t, "b.test", "cell c2", onCell("c2"))
	e.expect(t, "new.test", "default cell c1 for an unknown shop", onCell("c1"))
	_ = e.lab.Store.Close()
	if err := e.lab.PG.Stop(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second) // several reconnect attempts
	for time.Now().Before(deadline) {
		if a, err := e.r.Get("b.test", "/"); err != nil || a.Cell != "c2" {
			t.Fatalf("database down: b.test got %+v %v, want cell c2 from the loaded map", a, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if m, err := routerCache(e.r); err != nil || len(m.Shops) != 1 {
		t.Errorf("mapping.json cache: %+v %v, want the one shop", m, err)
	}
	if err := e.lab.PG.Start(); err != nil {
		t.Fatal(err)
	}
	st := reopen(t, e.lab.DSN)
	if _, err := st.Assign(ctx, app, "c.test", "c2", "test"); err != nil {
		t.Fatal(err)
	}
	e.expect(t, "c.test", "a change after the database came back", onCell("c2"))
}
