package drill

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// probeServer is a loopback HTTP server that counts the TCP connections it accepted.
func probeServer(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &conns
}

func runProber(t *testing.T, p *Prober, d time.Duration) {
	t.Helper()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { defer close(done); p.Run(context.Background(), stop) }()
	time.Sleep(d)
	close(stop)
	select {
	case <-done:
	case <-time.After(p.Timeout + 2*time.Second):
		t.Fatal("Run did not return after stop")
	}
}

// The probe is a browser: it keeps its connections alive (at most
// BrowserConns of them) instead of opening one per request.
func TestProberReusesAFewConnections(t *testing.T) {
	srv, conns := probeServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Host != "shop.example" {
			w.WriteHeader(http.StatusMisdirectedRequest)
		}
		_, _ = w.Write([]byte("hello"))
	})
	p := &Prober{URL: srv.URL + "/", Host: "shop.example", Interval: 5 * time.Millisecond, Timeout: time.Second}
	runProber(t, p, 300*time.Millisecond)
	res := p.Results()
	if len(res) < 20 {
		t.Fatalf("%d probes in 300 ms at 5 ms", len(res))
	}
	for _, r := range res {
		if !r.OK || r.Status != http.StatusOK {
			t.Fatalf("probe %+v: want 200", r)
		}
	}
	if n := conns.Load(); n < 1 || n > BrowserConns {
		t.Errorf("%d connections for %d probes, want 1..%d (kept alive)", n, len(res), BrowserConns)
	}
}

// A slow answer (longer than nginx's 300 ms connect timeout) is an answer,
// counted with its latency, not a failure; stopping waits for it.
func TestProberWaitsLikeAClient(t *testing.T) {
	var n atomic.Int32
	srv, _ := probeServer(t, func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) <= 3 {
			time.Sleep(400 * time.Millisecond)
		}
		w.WriteHeader(http.StatusNoContent)
	})
	p := &Prober{URL: srv.URL + "/", Interval: 20 * time.Millisecond, Timeout: ProbeTimeout}
	runProber(t, p, 100*time.Millisecond)
	res := p.Results()
	if p.Stopped().IsZero() || len(res) == 0 {
		t.Fatalf("stopped %v, %d results", p.Stopped(), len(res))
	}
	slow := 0
	for _, r := range res {
		if !r.OK {
			t.Errorf("probe failed: %+v", r)
		}
		if r.Start.After(p.Stopped()) {
			t.Errorf("probe started after Stopped: %+v", r)
		}
		if r.End.Sub(r.Start) >= 400*time.Millisecond {
			slow++
		}
	}
	if slow != 3 {
		t.Errorf("%d slow answers recorded, want the 3 in flight when probing stopped", slow)
	}
}

// A 5xx is no answer; a refused connection neither.
func TestProberFailures(t *testing.T) {
	srv, _ := probeServer(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusBadGateway) })
	p := &Prober{URL: srv.URL + "/", Interval: 20 * time.Millisecond, Timeout: time.Second}
	runProber(t, p, 50*time.Millisecond)
	for _, r := range p.Results() {
		if r.OK || r.Status != http.StatusBadGateway {
			t.Errorf("probe %+v: want a failed 502", r)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	p = &Prober{URL: "http://" + addr + "/", Interval: 20 * time.Millisecond, Timeout: time.Second}
	runProber(t, p, 50*time.Millisecond)
	res := p.Results()
	if len(res) == 0 || res[0].OK || res[0].Err == "" {
		t.Errorf("refused: %+v", res)
	}
}

// The drill's whole probe sequence against a real loopback server: the
// baseline, a fault (the server answers 502, or flaps), the watch, the figures.
func TestWatchRecoveryOnALoopbackVIP(t *testing.T) {
	tests := []struct {
		name string
		// fail says whether request n (counted from the fault) gets a 502, at d after the fault.
		fail    func(n int32, d time.Duration) bool
		wantErr string
	}{
		{"a 300 ms outage", func(_ int32, d time.Duration) bool { return d < 300*time.Millisecond }, ""},
		{"every 10th request fails for good", func(n int32, _ time.Duration) bool { return n%10 == 0 }, "not sustainably back"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var t0 atomic.Pointer[time.Time]
			var n atomic.Int32
			srv, _ := probeServer(t, func(w http.ResponseWriter, r *http.Request) {
				if at := t0.Load(); at != nil && tt.fail(n.Add(1), time.Since(*at)) {
					w.WriteHeader(http.StatusBadGateway)
					return
				}
				w.WriteHeader(http.StatusNoContent)
			})
			ctx := context.Background()
			p := &Prober{URL: srv.URL + "/", Interval: ProbeInterval, Timeout: time.Second}
			pr := startProbe(ctx, p)
			t.Cleanup(pr.abandon)
			if err := waitBaseline(ctx, p); err != nil {
				t.Fatal(err)
			}
			now := time.Now()
			t0.Store(&now)
			f, err := watchRecovery(ctx, pr, now, SustainWindow+500*time.Millisecond)
			t.Logf("%s; err %v", f, err)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || f.SustainedOK {
					t.Fatalf("err %v, figures %s: want %q", err, f, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			// Only what cannot depend on how loaded the box is: answers resume
			// after the outage, not before, at once for good, and the failures
			// in between were counted. How many probes fit in 300 ms is a
			// timing (bench-vip.sh reports those).
			if f.FirstAnswer < 300*time.Millisecond || !f.SustainedOK || f.Sustained != f.FirstAnswer {
				t.Errorf("first answer %s, sustained %v %s: want at or after 300 ms, sustained at once", f.FirstAnswer, f.SustainedOK, f.Sustained)
			}
			if f.FailedProbes < 1 || f.Before.Probes < 20 || f.After.Probes < 20 {
				t.Errorf("%d probes failed (want some), %d before, %d after (want at least 20 each)", f.FailedProbes, f.Before.Probes, f.After.Probes)
			}
		})
	}
}
