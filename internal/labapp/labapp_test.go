package labapp

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		sw      Switches
		slot    string
		want    Config
		wantErr string
	}{
		{name: "ordinary app", sw: Switches{}, slot: "stable", want: Config{}},
		{name: "fail-stable in stable", sw: Switches{Health: "fail-stable"}, slot: "stable", want: Config{HealthFails: true}},
		{name: "fail-stable in canary", sw: Switches{Health: "fail-stable"}, slot: "canary", want: Config{}},
		{name: "canary errors only in canary", sw: Switches{CanaryErrors: "yes"}, slot: "stable", want: Config{}},
		{name: "canary errors spare a shop", sw: Switches{CanaryErrors: "yes", ErrorsSpare: "a.test"}, slot: "canary", want: Config{CanaryErrors: true, ErrorsSpare: "a.test"}},
		{name: "faults everywhere", sw: Switches{ErrorsOneIn: "25", SlowRoot: "300ms", CrashAfter: "8s", CrashLoop: "yes", Drain: "5s"}, slot: "stable",
			want: Config{ErrorsOneIn: 25, SlowRoot: 300 * time.Millisecond, CrashAfter: 8 * time.Second, CrashLoop: true, Drain: 5 * time.Second}},
		{name: "faults held to the canary slot", sw: Switches{ErrorsOneIn: "25", SlowRoot: "300ms", CrashAfter: "8s", CrashLoop: "yes", Drain: "5s", StartDelay: "1s", FaultSlot: "canary"}, slot: "stable",
			want: Config{Drain: 5 * time.Second, StartDelay: time.Second}},
		{name: "faults in their slot", sw: Switches{ErrorsOneIn: "4", FaultSlot: "canary"}, slot: "canary", want: Config{ErrorsOneIn: 4}},
		{name: "bad health", sw: Switches{Health: "maybe"}, wantErr: `main.health="maybe": expected ok, fail or fail-stable`},
		{name: "bad canaryErrors", sw: Switches{CanaryErrors: "1"}, wantErr: `main.canaryErrors="1"`},
		{name: "spare without errors", sw: Switches{ErrorsSpare: "a.test"}, wantErr: `main.canaryErrorsSpare="a.test": only meaningful with -X main.canaryErrors=yes`},
		{name: "bad slot", sw: Switches{FaultSlot: "blue"}, wantErr: `main.faultSlot="blue"`},
		{name: "bad duration", sw: Switches{SlowRoot: "300"}, wantErr: `main.slowRoot="300": expected a duration`},
		{name: "negative duration", sw: Switches{Drain: "-1s"}, wantErr: `main.drain="-1s"`},
		{name: "bad share", sw: Switches{ErrorsOneIn: "1"}, wantErr: `main.errorsOneIn="1": expected a whole number of at least 2`},
		{name: "bad share word", sw: Switches{ErrorsOneIn: "4%"}, wantErr: `main.errorsOneIn="4%"`},
		{name: "bad crashLoop", sw: Switches{CrashLoop: "true"}, wantErr: `main.crashLoop="true"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(tc.sw, "r1", tc.slot, "b1")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Parse: %v, want an error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.want.Release, tc.want.Slot, tc.want.BuildID = "r1", tc.slot, "b1"
			if got != tc.want {
				t.Errorf("Parse = %+v\nwant    %+v", got, tc.want)
			}
		})
	}
}

type answer struct {
	status                    int
	body, deliberate, release string
	pool, slot                string
}

func do(t *testing.T, srv *httptest.Server, path string, hdr map[string]string) answer {
	t.Helper()
	req, _ := http.NewRequest("GET", srv.URL+path, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, string(b), resp.Header.Get(HeaderDeliberate), resp.Header.Get(HeaderRelease), resp.Header.Get(HeaderPool), resp.Header.Get(HeaderSlot)}
}

func serve(t *testing.T, cfg Config, crash func(string)) *httptest.Server {
	t.Helper()
	if crash == nil {
		crash = func(r string) { t.Errorf("unexpected crash: %s", r) }
	}
	srv := httptest.NewServer(New(cfg, crash).Handler())
	t.Cleanup(srv.Close)
	return srv
}

func TestOrdinaryAnswersAndHeaders(t *testing.T) {
	srv := serve(t, Config{Release: "v1", Slot: "canary", BuildID: "b7"}, nil)
	a := do(t, srv, "/?shop=a.test", map[string]string{HeaderPool: "canary"})
	if a.status != 200 || a.body != "release=v1 slot=canary build=b7\n" || a.release != "v1" || a.slot != "canary" || a.pool != "canary" || a.deliberate != "" {
		t.Errorf("/: %+v", a)
	}
	if a := do(t, srv, "/", nil); a.pool != "" {
		t.Errorf("pool header %q echoed although nginx sent none", a.pool)
	}
	if a := do(t, srv, HealthPath, nil); a.status != 200 || a.release != "v1" {
		t.Errorf("health: %+v", a)
	}
	if a := do(t, srv, "/sleep?d=forever", nil); a.status != 400 || !strings.Contains(a.body, `d="forever"`) {
		t.Errorf("bad /sleep: %+v", a)
	}
	if a := do(t, srv, "/sleep?d=2m", nil); a.status != 400 {
		t.Errorf("/sleep over MaxSleep: %+v", a)
	}
	start := time.Now()
	if a := do(t, srv, "/sleep?d=150ms", nil); a.status != 200 || time.Since(start) < 150*time.Millisecond {
		t.Errorf("/sleep?d=150ms: %+v after %s", a, time.Since(start))
	}
}

// TestErrorsOneIn: exactly every Nth app request is a deliberate 503, health checks not counted.
func TestErrorsOneIn(t *testing.T) {
	srv := serve(t, Config{Release: "v1", Slot: "stable", ErrorsOneIn: 25}, nil)
	var failed []int
	for i := 1; i <= 100; i++ {
		do(t, srv, HealthPath, nil) // never counted, never failed
		a := do(t, srv, "/", nil)
		if a.status == 503 {
			if a.deliberate != "errorsOneIn=25" || a.release != "v1" {
				t.Errorf("503 #%d lacks its marks: %+v", i, a)
			}
			failed = append(failed, i)
		} else if a.status != 200 || a.deliberate != "" {
			t.Errorf("request %d: %+v", i, a)
		}
	}
	if len(failed) != 4 || failed[0] != 25 || failed[3] != 100 {
		t.Errorf("503s at %v, want exactly requests 25, 50, 75, 100", failed)
	}
}

func TestCanaryErrorsSpareAShop(t *testing.T) {
	srv := serve(t, Config{Release: "v1", Slot: "canary", CanaryErrors: true, ErrorsSpare: "alpha.test"}, nil)
	if a := do(t, srv, "/?shop=alpha.test", nil); a.status != 200 {
		t.Errorf("spared shop: %+v", a)
	}
	for _, p := range []string{"/", "/?shop=beta.test", "/sleep?d=1ms"} {
		if a := do(t, srv, p, nil); a.status != 500 || a.deliberate != "canaryErrors" {
			t.Errorf("%s: %+v, want a deliberate 500", p, a)
		}
	}
	if a := do(t, srv, HealthPath, nil); a.status != 200 {
		t.Errorf("health must pass: %+v", a)
	}
}

func TestSlowRoot(t *testing.T) {
	srv := serve(t, Config{SlowRoot: 200 * time.Millisecond}, nil)
	start := time.Now()
	do(t, srv, HealthPath, nil)
	if d := time.Since(start); d > 150*time.Millisecond {
		t.Errorf("health took %s: slowRoot must not slow it", d)
	}
	start = time.Now()
	if a := do(t, srv, "/", nil); a.status != 200 || time.Since(start) < 200*time.Millisecond {
		t.Errorf("/ took %s (%+v), want at least 200ms", time.Since(start), a)
	}
}

func TestHealthFails(t *testing.T) {
	srv := serve(t, Config{HealthFails: true}, nil)
	if a := do(t, srv, HealthPath, nil); a.status != 500 {
		t.Errorf("health: %+v", a)
	}
	if a := do(t, srv, "/", nil); a.status != 200 {
		t.Errorf("/ must still answer: %+v", a)
	}
}

// TestCrashAfterCountsFromFirstPassedHealth: no crash while nobody checked
// health, one crash CrashAfter after the first passed check.
func TestCrashAfterCountsFromFirstPassedHealth(t *testing.T) {
	crashed := make(chan time.Time, 2)
	srv := serve(t, Config{CrashAfter: 100 * time.Millisecond}, func(string) { crashed <- time.Now() })
	do(t, srv, "/", nil)
	select {
	case <-crashed:
		t.Fatal("crashed before any health check")
	case <-time.After(250 * time.Millisecond):
	}
	checked := time.Now()
	do(t, srv, HealthPath, nil)
	do(t, srv, HealthPath, nil)
	select {
	case at := <-crashed:
		if d := at.Sub(checked); d < 100*time.Millisecond {
			t.Errorf("crashed %s after the first check, want >= 100ms", d)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("no crash 2 s after the first passed health check")
	}
	select {
	case <-crashed:
		t.Error("crashed twice: the timer must start once")
	case <-time.After(200 * time.Millisecond):
	}
}
