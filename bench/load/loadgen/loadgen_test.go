package loadgen

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/belay-sh/belay/internal/labapp"
)

// proxy stands in for nginx in front of the lab app: it sets X-Belay-Pool
// (canary for shop a.test) and misbehaves on its own on a fixed schedule of
// its request counter: every 10th request from the 3rd gets its own 502 page
// (no app headers), every 10th from the 7th a body cut short.
func proxy(t *testing.T, app labapp.Config) *httptest.Server {
	t.Helper()
	h := labapp.New(app, func(string) {}).Handler()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Host != "shop.test" {
			http.Error(w, "wrong host "+r.Host, http.StatusNotFound)
			return
		}
		k := n.Add(1)
		switch k % 10 {
		case 3:
			http.Error(w, "502 Bad Gateway", http.StatusBadGateway)
			return
		case 7:
			w.Header().Set("Content-Length", "100")
			w.WriteHeader(200)
			w.Write([]byte("short"))
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		pool := "stable"
		if r.URL.Query().Get("shop") == "a.test" {
			pool = "canary"
		}
		r.Header.Set(labapp.HeaderPool, pool)
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestCountsEveryOutcome(t *testing.T) {
	srv := proxy(t, labapp.Config{Release: "v1", Slot: "stable", ErrorsOneIn: 4})
	rep, err := Run(context.Background(), Options{
		Target: srv.URL, Host: "shop.test", Clients: 4, Shops: []string{"a.test", ""},
		MaxRequests: 200, MaxDuration: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(rep)
	tot := rep.Total
	// 200 requests: 20 proxy 502s, 20 cut bodies, 160 reach the app, which
	// fails every 4th (40) on purpose.
	if tot.Requests != 200 || tot.Status[502] != 20 || tot.Errors != 20 || tot.Status[503] != 40 || tot.Status[200] != 120 {
		t.Errorf("total %s", tot)
	}
	if tot.Deliberate != 40 || tot.Failed() != 80 || tot.BelayFailures() != 40 {
		t.Errorf("deliberate %d failed %d belay %d; want 40, 80, 40", tot.Deliberate, tot.Failed(), tot.BelayFailures())
	}
	if p := Get(rep.ByPool, NoApp); p.Requests != 40 || p.BelayFailures() != 40 {
		t.Errorf("pool %s: %s; want the 40 failures no app answered", NoApp, p)
	}
	canary, stable := Get(rep.ByPool, "canary"), Get(rep.ByPool, "stable")
	if canary.Requests+stable.Requests != 160 || canary.BelayFailures() != 0 || stable.BelayFailures() != 0 || canary.Deliberate+stable.Deliberate != 40 {
		t.Errorf("pools: canary %s; stable %s", canary, stable)
	}
	// Each client alternates; the shared count bound may end a client's run on either.
	if a, none := Get(rep.ByShop, "a.test").Requests, Get(rep.ByShop, "").Requests; a+none != 200 || a < 96 || a > 104 {
		t.Errorf("by shop: a.test %d, none %d; want 100 each, give or take one per client", a, none)
	}
	if v := Get(rep.ByRelease, "v1"); v.Requests != 160 {
		t.Errorf("release v1: %s", v)
	}
	// 4 kept-alive connections, plus one new connection per cut body (not
	// after a client's last request; and Go's transport may race a spare dial
	// while the previous connection returns to its pool).
	if rep.Conns < 4+20-4 || rep.Conns > 2*(4+20) {
		t.Errorf("%d connections, want about 24 (4 clients kept alive + 20 reconnects after a cut)", rep.Conns)
	}
	if len(rep.Failures) != MaxSamples {
		t.Errorf("%d failure samples, want %d", len(rep.Failures), MaxSamples)
	}
	for _, f := range rep.Failures {
		if !(f.Status == 502 && f.Pool == NoApp && f.Err == "") && !(f.Status == 0 && strings.Contains(f.Err, "body cut")) {
			t.Errorf("sampled failure %s: want a proxy 502 or a cut body", f)
		}
	}
}

func TestKeepAliveAndCountBound(t *testing.T) {
	srv := proxy(t, labapp.Config{Release: "v2"})
	srv.Config.Handler = labapp.New(labapp.Config{Release: "v2"}, nil).Handler() // well-behaved
	rep, err := Run(context.Background(), Options{Target: srv.URL + "/", Clients: 3, MaxRequests: 301, MaxDuration: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Total.Requests != 301 || rep.Total.Status[200] != 301 || rep.Total.Failed() != 0 {
		t.Errorf("total %s; want exactly 301 answered", rep.Total)
	}
	// 3 in the steady state; a spare dial racing a connection's return to its
	// pool is allowed, one per request is not.
	if rep.Conns < 3 || rep.Conns > 10 {
		t.Errorf("%d connections for 3 clients and 301 requests: keep-alive not used", rep.Conns)
	}
	if p := Get(rep.ByPool, "(direct)"); p.Requests != 301 {
		t.Errorf("without nginx the pool is (direct): %v", rep.ByPool)
	}
}

func TestTimeBound(t *testing.T) {
	srv := httptest.NewServer(labapp.New(labapp.Config{}, nil).Handler())
	t.Cleanup(srv.Close)
	rep, err := Run(context.Background(), Options{Target: srv.URL, Clients: 2, Gap: 10 * time.Millisecond, MaxDuration: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Elapsed < 300*time.Millisecond || rep.Elapsed > 2*time.Second || rep.Total.Requests < 4 || rep.Total.Failed() != 0 {
		t.Errorf("ran %s: %s", rep.Elapsed, rep.Total)
	}
}

// TestStopLetsSlowRequestsFinish: Stop starts nothing new, and the slow
// requests in flight are answered and counted, never cut into failures.
func TestStopLetsSlowRequestsFinish(t *testing.T) {
	srv := httptest.NewServer(labapp.New(labapp.Config{Release: "v3"}, nil).Handler())
	t.Cleanup(srv.Close)
	l, err := Start(context.Background(), Options{Target: srv.URL, Clients: 1, Gap: 5 * time.Millisecond, SlowClients: 2, SlowPath: "/sleep?d=500ms", Shops: []string{"a.test"}, MaxDuration: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	rep := l.Stop()
	if rep.Slow.Requests != 2 || rep.Slow.Status[200] != 2 {
		t.Errorf("slow clients: %s; want their 2 held requests answered", rep.Slow)
	}
	if a := Get(rep.ByShop, "a.test"); a.Requests != rep.Total.Requests-2 {
		t.Errorf("a.test named in %d of %d requests: want every fast one, no slow one", a.Requests, rep.Total.Requests)
	}
	if rep.Elapsed < 500*time.Millisecond || rep.Total.Failed() != 0 {
		t.Errorf("after %s: %s", rep.Elapsed, rep.Total)
	}
	if again := l.Stop(); again.Total.Requests != rep.Total.Requests {
		t.Errorf("a second Stop changed the report")
	}
}

func TestTimeoutIsAnError(t *testing.T) {
	srv := httptest.NewServer(labapp.New(labapp.Config{}, nil).Handler())
	t.Cleanup(srv.Close)
	rep, err := Run(context.Background(), Options{Target: srv.URL, Path: "/sleep?d=2s", Clients: 1, Timeout: 100 * time.Millisecond, MaxRequests: 2, MaxDuration: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Total.Errors != 2 || rep.Total.BelayFailures() != 2 || !strings.Contains(rep.Failures[0].Err, "Timeout") {
		t.Errorf("%s %v", rep.Total, rep.Failures)
	}
}

func TestContextStops(t *testing.T) {
	srv := httptest.NewServer(labapp.New(labapp.Config{}, nil).Handler())
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	rep, err := Run(ctx, Options{Target: srv.URL, Clients: 1, Gap: 10 * time.Millisecond, MaxDuration: time.Minute})
	if err != nil || rep.Elapsed > 2*time.Second || rep.Total.Failed() != 0 {
		t.Errorf("%v after %s: %s", err, rep.Elapsed, rep.Total)
	}
}

func TestOptionsChecked(t *testing.T) {
	ok := Options{Target: "http://127.0.0.1:1", Clients: 1, MaxDuration: time.Second}
	tests := []struct {
		name string
		mod  func(*Options)
		want string
	}{
		{"no target", func(o *Options) { o.Target = "" }, `Target "": expected a base URL`},
		{"target without scheme", func(o *Options) { o.Target = "10.0.0.1" }, `Target "10.0.0.1"`},
		{"no clients", func(o *Options) { o.Clients = 0 }, "both 0"},
		{"negative clients", func(o *Options) { o.Clients = -1 }, "Clients -1"},
		{"slow without path", func(o *Options) { o.SlowClients = 2 }, "SlowClients 2 without a SlowPath"},
		{"unbounded", func(o *Options) { o.MaxDuration = 0 }, "MaxDuration 0s: expected a positive bound"},
		{"negative gap", func(o *Options) { o.Gap = -time.Second }, "Gap -1s"},
		{"relative path", func(o *Options) { o.Path = "up" }, `path "up": expected it to start with /`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := ok
			tc.mod(&o)
			l, err := Start(context.Background(), o)
			if err == nil {
				l.Stop()
				t.Fatalf("Start accepted %+v", o)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%v, want %q", err, tc.want)
			}
		})
	}
}

func ExampleCounts_String() {
	c := Counts{Requests: 100, Status: map[int]int64{200: 94, 503: 4, 502: 1}, Errors: 1, Deliberate: 4}
	fmt.Println(c)
	// Output: 100 requests: 94×200 1×502 4×503, 1 errors; failed 6 (6.00 %), deliberate 4, caused by belay 2
}
