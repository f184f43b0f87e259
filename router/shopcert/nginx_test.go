package shopcert_test

// Per-shop certificates through real nginx with Debian's Lua module on
// loopback: SNI choice, the per-request redirect, no reload, a restart
// serving from the installed files.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/belay-sh/belay/router"
	rt "github.com/belay-sh/belay/router/routertest"
	"github.com/belay-sh/belay/router/shopcert"
	rsync "github.com/belay-sh/belay/router/sync"
)

const app = "shop"

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newCA(t *testing.T) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(c)
	return &testCA{cert: c, key: key, pool: pool}
}

// leaf returns a PEM chain and key for name, valid for days.
func (ca *testCA) leaf(t *testing.T, name string, days int) []byte {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		DNSNames: []string{name}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Duration(days) * 24 * time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	out := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})...)
	return append(out, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})...)
}

// served returns the name of the certificate nginx presents for sni (the
// chain is verified by the HTTPS request of the test).
func served(t *testing.T, r *rt.Router, ca *testCA, sni string) string {
	t.Helper()
	c, err := tls.Dial("tcp", r.TLSListen, &tls.Config{ServerName: sni, InsecureSkipVerify: true})
	if err != nil {
		return "error: " + err.Error()
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].Subject.CommonName
}

func startTLSRouter(t *testing.T, ca *testCA) (*rt.Router, *rsync.Control) {
	t.Helper()
	c1 := rt.StartCell(t, "c1")
	appCert := filepath.Join(t.TempDir(), "app.pem")
	if err := os.WriteFile(appCert, ca.leaf(t, "app.test", 90), 0o600); err != nil {
		t.Fatal(err)
	}
	r := rt.StartTLSRouter(t, "r1", app, rt.CellsConf([]*rt.Cell{c1}, ""), appCert)
	m := router.Mapping{App: app, Version: 1, Shops: []router.Shop{
		{Domain: "a.test", App: app, Cell: "c1", State: router.Active, TLS: true},
		{Domain: "b.test", App: app, Cell: "c1", State: router.Active},
	}}
	body, _ := router.RenderRoutes(m)
	if err := os.WriteFile(r.Paths.Routes, body, 0o644); err != nil { // as router-sync does, for the restart
		t.Fatal(err)
	}
	ctl := rsync.NewControl(r.Paths.Socket)
	if err := ctl.Load(context.Background(), body); err != nil {
		t.Fatal(err)
	}
	return r, ctl
}

var noRedirect = &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	Transport: &http.Transport{DisableKeepAlives: true}}

func get(t *testing.T, url, host string, ca *testCA) (*http.Response, error) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Host = host
	cl := noRedirect
	if ca != nil {
		cl = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
			TLSClientConfig: &tls.Config{ServerName: host, RootCAs: ca.pool}}}
	}
	resp, err := cl.Do(req)
	if err == nil {
		resp.Body.Close()
	}
	return resp, err
}

