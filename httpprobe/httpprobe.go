// Package httpprobe is how belay asks an app through an address (the VIP, a
// standby server) the way its users do: plain HTTP for an app without TLS;
// for an app with TLS, HTTPS to the address with the app's domain as SNI and
// Host, the chain verified against the given roots (system roots by
// default), so a probe never counts a redirect as an answer nor trusts a
// certificate a browser would refuse.
package httpprobe

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// Target is one way to GET an app's front page through an address.
type Target struct {
	// URL is http://ADDR/ or https://ADDR/.
	URL string
	// Host is the Host header (and, over HTTPS, the SNI name).
	Host string
	// TLS verifies the server over HTTPS (nil over plain HTTP).
	TLS *tls.Config
	// Note says why a TLS app is probed over plain HTTP ("" otherwise).
	Note string
}

// HTTPS reports whether the target is probed over HTTPS.
func (t Target) HTTPS() bool { return strings.HasPrefix(t.URL, "https://") }

// Request builds a GET of the target.
func (t Target) Request(ctx context.Context) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.URL, nil)
	if err != nil {
		return nil, err
	}
	req.Host = t.Host
	return req, nil
}

// Options say how to reach an app.
type Options struct {
	// Addr is the address to connect to (an IP; the VIP or a server), or
	// host:port, used as is for both schemes.
	Addr string
	// HTTPPort and HTTPSPort default to 80 and 443 (tests use others).
	HTTPPort, HTTPSPort int
	// Domain is the app's first domain: Host header and SNI.
	Domain string
	// TLSMode is inventory.App.TLS: "" for plain HTTP, else acme or custom.
	TLSMode string
	// Roots verify the served chain; nil means the system roots.
	Roots *x509.CertPool
	// Timeout bounds the scheme check (Resolve).
	Timeout time.Duration
	// Client does the scheme check (tests); nil builds one.
	Client *http.Client
}

// Resolve picks the scheme. An app without TLS is plain HTTP. An app with
// TLS is first asked over plain HTTP: a redirect to https:// means its
// servers have a CA-issued certificate (roles' redirect.conf is installed
// with it), so the probe goes over HTTPS and verifies it. An answer without
// a redirect means they still serve the self-signed placeholder (no
// certificate issued yet, e.g. a lab without its ACME CA): HTTPS would only
// measure a certificate error, so the probe stays on HTTP and Note says why.
// No answer at all is an error: the caller decides whether to wait.
func Resolve(ctx context.Context, o Options) (Target, error) {
	plain := Target{URL: "http://" + join(o.Addr, o.HTTPPort, 80) + "/", Host: o.Domain}
	if o.TLSMode == "" {
		return plain, nil
	}
	secure := Target{URL: "https://" + join(o.Addr, o.HTTPSPort, 443) + "/", Host: o.Domain,
		TLS: &tls.Config{ServerName: o.Domain, RootCAs: o.Roots, MinVersion: tls.VersionTLS12}}
	c := o.Client
	if c == nil {
		timeout := o.Timeout
		if timeout == 0 {
			timeout = 5 * time.Second
		}
		c = NewClient(timeout, nil, false)
	}
	req, err := plain.Request(ctx)
	if err != nil {
		return Target{}, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return Target{}, fmt.Errorf("GET %s (Host %s): %w", plain.URL, plain.Host, err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode >= 300 && resp.StatusCode < 400 && strings.HasPrefix(loc, "https://") {
		return secure, nil
	}
	plain.Note = fmt.Sprintf("tls %s but plain HTTP answered %d without a redirect to HTTPS (no CA-issued certificate installed yet: the placeholder is served on 443): probed over HTTP", o.TLSMode, resp.StatusCode)
	return plain, nil
}

// NewClient is a probe client: no proxy, redirects returned (not
// followed), tlsCfg for HTTPS targets. keepAlive reuses connections like a
// browser (the drills' probe); without it every request opens its own.
func NewClient(timeout time.Duration, tlsCfg *tls.Config, keepAlive bool) *http.Client {
	d := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	tr := &http.Transport{Proxy: nil, DialContext: d.DialContext, TLSClientConfig: tlsCfg, DisableKeepAlives: !keepAlive,
		TLSHandshakeTimeout: timeout}
	return &http.Client{Timeout: timeout, Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// Status GETs url with Host host on a new connection (3 s, redirects not
// followed) and returns the status: "is it answering" for the operations
// that wait for a server (replace, db copy).
func Status(ctx context.Context, url, host string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	req.Host = host
	resp, err := NewClient(3*time.Second, nil, false).Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// LoadRoots reads a PEM file of CA certificates (--ca-file); "" is nil, the
// system roots.
func LoadRoots(path string) (*x509.CertPool, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--ca-file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("--ca-file %s: no PEM certificate in it, expected the CA that issued the apps' certificates", path)
	}
	return pool, nil
}

// CAFileUsage is the help of --ca-file.
const CAFileUsage = "PEM CA certificates that verify the apps' HTTPS certificates in the probes (default: the system roots; the lab: pebble's root)"

// join is addr with port when it is not the scheme's default; an addr that
// already names a port (host:port) is kept, and a bare IPv6 address gets its
// brackets.
func join(addr string, port, def int) string {
	if _, _, err := net.SplitHostPort(addr); err == nil {
		return addr
	}
	if port == 0 || port == def {
		if strings.Contains(addr, ":") {
			return "[" + addr + "]"
		}
		return addr
	}
	return net.JoinHostPort(addr, strconv.Itoa(port))
}
