package store_test

import (
	"context"
	"strings"
	"testing"
	"time"

	rt "github.com/belay-sh/belay/router/routertest"
	"github.com/belay-sh/belay/router/store"
)

// TestShopTLS: the schema migrates a table without the tls column (and
// again: idempotent); tls on/off is audited, bumps the version, is loaded
// with the mapping, and refuses an unmapped shop; each router's
// certificate report replaces its own rows only.
func TestShopTLS(t *testing.T) {
	lab := rt.StartDB(t)
	st := lab.Store
	ctx := context.Background()
	if _, err := st.Assign(ctx, "shop", "a.test", "c1", "me"); err != nil {
		t.Fatal(err)
	}
	// A schema from before per-shop certificates: the column is added.
	if _, err := st.Conn.Exec(ctx, "DROP TABLE belay_router.certs; ALTER TABLE belay_router.shops DROP COLUMN tls"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := st.EnsureSchema(ctx); err != nil {
			t.Fatalf("EnsureSchema #%d: %v", i+1, err)
		}
	}
	m, err := st.Load(ctx, "shop")
	if err != nil || len(m.Shops) != 1 || m.Shops[0].TLS {
		t.Fatalf("after the migration: %+v %v, want a.test without tls", m, err)
	}
	v1, err := st.SetTLS(ctx, "shop", "a.test", true, "me")
	if err != nil || v1 <= m.Version {
		t.Fatalf("tls on: version %d (was %d), %v", v1, m.Version, err)
	}
	if v, err := st.SetTLS(ctx, "shop", "a.test", true, "me"); err != nil || v != v1 {
		t.Errorf("tls on again: version %d %v, want %d unchanged", v, err, v1)
	}
	if m, _ := st.Load(ctx, "shop"); !m.Shops[0].TLS {
		t.Error("Load: tls not set")
	}
	if _, err := st.SetTLS(ctx, "shop", "nobody.test", true, "me"); err == nil || !strings.Contains(err.Error(), "not mapped") {
		t.Errorf("tls on an unmapped shop: %v", err)
	}
	if _, err := st.SetTLS(ctx, "shop", "a.test", false, "you"); err != nil {
		t.Fatal(err)
	}
	a, err := st.Audit(ctx, "shop", "a.test", 10)
	if err != nil || len(a) != 3 || a[1].Action != "tls-on" || a[2].Action != "tls-off" || a[2].Actor != "you" {
		t.Errorf("audit %+v %v, want assign, tls-on, tls-off", a, err)
	}

	na := time.Now().Add(60 * 24 * time.Hour).UTC().Truncate(time.Second)
	if err := st.ReportCerts(ctx, "shop", "r1", []store.Cert{{Domain: "a.test", State: "issued", NotAfter: na}, {Domain: "b.test", State: "failed", Error: "dns"}}); err != nil {
		t.Fatal(err)
	}
	if err := st.ReportCerts(ctx, "shop", "r2", []store.Cert{{Domain: "a.test", State: "pending"}}); err != nil {
		t.Fatal(err)
	}
	if err := st.ReportCerts(ctx, "shop", "r1", []store.Cert{{Domain: "a.test", State: "issued", NotAfter: na}}); err != nil {
		t.Fatal(err)
	}
	cs, err := st.Certs(ctx, "shop", "")
	if err != nil || len(cs) != 2 || cs[0].Router != "r1" || !cs[0].NotAfter.Equal(na) || cs[1].Router != "r2" || cs[1].State != "pending" {
		t.Errorf("certs %+v %v, want a.test issued on r1 and pending on r2 (r1's b.test gone)", cs, err)
	}
	if _, err := st.Conn.Exec(ctx, "INSERT INTO belay_router.certs (app, router, domain, state) VALUES ('shop', 'r3', 'x.test', 'bogus')"); err == nil {
		t.Error("a bad state was stored")
	}
}
