package shopcert_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/belay-sh/belay/router"
	"github.com/belay-sh/belay/router/shopcert"
)

// fakeLego stands for lego: it "issues" (writes lego's files, signed by the
// test CA) for the names in ok and fails like an unpointed DNS otherwise.
type fakeLego struct {
	t     *testing.T
	ca    *testCA
	state string
	ok    map[string]bool
	days  int
	calls []string
}

func (f *fakeLego) run(_ context.Context, argv, env []string) ([]byte, error) {
	i := slices.Index(argv, "--domains")
	d := argv[i+1]
	f.calls = append(f.calls, d+" "+argv[i+2])
	if !f.ok[d] {
		return []byte("2026/12/06 acme: error: 400 :: urn:ietf:params:acme:error:connection :: 203.0.113.1: Fetching http://" + d + "/.well-known/acme-challenge/x: Connection refused\n"), errors.New("exit status 1")
	}
	pemData := string(f.ca.leaf(f.t, d, f.days))
	k := strings.Index(pemData, "-----BEGIN EC PRIVATE KEY")
	dir := filepath.Join(f.state, "certificates")
	_ = os.MkdirAll(dir, 0o700)
	_ = os.WriteFile(filepath.Join(dir, d+".crt"), []byte(pemData[:k]), 0o600)
	_ = os.WriteFile(filepath.Join(dir, d+".key"), []byte(pemData[k:]), 0o600)
	return []byte("ok"), nil
}

type fakeNginx struct{ held map[string]string }

func (n *fakeNginx) Certs(context.Context) (map[string]string, error) { return n.held, nil }
func (n *fakeNginx) PutCert(_ context.Context, d string, p []byte) error {
	n.held[d] = shopcert.Digest(p)
	return nil
}
func (n *fakeNginx) DeleteCert(_ context.Context, d string) error { delete(n.held, d); return nil }

// TestIssuerQueue: a shop whose validation fails backs off (15 min, then
// 30) without blocking the others; the hourly bound holds the rest back;
// an issued shop is installed and pushed; renewal under 30 days; tls off
// removes it; a restart keeps the backoff.
func TestIssuerQueue(t *testing.T) {
	ca := newCA(t)
	state, certs := t.TempDir(), t.TempDir()
	lego := &fakeLego{t: t, ca: ca, state: state, ok: map[string]bool{"a.test": true, "c.test": true}, days: 90}
	ng := &fakeNginx{held: map[string]string{}}
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	o := shopcert.Options{App: "shop", Conf: router.ShopACME{Server: "https://ca.test/dir", Email: "ops@x.test", Webroot: "/w", PerHour: 2},
		StateDir: state, CertsDir: certs, Run: lego.run, Nginx: ng, Now: func() time.Time { return now }}
	iss, err := shopcert.New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	iss.SetShops([]string{"a.test", "b.test", "c.test"})
	if err := iss.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	// Per hour 2: a.test (issued) and b.test (failed); c.test waits.
	if want := []string{"a.test run", "b.test run"}; !slices.Equal(lego.calls, want) {
		t.Fatalf("lego calls %v, want %v", lego.calls, want)
	}
	st := byDomain(iss.States())
	if st["a.test"].State != shopcert.Issued || st["b.test"].State != shopcert.Failed || st["c.test"].State != shopcert.Pending {
		t.Fatalf("states %+v", st)
	}
	if !strings.Contains(st["b.test"].Error, "Connection refused") || !st["b.test"].NextTry.Equal(now.Add(15*time.Minute)) {
		t.Errorf("b.test: %+v, want lego's reason and a retry in 15 min", st["b.test"])
	}
	if _, ok := ng.held["a.test"]; !ok || len(ng.held) != 1 {
		t.Errorf("nginx holds %v, want a.test", ng.held)
	}
	if fi, err := os.Stat(filepath.Join(certs, "a.test.pem")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("installed a.test.pem: %v %v, want mode 0600", fi, err)
	}

	// An hour later: c.test is issued, b.test retried once and backs off 30 min.
	now = now.Add(61 * time.Minute)
	lego.calls = nil
	if err := iss.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	if want := []string{"c.test run", "b.test run"}; !slices.Equal(lego.calls, want) { // never tried first
		t.Errorf("lego calls %v, want %v (a.test is valid: no order)", lego.calls, want)
	}
	if b := byDomain(iss.States())["b.test"]; b.Failures != 2 || !b.NextTry.Equal(now.Add(30*time.Minute)) {
		t.Errorf("b.test after 2 failures: %+v, want a retry in 30 min", b)
	}

	// A restart keeps the backoff: b.test is not retried before its time.
	iss, err = shopcert.New(o)
	if err != nil {
		t.Fatal(err)
	}
	iss.SetShops([]string{"a.test", "b.test", "c.test"})
	lego.calls = nil
	now = now.Add(10 * time.Minute)
	if err := iss.Pass(ctx); err != nil || len(lego.calls) != 0 {
		t.Errorf("after a restart: calls %v (%v), want none", lego.calls, err)
	}

	// 61 days later a.test and c.test are under 30 days: renewed.
	now = now.Add(61 * 24 * time.Hour)
	lego.ok["b.test"] = false
	lego.calls = nil
	lego.days = 150
	if err := iss.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(lego.calls, "a.test renew") {
		t.Errorf("lego calls %v, want a.test renewed", lego.calls)
	}

	// tls off for a.test: removed from files and nginx.
	iss.SetShops([]string{"b.test", "c.test"})
	if err := iss.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := ng.held["a.test"]; ok {
		t.Error("a.test still in nginx after tls off")
	}
	if inst, _ := shopcert.Installed(certs); inst["a.test"] != nil || inst["c.test"] == nil {
		t.Errorf("installed after tls off: %v", keys(inst))
	}
}

func byDomain(cs []shopcert.Cert) map[string]shopcert.Cert {
	m := map[string]shopcert.Cert{}
	for _, c := range cs {
		m[c.Domain] = c
	}
	return m
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
