// Package double holds HTTP test doubles of the DigitalOcean and Hetzner Cloud
// APIs: exactly the endpoints belay calls, answering with the providers'
// documented JSON shapes, served on loopback httptest servers. Behaviours a
// real API shows only under stress (actions that take a while, "another action
// is pending", 5xx, 429 with Retry-After, dropped connections) are injectable
// through Faults, so every retry path can be driven by a test.
package double

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
)

// Faults are injectable misbehaviours of a double. Counters count down as
// requests consume them; the zero value is a healthy API whose actions finish
// on the first poll.
type Faults struct {
	// Drops closes the connection without an answer for the next N requests (a network error).
	Drops int
	// ServerErrors answers the next N requests with HTTP 500.
	ServerErrors int
	// RateLimited answers the next N requests with HTTP 429.
	RateLimited int
	// RetryAfter is the Retry-After header (seconds) sent with those 429s; 0 sends none.
	RetryAfter int
	// PendingActions answers the next N action requests (POST .../actions...) with the
	// provider's "another action is in progress" error: DO 422, Hetzner 423 "locked".
	PendingActions int
	// ActionPolls is how many GETs of a new action still answer "in progress"
	// before it finishes; 0 = the first GET sees it finished.
	ActionPolls int
	// FailActions makes the next N new actions end in error instead of success.
	FailActions int
}

// base is what both provider doubles share: the server, the token check,
// fault injection and the request log.
type base struct {
	mu       sync.Mutex
	srv      *httptest.Server
	token    string
	faults   Faults
	requests []string
	nextID   int64
	before   func(method, path string)
}

// SetBeforeHook runs fn at the start of every request, before faults and
// routing and without the double's lock, so fn may change the double's state
// (e.g. another node claiming the IP in the middle of a claim).
func (b *base) SetBeforeHook(fn func(method, path string)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.before = fn
}

// start serves h on a loopback listener with the common middleware in front.
func (b *base) start(h func(w http.ResponseWriter, r *http.Request), unauthorized, tooMany, serverError func(w http.ResponseWriter)) {
	b.nextID = 1000
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		before := b.before
		b.mu.Unlock()
		if before != nil {
			before(r.Method, r.URL.Path)
		}
		b.mu.Lock()
		b.requests = append(b.requests, r.Method+" "+r.URL.RequestURI())
		f := &b.faults
		switch {
		case f.Drops > 0:
			f.Drops--
			b.mu.Unlock()
			if hj, ok := w.(http.Hijacker); ok {
				if c, _, err := hj.Hijack(); err == nil {
					c.Close()
					return
				}
			}
			panic(http.ErrAbortHandler)
		case f.ServerErrors > 0:
			f.ServerErrors--
			b.mu.Unlock()
			serverError(w)
			return
		case r.Header.Get("Authorization") != "Bearer "+b.token:
			b.mu.Unlock()
			unauthorized(w)
			return
		case f.RateLimited > 0:
			f.RateLimited--
			if f.RetryAfter > 0 {
				w.Header().Set("Retry-After", strconv.Itoa(f.RetryAfter))
			}
			b.mu.Unlock()
			tooMany(w)
			return
		}
		defer b.mu.Unlock()
		h(w, r)
	}))
}

// URL is the double's base URL (http://127.0.0.1:port).
func (b *base) URL() string { return b.srv.URL }

// Close stops the server.
func (b *base) Close() { b.srv.Close() }

// SetFaults replaces the injected faults.
func (b *base) SetFaults(f Faults) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.faults = f
}

// Requests returns "METHOD /path?query" for every request received, in order.
func (b *base) Requests() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.requests...)
}

// CountRequests returns how many requests had the given method and a path starting with prefix.
func (b *base) CountRequests(method, prefix string) int {
	n := 0
	for _, r := range b.Requests() {
		m, p, _ := strings.Cut(r, " ")
		if m == method && strings.HasPrefix(p, prefix) {
			n++
		}
	}
	return n
}

// takePending consumes one injected pending-action fault; called with mu held.
func (b *base) takePending() bool {
	if b.faults.PendingActions > 0 {
		b.faults.PendingActions--
		return true
	}
	return false
}

// takeFail consumes one injected action failure; called with mu held.
func (b *base) takeFail() bool {
	if b.faults.FailActions > 0 {
		b.faults.FailActions--
		return true
	}
	return false
}

func (b *base) newID() int64 {
	b.nextID++
	return b.nextID
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// page cuts items to the requested page (1-based) and reports whether more follow.
func page[T any](items []T, r *http.Request, defaultPer int) (out []T, pageNo, per, last int) {
	pageNo, _ = strconv.Atoi(r.URL.Query().Get("page"))
	per, _ = strconv.Atoi(r.URL.Query().Get("per_page"))
	if pageNo < 1 {
		pageNo = 1
	}
	if per < 1 {
		per = defaultPer
	}
	last = (len(items) + per - 1) / per
	if last < 1 {
		last = 1
	}
	lo := (pageNo - 1) * per
	if lo > len(items) {
		lo = len(items)
	}
	hi := lo + per
	if hi > len(items) {
		hi = len(items)
	}
	return items[lo:hi], pageNo, per, last
}
