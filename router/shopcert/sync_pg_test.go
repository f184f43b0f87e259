package shopcert_test

import (
	"context"
	gosync "sync"
	"testing"
	"time"

	"github.com/belay-sh/belay/router"
	rt "github.com/belay-sh/belay/router/routertest"
	"github.com/belay-sh/belay/router/shopcert"
	"github.com/belay-sh/belay/router/store"
	rsync "github.com/belay-sh/belay/router/sync"
)

// TestSyncIssuesFlaggedShops: belay shop tls on (the store) reaches
// router-sync, whose issuer orders the certificate (lego faked: a.test
// validates, b.test does not), pushes it into the real nginx and reports
// both states to the database; b.test's failure blocks nothing. A router
// without ACME settings reports its tls shops failed, naming why.
func TestSyncIssuesFlaggedShops(t *testing.T) {
	ca := newCA(t)
	lab := rt.StartDB(t)
	r, _ := startTLSRouter(t, ca)
	ctx := context.Background()
	for _, d := range []string{"a.test", "b.test"} {
		if _, err := lab.Store.Assign(ctx, app, d, "c1", "me"); err != nil {
			t.Fatal(err)
		}
		if _, err := lab.Store.SetTLS(ctx, app, d, true, "me"); err != nil {
			t.Fatal(err)
		}
	}
	state := t.TempDir()
	lego := &fakeLego{t: t, ca: ca, state: state, ok: map[string]bool{"a.test": true}, days: 90}
	var mu gosync.Mutex
	run := func(ctx context.Context, argv, env []string) ([]byte, error) {
		mu.Lock()
		defer mu.Unlock()
		return lego.run(ctx, argv, env)
	}
	start := func(name string, sc *shopcert.Options) {
		o := r.SyncOptions(app, lab.DSN)
		o.Name, o.ShopCerts = name, sc
		cctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); _ = rsync.Run(cctx, o) }()
		t.Cleanup(func() { cancel(); <-done })
	}
	start("r1", &shopcert.Options{Conf: router.ShopACME{Server: "https://ca.test/dir", Email: "ops@x.test", Webroot: t.TempDir()},
		StateDir: state, Run: run, Tick: 200 * time.Millisecond})

	var certs []store.Cert
	if _, ok := rt.WaitFor(30*time.Second, func() bool {
		certs, _ = lab.Store.Certs(ctx, app, "")
		return len(certs) == 2 && certs[0].State == shopcert.Issued && certs[1].State == shopcert.Failed
	}); !ok {
		t.Fatalf("reported certificates %+v, want a.test issued and b.test failed on r1", certs)
	}
	if certs[0].NotAfter.Before(time.Now().Add(80*24*time.Hour)) || certs[1].Error == "" || certs[1].NextTry.IsZero() {
		t.Errorf("reports %+v: want a.test's expiry, b.test's reason and next try", certs)
	}
	if got := served(t, r, ca, "a.test"); got != "a.test" {
		t.Errorf("SNI a.test: %q, want its issued certificate", got)
	}
	if resp, err := get(t, "https://"+r.TLSListen+"/", "a.test", ca); err != nil || resp.StatusCode != 200 {
		t.Errorf("https a.test through the router: %v %v, want 200 with a verified chain", resp, err)
	}

	// tls off: no longer served, the report drops it.
	if _, err := lab.Store.SetTLS(ctx, app, "a.test", false, "me"); err != nil {
		t.Fatal(err)
	}
	if _, ok := rt.WaitFor(30*time.Second, func() bool { return served(t, r, ca, "a.test") == "app.test" }); !ok {
		t.Error("a.test still served its own certificate after tls off")
	}

	// A second router without ACME settings reports the tls shop failed.
	start("r2", nil)
	if _, ok := rt.WaitFor(30*time.Second, func() bool {
		certs, _ = lab.Store.Certs(ctx, app, "b.test")
		return len(certs) == 2 && certs[1].Router == "r2" && certs[1].State == shopcert.Failed
	}); !ok {
		t.Errorf("b.test's reports %+v, want r2 failed (no ACME settings)", certs)
	}
}