// TestShopCertificatesInNginx: a shop with a pushed certificate gets it for
// its SNI and is redirected to HTTPS on port 80; every other name gets the
// app's certificate and plain HTTP; nothing reloads; a bad push changes
// nothing; a restart serves the installed files; a removal falls back.
func TestShopCertificatesInNginx(t *testing.T) {
	ca := newCA(t)
	r, ctl := startTLSRouter(t, ca)
	ctx := context.Background()
	var workers []int
	if _, ok := rt.WaitFor(5*time.Second, func() bool { workers = r.Workers(); return len(workers) == 2 }); !ok {
		t.Fatalf("nginx workers %v, want 2", workers)
	}

	if got := served(t, r, ca, "a.test"); got != "app.test" {
		t.Fatalf("before any push, SNI a.test got %q, want the app's certificate", got)
	}
	if resp, err := get(t, "http://"+r.Listen+"/", "a.test", nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("before any push, http a.test: %v %v, want 200 (no redirect without a certificate)", resp, err)
	}

	shopPEM := ca.leaf(t, "a.test", 90)
	if err := shopcert.Install(r.Paths.Certs, "a.test", shopPEM); err != nil {
		t.Fatal(err)
	}
	if err := ctl.PutCert(ctx, "a.test", shopPEM); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ sni, want string }{
		{"a.test", "a.test"}, {"A.TEST", "a.test"}, {"b.test", "app.test"}, {"app.test", "app.test"},
	} {
		if got := served(t, r, ca, tc.sni); got != tc.want {
			t.Errorf("SNI %s: certificate %q, want %q", tc.sni, got, tc.want)
		}
	}
	if resp, err := get(t, "https://"+r.TLSListen+"/", "a.test", ca); err != nil || resp.StatusCode != 200 {
		t.Errorf("https a.test: %v %v, want 200 from its cell", resp, err)
	}
	resp, err := get(t, "http://"+r.Listen+"/x?y=1", "a.test", nil)
	if err != nil || resp.StatusCode != 301 || resp.Header.Get("Location") != "https://a.test/x?y=1" {
		t.Errorf("http a.test with a certificate: %v %v, want 301 to https://a.test/x?y=1", resp, err)
	}
	if resp, err := get(t, "http://"+r.Listen+"/", "b.test", nil); err != nil || resp.StatusCode != 200 {
		t.Errorf("http b.test (no certificate): %v %v, want 200, not redirected", resp, err)
	}
	held, err := ctl.Certs(ctx)
	if err != nil || held["a.test"] != shopcert.Digest(shopPEM) || len(held) != 1 {
		t.Errorf("nginx holds %v (%v), want a.test with the pushed digest", held, err)
	}

	// A bad push is refused and changes nothing.
	if err := ctl.PutCert(ctx, "b.test", []byte("-----BEGIN CERTIFICATE-----\nnope\n")); err == nil {
		t.Error("a malformed certificate was accepted")
	}
	if got := served(t, r, ca, "b.test"); got != "app.test" {
		t.Errorf("after a refused push, SNI b.test got %q", got)
	}
	if now := r.Workers(); !slices.Equal(now, workers) {
		t.Errorf("nginx workers %v, were %v: a certificate push must not reload", now, workers)
	}

	// A restart (fresh shared memory): the master loads the installed files.
	r.Stop()
	r.Start()
	if got := served(t, r, ca, "a.test"); got != "a.test" {
		t.Errorf("after a restart, SNI a.test got %q, want its own certificate from %s", got, r.Paths.Certs)
	}

	// Removed: the app's certificate and plain HTTP again.
	if err := shopcert.Remove(r.Paths.Certs, "a.test"); err != nil {
		t.Fatal(err)
	}
	if err := ctl.DeleteCert(ctx, "a.test"); err != nil {
		t.Fatal(err)
	}
	if got := served(t, r, ca, "a.test"); got != "app.test" {
		t.Errorf("after removal, SNI a.test got %q, want the app's", got)
	}
	if resp, err := get(t, "http://"+r.Listen+"/", "a.test", nil); err != nil || resp.StatusCode != 200 {
		t.Errorf("after removal, http a.test: %v %v, want 200", resp, err)
	}
}

// leafIP is leaf for an IP address (pebble's API).
func (ca *testCA) leafIP(t *testing.T, ip string) []byte {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: ip},
		IPAddresses: []net.IP{net.ParseIP(ip)}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	return append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})...)
}

func pemCert(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

func tlsConfig(ca *testCA) *tls.Config { return &tls.Config{RootCAs: ca.pool} }

// parseChain returns the leaf and the other certificates of a PEM chain.
func parseChain(t *testing.T, data []byte) (*x509.Certificate, *x509.CertPool) {
	t.Helper()
	var certs []*x509.Certificate
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type == "CERTIFICATE" {
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			certs = append(certs, c)
		}
	}
	if len(certs) == 0 {
		t.Fatal("no certificate in the chain")
	}
	pool := x509.NewCertPool()
	for _, c := range certs[1:] {
		pool.AddCert(c)
	}
	return certs[0], pool
}
