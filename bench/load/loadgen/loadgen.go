// Package loadgen is a keep-alive HTTP load generator for the lab tests and
// the bench: N clients, each on its own kept-alive connection, send request
// after request to one address (the app's VIP) with the app's Host header,
// while optional slow clients hold requests open. It is bounded in time and in
// count, and counts every request it sent: each answer by status, each
// transport error (no answer: refused, reset, timeout, cut body).
//
// Attribution: the lab app (internal/labapp) echoes the pool nginx routed the
// request to and names its release in response headers, and marks the
// failures it answers on purpose (HeaderDeliberate). So a test reads, per pool
// and per release, how many requests failed, and Counts.BelayFailures gives the
// client-visible failures that are NOT the app's own deliberate answers: in
// the lab, where the only other moving part is belay (routes, reloads, stops),
// those are the failures belay caused. An answer without the release header
// did not come from the app (nginx's own 502/504 page): pool NoApp.
//
// Stopping never turns a request into a failure: no new request starts, and
// those in flight finish (bounded by Options.Timeout) and are counted.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/belay-sh/belay/internal/labapp"
)

// NoApp is the pool and release key of requests no app answered.
const NoApp = "-"

// MaxSamples is how many failures a Report keeps verbatim.
const MaxSamples = 20

// Options of one load run. Zero values take the defaults named on each field.
type Options struct {
	// Target is the base URL requests go to, e.g. "http://10.44.0.10" (the VIP).
	Target string
	// Host is the Host header (the app's domain); "" keeps Target's host.
	Host string
	// Clients send request after request on their own kept-alive connection.
	Clients int
	// Gap is the pause between one client's requests (0: none).
	Gap time.Duration
	// Path of the fast clients' requests (default "/").
	Path string
	// SlowClients do the same on SlowPath: requests held open while the rest runs.
	SlowClients int
	// SlowPath, e.g. "/sleep?d=1500ms" (the lab app holds the answer that long).
	SlowPath string
	// Shops, in turn per client, are named in the ShopParam query parameter; an
	// empty entry names none. {"a.test", ""}: every other request names a.test.
	// Slow clients name none: they hold connections open, they are not meant
	// to tip a canary's slow-request share.
	Shops []string
	// ShopParam is the query parameter naming the shop (default "shop").
	ShopParam string
	// Timeout is one request's whole budget, body included (default 10 s).
	Timeout time.Duration
	// MaxRequests stops the run after this many requests (0: no count bound).
	MaxRequests int64
	// MaxDuration stops the run after this long; required (a run is bounded).
	MaxDuration time.Duration
	// DialContext opens connections (default net.Dialer); injected by tests.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
}

func (o *Options) check() error {
	u, err := url.Parse(o.Target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("loadgen: Target %q: expected a base URL such as http://10.0.0.10", o.Target)
	}
	switch {
	case o.Clients < 0 || o.SlowClients < 0:
		return fmt.Errorf("loadgen: Clients %d, SlowClients %d: expected counts of 0 or more", o.Clients, o.SlowClients)
	case o.Clients+o.SlowClients == 0:
		return errors.New("loadgen: Clients and SlowClients are both 0: expected at least one client")
	case o.SlowClients > 0 && o.SlowPath == "":
		return fmt.Errorf("loadgen: SlowClients %d without a SlowPath: expected a path such as /sleep?d=1500ms", o.SlowClients)
	case o.Gap < 0 || o.Timeout < 0 || o.MaxRequests < 0:
		return fmt.Errorf("loadgen: Gap %s, Timeout %s, MaxRequests %d: expected no negative value", o.Gap, o.Timeout, o.MaxRequests)
	case o.MaxDuration <= 0:
		return fmt.Errorf("loadgen: MaxDuration %s: expected a positive bound on the run", o.MaxDuration)
	}
	for _, p := range []string{o.Path, o.SlowPath} {
		if p != "" && !strings.HasPrefix(p, "/") {
			return fmt.Errorf("loadgen: path %q: expected it to start with /", p)
		}
	}
	if o.Path == "" {
		o.Path = "/"
	}
	if o.ShopParam == "" {
		o.ShopParam = "shop"
	}
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Second
	}
	if o.DialContext == nil {
		o.DialContext = (&net.Dialer{Timeout: o.Timeout, KeepAlive: 30 * time.Second}).DialContext
	}
	return nil
}

