package store_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/belay-sh/belay/router"
	rt "github.com/belay-sh/belay/router/routertest"
)

// TestAssignMany: one transaction, one visible version, one audit row per
// new shop; shops already on the cell are kept; one shop on another cell
// refuses the whole batch.
func TestAssignMany(t *testing.T) {
	lab := rt.StartDB(t)
	st := lab.Store
	ctx := context.Background()
	if _, err := st.Assign(ctx, "shop", "old.test", "c1", "me"); err != nil {
		t.Fatal(err)
	}
	// A listener counts the notifications the batch sends.
	ln, err := pgx.Connect(ctx, lab.DSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close(ctx) })
	if _, err := ln.Exec(ctx, "LISTEN belay_router"); err != nil {
		t.Fatal(err)
	}

	var domains []string
	for i := 0; i < 2000; i++ {
		domains = append(domains, fmt.Sprintf("s%d.test", i))
	}
	got, v, err := st.AssignMany(ctx, "shop", append(domains, "old.test"), "c1", "me", "batch")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2001 || !got[0].New || got[2000].New || got[2000].Previous != "c1" {
		t.Errorf("answer: %d rows, first %+v, last %+v", len(got), got[0], got[2000])
	}
	m, err := st.Load(ctx, "shop")
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Shops) != 2001 || m.Version != v {
		t.Errorf("mapping: %d shops version %d, AssignMany said version %d", len(m.Shops), m.Version, v)
	}
	var audits int
	if err := st.Conn.QueryRow(ctx, "SELECT count(*) FROM belay_router.audit WHERE action = 'assign' AND detail = 'batch'").Scan(&audits); err != nil {
		t.Fatal(err)
	}
	if audits != 2000 {
		t.Errorf("%d audit rows for 2000 new shops", audits)
	}
	notes := 0
	for {
		wctx, cancel := context.WithTimeout(ctx, 300e6)
		_, err := ln.WaitForNotification(wctx)
		cancel()
		if err != nil {
			break
		}
		notes++
	}
	if notes != 1 {
		t.Errorf("%d notifications for one batch, want 1", notes)
	}

	// One conflicting shop: nothing of the batch is assigned.
	if _, err := st.Assign(ctx, "shop", "elsewhere.test", "c2", "me"); err != nil {
		t.Fatal(err)
	}
	_, _, err = st.AssignMany(ctx, "shop", []string{"n1.test", "elsewhere.test", "n2.test"}, "c1", "me", "batch")
	if err == nil || !strings.Contains(err.Error(), "elsewhere.test (on c2)") || !strings.Contains(err.Error(), "nothing assigned") {
		t.Fatalf("conflict: %v", err)
	}
	if sh, err := st.Get(ctx, "shop", "n1.test"); err != nil || sh != nil {
		t.Errorf("n1.test after a refused batch: %+v %v", sh, err)
	}
	// A shop of another app is a conflict too.
	if _, _, err := st.AssignMany(ctx, "other", []string{"old.test"}, "c1", "me", ""); err == nil || !strings.Contains(err.Error(), "app shop") {
		t.Errorf("another app's shop: %v", err)
	}
}

// TestAssignRefusedBeyondMaxShops: an assignment that would take an app past
// router.MaxShops (what each router's shared dict holds) is refused naming
// the limit, single or bulk, and nothing is assigned.
func TestAssignRefusedBeyondMaxShops(t *testing.T) {
	lab := rt.StartDB(t)
	st := lab.Store
	ctx := context.Background()
	// Filled without the per-row trigger (a version bump and a notification
	// each): replica mode skips triggers, not the CHECK constraints.
	for _, q := range []string{"SET session_replication_role = replica",
		fmt.Sprintf("INSERT INTO belay_router.shops (domain, app, cell) SELECT 's' || g || '.test', 'shop', 'c1' FROM generate_series(1, %d) g", router.MaxShops-1),
		"SET session_replication_role = DEFAULT"} {
		if _, err := st.Conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := st.AssignMany(ctx, "shop", []string{"a.test", "b.test"}, "c1", "me", "batch"); err == nil || !strings.Contains(err.Error(), fmt.Sprint(router.MaxShops)) {
		t.Errorf("bulk past the limit: %v, want a refusal naming %d", err, router.MaxShops)
	}
	if _, err := st.Assign(ctx, "shop", "a.test", "c1", "me"); err != nil {
		t.Fatalf("the last shop that fits: %v", err)
	}
	if _, err := st.Assign(ctx, "shop", "b.test", "c1", "me"); err == nil || !strings.Contains(err.Error(), "would exceed") {
		t.Errorf("one past the limit: %v, want a refusal", err)
	}
	// Another app has its own room.
	if _, err := st.Assign(ctx, "other", "b.test", "c1", "me"); err != nil {
		t.Errorf("another app: %v", err)
	}
	var n int
	if err := st.Conn.QueryRow(ctx, "SELECT count(*) FROM belay_router.shops WHERE app = 'shop'").Scan(&n); err != nil || n != router.MaxShops {
		t.Errorf("shops of app shop: %d %v, want %d", n, err, router.MaxShops)
	}
}
