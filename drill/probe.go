package drill

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
)

// ProbeResult is one HTTP probe of the VIP.
type ProbeResult struct {
	Start, End time.Time
	// OK is an HTTP answer below 500 (nginx and the app answered), except
	// a plain-HTTP probe redirected to https://: that is nginx's upgrade
	// redirect, which says nothing of the app (probe over HTTPS instead).
	OK     bool
	Status int
	Err    string
}

// BrowserConns is how many connections per host the probe keeps, like a
// browser's HTTP/1.1 pool (Chrome and Firefox: 6).
const BrowserConns = 6

// Prober GETs a URL every Interval and keeps the results. It is a browser-like
// client on purpose: a drill must report what a real user sees, not what a
// client no user runs would see. So it reuses kept-alive connections (at most
// BrowserConns, a request waits for a free one as in a browser, and that wait
// counts in its latency), retries a GET once on a fresh connection when a
// reused one turns out dead (net/http does as browsers do), and gives up only
// after Timeout (docs/drills.md: why 5 s). A probe gives up before nginx's own
// timeouts fire would count failures real clients never see, and keep nginx
// from ever marking a dead peer down.
type Prober struct {
	URL, Host string
	// TLS verifies an https:// URL (SNI Host, the chain against its roots:
	// httpprobe.Resolve); nil for plain HTTP.
	TLS               *tls.Config
	Interval, Timeout time.Duration
	mu                sync.Mutex
	results           []ProbeResult
	stopped           time.Time
}

// NewProbeClient is the browser-like HTTP client of a Prober; tlsCfg
// verifies HTTPS (nil: plain HTTP, or the system roots).
func NewProbeClient(timeout time.Duration, tlsCfg *tls.Config) *http.Client {
	d := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         d.DialContext,
			TLSClientConfig:     tlsCfg,
			TLSHandshakeTimeout: timeout,
			MaxConnsPerHost:     BrowserConns,
			MaxIdleConnsPerHost: BrowserConns,
			IdleConnTimeout:     90 * time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// Run starts a probe every Interval, each on its own goroutine (a probe that
// waits does not delay the next, so the outage edges are seen to within
// Interval), until stop is closed or ctx ends. It returns once every probe it
// started has its outcome, so the results describe every probe started before
// Stopped. Ending ctx abandons the probes in flight (their results are dropped).
func (p *Prober) Run(ctx context.Context, stop <-chan struct{}) {
	client := NewProbeClient(p.Timeout, p.TLS)
	defer client.CloseIdleConnections()
	var wg sync.WaitGroup
	defer wg.Wait()
	t := time.NewTicker(p.Interval)
	defer t.Stop()
	for {
		wg.Add(1)
		// The start is taken here, not in the goroutine, so every probe
		// started before Stopped says so (AnalyzeVIP relies on it).
		start := time.Now()
		go func() {
			defer wg.Done()
			p.probe(ctx, client, start)
		}()
		select {
		case <-ctx.Done():
		case <-stop:
		case <-t.C:
			continue
		}
		p.mu.Lock()
		p.stopped = time.Now()
		p.mu.Unlock()
		return
	}
}

func (p *Prober) probe(ctx context.Context, client *http.Client, start time.Time) {
	r := ProbeResult{Start: start}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL, nil)
	if err == nil {
		req.Host = p.Host
		var resp *http.Response
		resp, err = client.Do(req)
		if err == nil {
			// Read the body as a browser would, so the connection can be reused.
			_, err = drain(resp)
			r.Status = resp.StatusCode
			r.OK = err == nil && resp.StatusCode < 500
			if upgradeRedirect(req, resp) {
				r.OK, err = false, errors.New("redirected to HTTPS: nginx answered, not the app")
			}
		}
	}
	if err != nil {
		r.Err = err.Error()
	}
	r.End = time.Now()
	if ctx.Err() != nil {
		return // cut short by the end of the drill, not by the VIP
	}
	p.mu.Lock()
	p.results = append(p.results, r)
	p.mu.Unlock()
}

// upgradeRedirect is a plain-HTTP request answered by a redirect to https://.
func upgradeRedirect(req *http.Request, resp *http.Response) bool {
	return req.URL.Scheme == "http" && resp.StatusCode >= 300 && resp.StatusCode < 400 &&
		strings.HasPrefix(resp.Header.Get("Location"), "https://")
}

// Results returns the results so far, in the order the probes started.
func (p *Prober) Results() []ProbeResult {
	p.mu.Lock()
	out := append([]ProbeResult(nil), p.results...)
	p.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
	return out
}

// Stopped is when Run stopped starting probes (zero while it runs).
func (p *Prober) Stopped() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stopped
}

// drain reads and closes the body: a browser reads the whole page, and only a
// fully read body lets the connection go back to the pool.
func drain(resp *http.Response) (int64, error) {
	defer resp.Body.Close()
	return io.Copy(io.Discard, resp.Body)
}
