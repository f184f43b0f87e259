package sync_test

import (
	"context"
	"testing"
	"time"

	rt "github.com/belay-sh/belay/router/routertest"
)

// TestSyncStartsOnReadOnlyThenPromoted is the standby router across a site
// switch, on real PostgreSQL and nginx: while its database refuses writes
// (a replica; here default_transaction_read_only on new sessions) router-sync
// cannot create its schema and routes nothing from the database, and retries;
// once the database accepts writes (the switch promoted it) it creates the
// schema idempotently, LISTENs, routes the mapped shops and reports, which
// is what the site switch's router check waits for.
func TestSyncStartsOnReadOnlyThenPromoted(t *testing.T) {
	lab := rt.StartDB(t)
	ctx := context.Background()
	c1 := rt.StartCell(t, "c1")
	v, err := lab.Store.Assign(ctx, app, "a.test", "c1", "test")
	if err != nil {
		t.Fatal(err)
	}
	// The replica: every new session is read-only (the test's own session,
	// opened before, is not: it plays the promotion below).
	if _, err := lab.Store.Conn.Exec(ctx, "ALTER DATABASE postgres SET default_transaction_read_only = on"); err != nil {
		t.Fatal(err)
	}
	r := rt.StartRouter(t, "router-standby", app, rt.CellsConf([]*rt.Cell{c1}, ""))
	rt.RunSync(t, r, app, lab.DSN)
	e := &env{lab: lab, r: r}
	// Several connection attempts (backoff 50-500 ms) fail meanwhile.
	time.Sleep(1500 * time.Millisecond)
	if a, err := r.Get("a.test", "/"); err != nil || a.Status != 421 || a.Router != "unknown" {
		t.Fatalf("a.test through the router before the promotion: %+v %v, want the router's own 421 (nothing loaded from a read-only database)", a, err)
	}
	routers, err := lab.Store.Routers(ctx, app)
	if err != nil {
		t.Fatal(err)
	}
	if len(routers) != 0 {
		t.Fatalf("a router reported to a read-only database: %+v", routers)
	}
	// The promotion.
	if _, err := lab.Store.Conn.Exec(ctx, "ALTER DATABASE postgres RESET default_transaction_read_only"); err != nil {
		t.Fatal(err)
	}
	e.expect(t, "a.test", "cell c1 after the promotion", onCell("c1"))
	got, err := lab.Store.WaitApplied(ctx, app, v, testWait)
	if err != nil || len(got) != 1 || got[0].Name != "router-standby" || got[0].Error != "" {
		t.Fatalf("router reports after the promotion: %+v, %v", got, err)
	}
}
