// Package api builds the DigitalOcean and Hetzner Cloud API clients belay uses
// on servers, reads their tokens, and classifies their errors for package retry.
package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/digitalocean/godo"
	"github.com/hetznercloud/hcloud-go/v2/hcloud"

	"github.com/belay-sh/belay/cloud/retry"
)

// Provider names as the CLI and roles.PeerDiscovery spell them.
const (
	DigitalOcean = "digitalocean"
	Hetzner      = "hetzner"
)

// Default API endpoints.
const (
	DigitalOceanURL = "https://api.digitalocean.com/"
	HetznerURL      = "https://api.hetzner.cloud/v1"
)

// RequestTimeout bounds one HTTP exchange, so a hung connection becomes a
// retryable network error instead of eating the whole claim budget.
const RequestTimeout = 10 * time.Second

// CheckProvider returns an error naming the flag unless p is a known provider.
func CheckProvider(p string) error {
	switch p {
	case DigitalOcean, Hetzner:
		return nil
	}
	return fmt.Errorf("--provider: %q is not a provider; expected %q or %q", p, DigitalOcean, Hetzner)
}

// ReadToken reads an API token from path: the whole file, surrounding white
// space trimmed. It refuses an empty file and a world-readable one, because a
// token that can move the site's public IP must not be readable by every user.
func ReadToken(path string) (string, error) {
	if path == "" {
		return "", errors.New("--token-file: required (a file holding the provider API token)")
	}
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("--token-file: %w", err)
	}
	if fi.Mode().Perm()&0o004 != 0 {
		return "", fmt.Errorf("--token-file %s: mode %04o is world-readable; expected 0600 or 0640 (chmod o-r %s)", path, fi.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("--token-file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("--token-file %s: empty; expected the provider API token", path)
	}
	if strings.ContainsAny(tok, " \t\r\n") {
		return "", fmt.Errorf("--token-file %s: holds more than one word; expected only the API token", path)
	}
	return tok, nil
}

// bearer adds the token to every request. godo would pull in oauth2 for the
// same one header; this keeps the token in one place we control.
type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

// NewDigitalOcean returns a godo client for baseURL ("" = the real API) with
// godo's own retries off: package retry owns retrying, bounded by the caller's deadline.
func NewDigitalOcean(token, baseURL string) (*godo.Client, error) {
	if baseURL == "" {
		baseURL = DigitalOceanURL
	}
	if !strings.HasSuffix(baseURL, "/") {
		baseURL += "/"
	}
	hc := &http.Client{Timeout: RequestTimeout, Transport: bearer{token: token, next: http.DefaultTransport}}
	c, err := godo.New(hc, godo.SetBaseURL(baseURL), godo.SetUserAgent("belay"))
	if err != nil {
		return nil, fmt.Errorf("digitalocean client for %s: %w", baseURL, err)
	}
	return c, nil
}

// NewHetzner returns an hcloud client for endpoint ("" = the real API) with
// hcloud's own retries off for the same reason as NewDigitalOcean.
func NewHetzner(token, endpoint string) *hcloud.Client {
	if endpoint == "" {
		endpoint = HetznerURL
	}
	return hcloud.NewClient(
		hcloud.WithToken(token),
		hcloud.WithEndpoint(endpoint),
		hcloud.WithApplication("belay", "1"),
		hcloud.WithHTTPClient(&http.Client{Timeout: RequestTimeout}),
		hcloud.WithRetryOpts(hcloud.RetryOpts{MaxRetries: 0}),
	)
}

// ClassifyDigitalOcean sorts godo errors: 5xx, 429, network errors and the
// 422 "pending event" answer are retried; everything else is final.
func ClassifyDigitalOcean(err error) retry.Verdict {
	var er *godo.ErrorResponse
	if errors.As(err, &er) && er.Response != nil {
		code := er.Response.StatusCode
		switch {
		case code == http.StatusTooManyRequests:
			return retry.Verdict{Retry: true, After: retryAfter(er.Response.Header), Reason: "HTTP 429 rate limited"}
		case code >= 500:
			return retry.Verdict{Retry: true, Reason: "HTTP " + strconv.Itoa(code)}
		case code == http.StatusUnprocessableEntity && strings.Contains(strings.ToLower(er.Message), "pending"):
			// DO answers 422 while the IP or the droplet has another action in
			// flight ("Droplet already has a pending event."); it clears by itself.
			return retry.Verdict{Retry: true, Reason: "HTTP 422 pending action"}
		}
		return retry.Verdict{}
	}
	return classifyTransport(err)
}

// ClassifyHetzner sorts hcloud errors: 5xx-type codes, rate limits, "locked"
// (another action running) and "conflict" are retried; everything else is final.
func ClassifyHetzner(err error) retry.Verdict {
	var he hcloud.Error
	if errors.As(err, &he) {
		var hdr http.Header
		if r := he.Response(); r != nil && r.Response != nil {
			hdr = r.Header
		}
		switch he.Code {
		case hcloud.ErrorCodeRateLimitExceeded:
			return retry.Verdict{Retry: true, After: retryAfter(hdr), Reason: "rate_limit_exceeded"}
		case hcloud.ErrorCodeLocked, hcloud.ErrorCodeConflict:
			return retry.Verdict{Retry: true, Reason: string(he.Code) + " (another action is running)"}
		case hcloud.ErrorCodeServiceError, hcloud.ErrorCodeServerError, hcloud.ErrorCodeBadGateway,
			hcloud.ErrorCodeTimeout, hcloud.ErrorCodeUnknownError, hcloud.ErrorCodeResourceUnavailable,
			hcloud.ErrorCodeMaintenance:
			return retry.Verdict{Retry: true, Reason: string(he.Code)}
		}
		return retry.Verdict{}
	}
	if errors.Is(err, hcloud.ErrStatusCode) {
		// A status without a JSON error body, e.g. a 502 from a load balancer in front of the API.
		return retry.Verdict{Retry: true, Reason: "HTTP error without body"}
	}
	return classifyTransport(err)
}

func classifyTransport(err error) retry.Verdict {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return retry.Verdict{}
	}
	var ne net.Error
	var ue *url.Error
	if errors.As(err, &ne) || errors.As(err, &ue) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return retry.Verdict{Retry: true, Reason: "network error"}
	}
	return retry.Verdict{}
}

// retryAfter reads Retry-After (seconds or an HTTP date); 0 when absent or unreadable.
func retryAfter(h http.Header) time.Duration {
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}

// Redact returns a writer that replaces every occurrence of secret with
// "[redacted]" before writing to w. Log lines are written whole, so a secret is
// never split across two Write calls; the writer is safe for concurrent use.
func Redact(w io.Writer, secret string) io.Writer {
	if secret == "" {
		return w
	}
	return &redactor{w: w, secret: []byte(secret)}
}

type redactor struct {
	mu     sync.Mutex
	w      io.Writer
	secret []byte
}

func (r *redactor) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, err := r.w.Write(bytes.ReplaceAll(p, r.secret, []byte("[redacted]"))); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Logger writes timestamp-free lines prefixed with "belay vip: " (journald adds
// the time); nil-safe so library code can log unconditionally.
type Logger struct {
	mu  sync.Mutex
	W   io.Writer
	Tag string
}

// Logf writes one line.
func (l *Logger) Logf(format string, args ...any) {
	if l == nil || l.W == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	msg := fmt.Sprintf(format, args...)
	if l.Tag != "" {
		msg = l.Tag + ": " + msg
	}
	fmt.Fprintln(l.W, msg)
}
