package failover

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/remote/remotetest"
)

// bothSchemes serves plain HTTP and HTTPS on one loopback port (it peeks at
// the first byte: 0x16 opens a TLS handshake), standing in for a server's
// nginx on 80 and 443. Plain HTTP redirects to HTTPS when redirect is set.
func bothSchemes(t *testing.T, redirect bool) (addr string, roots *x509.CertPool) {
	t.Helper()
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil && redirect {
			http.Redirect(w, r, "https://"+r.Host+"/", http.StatusMovedPermanently)
			return
		}
		if r.Host != "shop.example.com" || (r.TLS != nil && r.TLS.ServerName != "shop.example.com") {
			http.Error(w, "wrong host", http.StatusBadGateway)
		}
	})
	ts := httptest.NewUnstartedServer(app)
	ts.StartTLS() // for its certificate (example.com, *.example.com)
	t.Cleanup(ts.Close)
	roots = x509.NewCertPool()
	roots.AddCert(ts.Certificate())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	plain, secure := &chanListener{ch: make(chan net.Conn), addr: ln.Addr()}, &chanListener{ch: make(chan net.Conn), addr: ln.Addr()}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(plain.ch)
				close(secure.ch)
				return
			}
			go func() {
				br := bufio.NewReader(c)
				b, err := br.Peek(1)
				if err != nil {
					c.Close()
					return
				}
				pc := &peeked{Conn: c, r: br}
				if b[0] == 0x16 {
					secure.ch <- pc
				} else {
					plain.ch <- pc
				}
			}()
		}
	}()
	go (&http.Server{Handler: app}).Serve(plain)
	go (&http.Server{Handler: app, TLSConfig: ts.TLS}).Serve(tls.NewListener(secure, ts.TLS))
	return ln.Addr().String(), roots
}

type peeked struct {
	net.Conn
	r *bufio.Reader
}

func (p *peeked) Read(b []byte) (int, error) { return p.r.Read(b) }

type chanListener struct {
	ch   chan net.Conn
	addr net.Addr
}

func (l *chanListener) Accept() (net.Conn, error) {
	c, ok := <-l.ch
	if !ok {
		return nil, errors.New("closed")
	}
	return c, nil
}
func (l *chanListener) Close() error   { return nil }
func (l *chanListener) Addr() net.Addr { return l.addr }

// tlsSwitch is the test switch with the app on tls acme and domain
// shop.example.com, its verify step pointed at addr.
func tlsSwitch(t *testing.T, f *fakeSite, addr string, roots *x509.CertPool) (*Env, *Plan, *remotetest.Runner) {
	t.Helper()
	env, r, _, _ := switchEnv(t, f, true)
	env.Inv.Apps[0].TLS = inventory.TLSACME
	env.Inv.Apps[0].Domains = []string{"shop.example.com"}
	env.Zone = "example.com"
	env.Roots = roots
	p := mustPlan(t, env.Inv)
	for i := range p.Steps {
		if p.Steps[i].Kind == KindHTTP {
			p.Steps[i].Address = addr
		}
	}
	return env, p, r
}

// The switch to the standby obtains the standby's ACME certificate after the
// DNS move and before the verify step, which then reaches the app over HTTPS
// with its domain as SNI and the chain verified against --ca-file's roots.
func TestSwitchTLSCertificateAndHTTPSVerify(t *testing.T) {
	addr, roots := bothSchemes(t, true)
	f := &fakeSite{}
	env, p, r := tlsSwitch(t, f, addr, roots)
	order := strings.Join(ids(p), " ")
	cert, dnsStep, verify := strings.Index(order, "certificate/shop-standby"), strings.Index(order, "dns/shop.example.com"), strings.Index(order, "verify/shop")
	if cert < 0 || !(dnsStep < cert && cert < verify) {
		t.Fatalf("want dns < certificate < verify: %s", order)
	}
	res, err := Execute(context.Background(), env, p)
	if err != nil {
		t.Fatalf("%v\n%s", err, env.Out)
	}
	if res.Facts["certificate/shop-standby"] != "obtained" || res.Facts["tls/shop"] != "" {
		t.Errorf("facts %v", res.Facts)
	}
	var issued bool
	for _, c := range r.Snapshot() {
		issued = issued || (c.Host == "shop-standby" && c.Root && c.Cmd == "/usr/local/bin/belay-acme-shop")
	}
	if !issued {
		t.Error("the standby's ACME script was not run")
	}
	for _, s := range res.Steps {
		if s.ID == "verify/shop" && (s.Status != "done" || s.Note != "HTTP 200") {
			t.Errorf("verify: %+v", s)
		}
	}
}

// A chain the roots do not verify fails the verify step: a redirect or a
// certificate a browser refuses is not the app answering.
func TestSwitchHTTPSVerifyRefusesUntrustedChain(t *testing.T) {
	addr, _ := bothSchemes(t, true)
	env, p, _ := tlsSwitch(t, &fakeSite{}, addr, x509.NewCertPool())
	_, err := Execute(context.Background(), env, p)
	if err == nil || !strings.Contains(err.Error(), "verify/shop") || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("want verify/shop to fail on the certificate, got %v", err)
	}
}

// A failed issuance does not stop the switch (the app answers; the site is
// what matters): the step is skipped with the reason, the fact recorded, and
// the verify step, finding no redirect yet, probes HTTP and says so.
func TestSwitchCertificateFailureIsAWarning(t *testing.T) {
	addr, roots := bothSchemes(t, false)
	f := &fakeSite{failAt: "belay-acme-shop"}
	env, p, _ := tlsSwitch(t, f, addr, roots)
	res, err := Execute(context.Background(), env, p)
	if err != nil {
		t.Fatalf("%v\n%s", err, env.Out)
	}
	if !strings.HasPrefix(res.Facts["certificate/shop-standby"], "not obtained") || !strings.Contains(res.Facts["tls/shop"], "placeholder") {
		t.Errorf("facts %v", res.Facts)
	}
	for _, s := range res.Steps {
		if s.ID == "certificate/shop-standby" && s.Status != "skipped" {
			t.Errorf("certificate step: %+v", s)
		}
	}
}
