package drill

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// Over HTTPS the prober sends the domain as SNI and Host, verifies the chain
// and keeps its connections alive; with roots that do not verify it, every
// probe fails (a certificate a browser refuses is not an answer).
func TestProberHTTPS(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Host != "shop.example.com" || r.TLS.ServerName != "shop.example.com" {
			w.WriteHeader(http.StatusBadGateway)
		}
	}))
	srv.StartTLS()
	t.Cleanup(srv.Close)
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	for _, tc := range []struct {
		name  string
		roots *x509.CertPool
		ok    bool
	}{{"verified", roots, true}, {"untrusted", x509.NewCertPool(), false}} {
		t.Run(tc.name, func(t *testing.T) {
			p := &Prober{URL: srv.URL + "/", Host: "shop.example.com", TLS: &tls.Config{ServerName: "shop.example.com", RootCAs: tc.roots},
				Interval: 10 * time.Millisecond, Timeout: time.Second}
			runProber(t, p, 150*time.Millisecond)
			res := p.Results()
			if len(res) < 5 {
				t.Fatalf("%d probes", len(res))
			}
			for _, r := range res {
				if r.OK != tc.ok || (tc.ok && r.Status != 200) || (!tc.ok && !strings.Contains(r.Err, "certificate")) {
					t.Fatalf("probe %+v: want ok=%v", r, tc.ok)
				}
			}
		})
	}
}

// A plain-HTTP probe answered by nginx's redirect to HTTPS is not an
// answer from the app; an app's own redirect (to a path) is.
func TestProberUpgradeRedirectIsNotAnAnswer(t *testing.T) {
	for _, tc := range []struct {
		loc string
		ok  bool
	}{{"https://shop.example.com/", false}, {"/login", true}} {
		srv, _ := probeServer(t, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, tc.loc, http.StatusMovedPermanently)
		})
		p := &Prober{URL: srv.URL + "/", Host: "shop.example.com", Interval: 10 * time.Millisecond, Timeout: time.Second}
		runProber(t, p, 100*time.Millisecond)
		res := p.Results()
		if len(res) == 0 {
			t.Fatal("no probes")
		}
		for _, r := range res {
			if r.OK != tc.ok {
				t.Fatalf("redirect to %s: probe %+v, want ok=%v", tc.loc, r, tc.ok)
			}
		}
	}
}
