package httpprobe

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// site is an app's nginx on loopback: HTTPS with a certificate for
// shop.example.com (httptest's CA), and plain HTTP that redirects or serves.
type site struct {
	https, http *httptest.Server
	roots       *x509.CertPool
}

func newSite(t *testing.T, redirect bool) *site {
	t.Helper()
	s := &site{}
	s.https = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Host != "shop.example.com" || r.TLS == nil || r.TLS.ServerName != "shop.example.com" {
			http.Error(w, "wrong host/SNI "+r.Host, http.StatusMisdirectedRequest)
			return
		}
		w.Write([]byte("shop over https"))
	}))
	s.https.StartTLS()
	t.Cleanup(s.https.Close)
	s.roots = x509.NewCertPool()
	s.roots.AddCert(s.https.Certificate())
	s.http = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if redirect {
			http.Redirect(w, r, "https://"+r.Host+r.URL.RequestURI(), http.StatusMovedPermanently)
			return
		}
		w.Write([]byte("shop over http"))
	}))
	t.Cleanup(s.http.Close)
	return s
}

func port(t *testing.T, u string) int {
	t.Helper()
	_, p, _ := net.SplitHostPort(strings.TrimPrefix(strings.TrimPrefix(u, "https://"), "http://"))
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func (s *site) opts(t *testing.T, mode string, roots *x509.CertPool) Options {
	return Options{Addr: "127.0.0.1", HTTPPort: port(t, s.http.URL), HTTPSPort: port(t, s.https.URL), Domain: "shop.example.com", TLSMode: mode, Roots: roots, Timeout: 2 * time.Second}
}

func get(t *testing.T, tg Target) (int, string, error) {
	t.Helper()
	req, err := tg.Request(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	resp, err := NewClient(2*time.Second, tg.TLS, true).Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 512)
	n, _ := resp.Body.Read(buf)
	b.Write(buf[:n])
	return resp.StatusCode, b.String(), nil
}

func TestResolve(t *testing.T) {
	ctx := context.Background()
	t.Run("redirect: HTTPS, SNI and Host the domain, chain verified", func(t *testing.T) {
		s := newSite(t, true)
		tg, err := Resolve(ctx, s.opts(t, "acme", s.roots))
		if err != nil || !tg.HTTPS() || tg.Note != "" {
			t.Fatalf("%+v %v: want HTTPS", tg, err)
		}
		code, body, err := get(t, tg)
		if err != nil || code != 200 || body != "shop over https" {
			t.Fatalf("GET %s: %d %q %v", tg.URL, code, body, err)
		}
	})
	t.Run("redirect but the chain is not trusted: the probe fails", func(t *testing.T) {
		s := newSite(t, true)
		tg, err := Resolve(ctx, s.opts(t, "acme", x509.NewCertPool()))
		if err != nil || !tg.HTTPS() {
			t.Fatalf("%+v %v", tg, err)
		}
		if _, _, err := get(t, tg); err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("untrusted chain accepted: %v", err)
		}
	})
	t.Run("wrong domain: the name check fails", func(t *testing.T) {
		s := newSite(t, true)
		o := s.opts(t, "custom", s.roots)
		o.Domain = "other.test"
		tg, err := Resolve(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := get(t, tg); err == nil {
			t.Fatal("a certificate for shop.example.com verified for other.test")
		}
	})
	t.Run("no redirect yet (placeholder): HTTP with a note", func(t *testing.T) {
		s := newSite(t, false)
		tg, err := Resolve(ctx, s.opts(t, "acme", s.roots))
		if err != nil || tg.HTTPS() || !strings.Contains(tg.Note, "placeholder") {
			t.Fatalf("%+v %v: want HTTP with a note", tg, err)
		}
		if code, body, err := get(t, tg); err != nil || code != 200 || body != "shop over http" {
			t.Fatalf("%d %q %v", code, body, err)
		}
	})
	t.Run("no TLS: HTTP, no question asked", func(t *testing.T) {
		tg, err := Resolve(ctx, Options{Addr: "192.0.2.1", Domain: "shop.example.com"})
		if err != nil || tg.URL != "http://192.0.2.1/" || tg.Host != "shop.example.com" || tg.TLS != nil {
			t.Fatalf("%+v %v", tg, err)
		}
	})
	t.Run("nothing answers: an error", func(t *testing.T) {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		p := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if _, err := Resolve(ctx, Options{Addr: "127.0.0.1", HTTPPort: p, Domain: "shop.example.com", TLSMode: "acme", Timeout: time.Second}); err == nil {
			t.Fatal("no error from a closed port")
		}
	})
}

func TestLoadRoots(t *testing.T) {
	s := newSite(t, true)
	dir := t.TempDir()
	good := filepath.Join(dir, "ca.pem")
	os.WriteFile(good, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.https.Certificate().Raw}), 0o600)
	bad := filepath.Join(dir, "bad.pem")
	os.WriteFile(bad, []byte("not pem"), 0o600)
	if p, err := LoadRoots(""); p != nil || err != nil {
		t.Fatalf("empty: %v %v", p, err)
	}
	if p, err := LoadRoots(good); p == nil || err != nil {
		t.Fatalf("good: %v", err)
	}
	if _, err := LoadRoots(bad); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Fatalf("bad: %v", err)
	}
	if _, err := LoadRoots(filepath.Join(dir, "none")); err == nil {
		t.Fatal("missing file accepted")
	}
}
