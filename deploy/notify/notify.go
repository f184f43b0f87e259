// Package notify posts deploy events (started, verdict, promoted, paused,
// rolled back, failed) as JSON to webhook URLs. A notification never blocks
// nor fails a deploy: each URL has its own queue and worker (events arrive in
// order), every attempt is bounded, failures are retried with backoff and end
// as a warning. URLs are printed with their userinfo and query masked, since
// webhook URLs commonly carry their token there.
package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Event is one notification's body.
type Event struct {
	Event string `json:"event"` // started, verdict, promoted, paused, rolled-back, failed
	App   string `json:"app"`
	// Cell is the cell the event is about, for an app with cells (each cell
	// deploys and rolls back through its own pipeline); omitted otherwise.
	Cell     string    `json:"cell,omitempty"`
	Stack    string    `json:"stack,omitempty"`
	Release  string    `json:"release"`
	Previous string    `json:"previous,omitempty"`
	DeployID string    `json:"deployId,omitempty"`
	By       string    `json:"by,omitempty"`
	CI       string    `json:"ci,omitempty"`
	Time     time.Time `json:"time"`
	// Stage, Verdict ("pass" or "fail"), Reason and Analysis (the canary and
	// baseline figures) describe a verdict.
	Stage    string `json:"stage,omitempty"`
	Verdict  string `json:"verdict,omitempty"`
	Reason   string `json:"reason,omitempty"`
	Analysis any    `json:"analysis,omitempty"`
	Error    string `json:"error,omitempty"`
	Duration string `json:"duration,omitempty"`
	Rollback string `json:"rollback,omitempty"`
}

// ParseURL accepts https URLs, and http only to a loopback host (a local
// relay or a test): an event can carry error text from the hosts.
func ParseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("webhook %s: expected an absolute https:// URL", Redact(raw))
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !loopback(u.Hostname()) {
			return nil, fmt.Errorf("webhook %s: http is allowed to a loopback host only, expected https://", Redact(raw))
		}
	default:
		return nil, fmt.Errorf("webhook %s: scheme %q, expected https", Redact(raw), u.Scheme)
	}
	return u, nil
}

func loopback(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// Redact masks a URL's userinfo and query (and fragment) for printing.
func Redact(raw string) string {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Host == "" {
		return "(unparsable URL)"
	}
	out := u.Scheme + "://"
	if u.User != nil {
		out += "***@"
	}
	out += u.Host + u.EscapedPath()
	if u.RawQuery != "" || u.ForceQuery {
		out += "?***"
	}
	if u.Fragment != "" {
		out += "#***"
	}
	return out
}

// Options tune delivery; zero values take the defaults.
type Options struct {
	// Timeout bounds one attempt (default 5 s).
	Timeout time.Duration
	// Attempts per event (default 4), Backoff before the 2nd (default 500 ms, doubling).
	Attempts int
	Backoff  time.Duration
	// Queue is how many events wait per URL before new ones are dropped (default 64).
	Queue int
	// Warn reports a notification given up (stderr).
	Warn func(format string, args ...any)
	// Client is the HTTP client (default: one with Timeout).
	Client *http.Client
}

// Notifier delivers events; a nil *Notifier does nothing.
type Notifier struct {
	o       Options
	workers []*worker
	wg      sync.WaitGroup
	stop    context.CancelFunc
	ctx     context.Context
}

type worker struct {
	u      *url.URL
	masked string
	q      chan []byte
}

// New checks every URL (a bad one is an error naming it, masked) and starts
// one worker per URL. No URLs: a nil Notifier.
func New(raws []string, o Options) (*Notifier, error) {
	var ws []*worker
	for _, raw := range raws {
		if strings.TrimSpace(raw) == "" {
			continue
		}
		u, err := ParseURL(raw)
		if err != nil {
			return nil, err
		}
		ws = append(ws, &worker{u: u, masked: Redact(raw)})
	}
	if len(ws) == 0 {
		return nil, nil
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.Attempts <= 0 {
		o.Attempts = 4
	}
	if o.Backoff <= 0 {
		o.Backoff = 500 * time.Millisecond
	}
	if o.Queue <= 0 {
		o.Queue = 64
	}
	if o.Warn == nil {
		o.Warn = func(string, ...any) {}
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: o.Timeout}
	}
	n := &Notifier{o: o, workers: ws}
	n.ctx, n.stop = context.WithCancel(context.Background())
	for _, w := range ws {
		w.q = make(chan []byte, o.Queue)
		n.wg.Add(1)
		go n.run(w)
	}
	return n, nil
}

// Targets are the URLs, masked.
func (n *Notifier) Targets() []string {
	if n == nil {
		return nil
	}
	var out []string
	for _, w := range n.workers {
		out = append(out, w.masked)
	}
	return out
}

// Send queues ev for every URL and returns at once.
func (n *Notifier) Send(ev Event) {
	if n == nil {
		return
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now().UTC()
	}
	body, err := json.Marshal(ev)
	if err != nil {
		n.o.Warn("webhook: event %s: %v", ev.Event, err)
		return
	}
	for _, w := range n.workers {
		select {
		case w.q <- body:
		default:
			n.o.Warn("webhook %s: %d events queued, dropping %s", w.masked, n.o.Queue, ev.Event)
		}
	}
}

// Close delivers what is queued, waiting at most max, then abandons the rest
// (with a warning): the deploy's exit is never held longer than that.
func (n *Notifier) Close(max time.Duration) {
	if n == nil {
		return
	}
	for _, w := range n.workers {
		close(w.q)
	}
	done := make(chan struct{})
	go func() { n.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(max):
		n.stop()
		<-done
	}
	n.stop()
}

func (n *Notifier) run(w *worker) {
	defer n.wg.Done()
	for body := range w.q {
		if err := n.deliver(w, body); err != nil {
			var ev struct{ Event string }
			_ = json.Unmarshal(body, &ev)
			n.o.Warn("webhook %s: %s event not delivered: %v", w.masked, ev.Event, err)
		}
	}
}

func (n *Notifier) deliver(w *worker, body []byte) error {
	backoff := n.o.Backoff
	var last error
	for i := 0; i < n.o.Attempts; i++ {
		if i > 0 {
			select {
			case <-time.After(backoff):
			case <-n.ctx.Done():
				return fmt.Errorf("gave up at exit after %d attempts: %w", i, last)
			}
			backoff *= 2
		}
		err := n.post(w, body)
		if err == nil {
			return nil
		}
		last = err
		var perm permanent
		if errors.As(err, &perm) {
			return err
		}
	}
	return fmt.Errorf("%d attempts: %w", n.o.Attempts, last)
}

type permanent struct{ error }

func (n *Notifier) post(w *worker, body []byte) error {
	ctx, cancel := context.WithTimeout(n.ctx, n.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.u.String(), bytes.NewReader(body))
	if err != nil {
		return permanent{errors.New("bad request")}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "belay-deploy-webhook/1")
	resp, err := n.o.Client.Do(req)
	if err != nil {
		// url.Error repeats the whole URL (its token too): keep only the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode < 300:
		return nil
	case resp.StatusCode == 408 || resp.StatusCode == 429 || resp.StatusCode >= 500:
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return permanent{fmt.Errorf("HTTP %d (not retried)", resp.StatusCode)}
}