// Load is a running load.
type Load struct {
	o        Options
	begin    time.Time
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
	sent     atomic.Int64
	conns    atomic.Int64
	mu       sync.Mutex
	rep      Report
}

// Start checks o and starts the clients; ctx ending stops the run like Stop.
func Start(ctx context.Context, o Options) (*Load, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	l := &Load{o: o, begin: time.Now(), stop: make(chan struct{}), done: make(chan struct{}), rep: newReport()}
	var wg sync.WaitGroup
	for c := 0; c < o.Clients+o.SlowClients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			l.client(c, c >= o.Clients)
		}(c)
	}
	go func() {
		t := time.NewTimer(o.MaxDuration)
		defer t.Stop()
		select {
		case <-ctx.Done():
		case <-t.C:
		case <-l.stop:
		}
		l.halt()
	}()
	go func() {
		wg.Wait()
		l.halt() // every client ended on the count bound
		l.mu.Lock()
		l.rep.Elapsed = time.Since(l.begin)
		l.rep.Conns = l.conns.Load()
		l.mu.Unlock()
		close(l.done)
	}()
	return l, nil
}

// Run is Start and Wait.
func Run(ctx context.Context, o Options) (Report, error) {
	l, err := Start(ctx, o)
	if err != nil {
		return Report{}, err
	}
	return l.Wait(), nil
}

func (l *Load) halt() { l.stopOnce.Do(func() { close(l.stop) }) }

// Stop starts no new request, waits for those in flight, and reports.
func (l *Load) Stop() Report {
	l.halt()
	return l.Wait()
}

// Wait waits for the run's bound (or Stop, or ctx) and reports.
func (l *Load) Wait() Report {
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rep.clone()
}

// Sent is the number of requests started so far (for progress while it runs).
func (l *Load) Sent() int64 { return l.sent.Load() }

func (l *Load) client(c int, slow bool) {
	o := l.o
	// One transport per client: its own connection, kept alive between its
	// requests, as a browser tab or an API client keeps it.
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := o.DialContext(ctx, network, addr)
			if err == nil {
				l.conns.Add(1)
			}
			return conn, err
		},
		MaxIdleConnsPerHost: 1,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	defer tr.CloseIdleConnections()
	hc := &http.Client{
		Transport: tr,
		Timeout:   o.Timeout,
		// A redirect is an answer: count it, do not follow it.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	path := o.Path
	if slow {
		path = o.SlowPath
	}
	for n := 0; ; n++ {
		select {
		case <-l.stop:
			return
		default:
		}
		if l.sent.Add(1) > o.MaxRequests && o.MaxRequests > 0 {
			l.sent.Add(-1) // not sent: the count bound is reached
			return
		}
		shop := ""
		if len(o.Shops) > 0 && !slow {
			shop = o.Shops[(c+n)%len(o.Shops)]
		}
		l.record(l.one(hc, path, shop), slow)
		if o.Gap > 0 {
			select {
			case <-l.stop:
				return
			case <-time.After(o.Gap):
			}
		}
	}
}

// outcome is one request's result.
type outcome struct {
	at                  time.Duration
	shop                string
	status              int
	err                 error
	pool, release, body string
	deliberate          bool
}

func (l *Load) one(hc *http.Client, path, shop string) outcome {
	o := l.o
	target := strings.TrimSuffix(o.Target, "/") + path
	if shop != "" {
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		target += sep + url.QueryEscape(o.ShopParam) + "=" + url.QueryEscape(shop)
	}
	out := outcome{at: time.Since(l.begin), shop: shop, pool: NoApp, release: NoApp}
	req, err := http.NewRequest(http.MethodGet, target, nil)
	if err != nil {
		out.err = err
		return out
	}
	if o.Host != "" {
		req.Host = o.Host
	}
	resp, err := hc.Do(req)
	if err != nil {
		out.err = err
		return out
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		out.err = fmt.Errorf("status %d, body cut: %w", resp.StatusCode, err)
		return out
	}
	out.status = resp.StatusCode
	if rel := resp.Header.Get(labapp.HeaderRelease); rel != "" {
		out.release = rel
		out.pool = resp.Header.Get(labapp.HeaderPool)
		if out.pool == "" {
			out.pool = "(direct)" // the app answered without nginx in front
		}
	}
	out.deliberate = resp.Header.Get(labapp.HeaderDeliberate) != ""
	if len(body) > 200 {
		body = body[:200]
	}
	out.body = strings.TrimSpace(string(body))
	return out
}

func (l *Load) record(r outcome, slow bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	rep := &l.rep
	for _, c := range []*Counts{&rep.Total, rep.bucket(rep.ByPool, r.pool), rep.bucket(rep.ByRelease, r.release), rep.bucket(rep.ByShop, r.shop)} {
		c.add(r)
	}
	if slow {
		rep.Slow.add(r)
	}
	if failed(r) && !r.deliberate && len(rep.Failures) < MaxSamples {
		f := Failure{At: r.at, Shop: r.shop, Status: r.status, Pool: r.pool, Release: r.release, Body: r.body}
		if r.err != nil {
			f.Err = r.err.Error()
		}
		rep.Failures = append(rep.Failures, f)
	}
}

func failed(r outcome) bool { return r.err != nil || r.status >= 400 }

// Counts are the outcomes of a set of requests.
type Counts struct {
	Requests int64
	// Status counts answers by HTTP status.
	Status map[int]int64
	// Errors are requests without a (whole) answer: refused, reset, timeout, cut body.
	Errors int64
	// Deliberate are failed answers the app marked as its own (HeaderDeliberate).
	Deliberate int64
}

func (c *Counts) add(r outcome) {
	c.Requests++
	if r.err != nil {
		c.Errors++
		return
	}
	if c.Status == nil {
		c.Status = map[int]int64{}
	}
	c.Status[r.status]++
	if failed(r) && r.deliberate {
		c.Deliberate++
	}
}

// Failed counts the requests a client saw fail: errors and answers >= 400.
func (c Counts) Failed() int64 {
	n := c.Errors
	for s, k := range c.Status {
		if s >= 400 {
			n += k
		}
	}
	return n
}

// BelayFailures are the failures that are not the app's deliberate answers:
// what the path between client and app (in the lab: belay) caused.
func (c Counts) BelayFailures() int64 { return c.Failed() - c.Deliberate }

// Share is n of the requests, in percent (0 without requests).
func (c Counts) Share(n int64) float64 {
	if c.Requests == 0 {
		return 0
	}
	return 100 * float64(n) / float64(c.Requests)
}

func (c Counts) String() string {
	codes := make([]int, 0, len(c.Status))
	for s := range c.Status {
		codes = append(codes, s)
	}
	sort.Ints(codes)
	var b strings.Builder
	fmt.Fprintf(&b, "%d requests:", c.Requests)
	for _, s := range codes {
		fmt.Fprintf(&b, " %d×%d", c.Status[s], s)
	}
	fmt.Fprintf(&b, ", %d errors; failed %d (%.2f %%), deliberate %d, caused by belay %d", c.Errors, c.Failed(), c.Share(c.Failed()), c.Deliberate, c.BelayFailures())
	return b.String()
}

func (c Counts) clone() Counts {
	out := c
	out.Status = make(map[int]int64, len(c.Status))
	for k, v := range c.Status {
		out.Status[k] = v
	}
	return out
}
