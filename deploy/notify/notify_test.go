package notify

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type warnings struct {
	mu    sync.Mutex
	lines []string
}

func (w *warnings) warn(f string, a ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.lines = append(w.lines, fmt.Sprintf(f, a...))
}

func (w *warnings) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.lines, "\n")
}

func TestParseURL(t *testing.T) {
	for _, tc := range []struct{ raw, want string }{
		{"https://hooks.example.com/x?token=s3cret", ""},
		{"http://127.0.0.1:8080/hook", ""},
		{"http://[::1]/hook", ""},
		{"http://localhost/hook", ""},
		{"http://hooks.example.com/x?token=s3cret", "http is allowed to a loopback host only"},
		{"ftp://hooks.example.com/", `scheme "ftp"`},
		{"hooks.example.com/x", "absolute https:// URL"},
	} {
		_, err := ParseURL(tc.raw)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: err %v, want %q", tc.raw, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: the error leaks the query: %v", tc.raw, err)
		}
	}
}

func TestRedact(t *testing.T) {
	for raw, want := range map[string]string{
		"https://user:pw@hooks.example.com/services/T0/B0?token=abc#frag": "https://***@hooks.example.com/services/T0/B0?***#***",
		"https://hooks.example.com/p":                                     "https://hooks.example.com/p",
		"::bad":                                                           "(unparsable URL)",
	} {
		if got := Redact(raw); got != want {
			t.Errorf("Redact(%q) = %q, want %q", raw, got, want)
		}
	}
}

func TestDeliversInOrderWithRetries(t *testing.T) {
	var calls atomic.Int32
	var mu sync.Mutex
	var got []Event
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		if n == 1 || n == 2 { // the first event fails twice, then goes through
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		if r.Header.Get("Content-Type") != "application/json" || r.Method != http.MethodPost {
			t.Errorf("request %s %s", r.Method, r.Header.Get("Content-Type"))
		}
		b, _ := io.ReadAll(r.Body)
		var ev Event
		if err := json.Unmarshal(b, &ev); err != nil {
			t.Error(err)
		}
		mu.Lock()
		got = append(got, ev)
		mu.Unlock()
	}))
	defer srv.Close()
	var w warnings
	n, err := New([]string{srv.URL + "/hook?token=s3cret"}, Options{Backoff: time.Millisecond, Warn: w.warn})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for _, e := range []string{"started", "verdict", "promoted"} {
		n.Send(Event{Event: e, App: "shop", Release: "v42", Analysis: map[string]int{"requests": 300}})
	}
	if d := time.Since(start); d > 50*time.Millisecond {
		t.Fatalf("Send blocked for %s", d)
	}
	n.Close(5 * time.Second)
	if len(got) != 3 || got[0].Event != "started" || got[1].Event != "verdict" || got[2].Event != "promoted" {
		t.Fatalf("delivered %+v", got)
	}
	if calls.Load() != 5 || w.String() != "" {
		t.Fatalf("calls %d, warnings %q", calls.Load(), w.String())
	}
}

func TestGivesUpWithAMaskedWarning(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	var w warnings
	n, _ := New([]string{srv.URL + "/hook?token=s3cret"}, Options{Backoff: time.Millisecond, Attempts: 3, Warn: w.warn})
	n.Send(Event{Event: "failed"})
	n.Close(5 * time.Second)
	if calls.Load() != 3 || !strings.Contains(w.String(), "failed event not delivered: 3 attempts: HTTP 503") {
		t.Fatalf("calls %d, warnings %q", calls.Load(), w.String())
	}
	if strings.Contains(w.String(), "s3cret") || !strings.Contains(w.String(), "/hook?***") {
		t.Fatalf("warning not masked: %q", w.String())
	}
}

func TestClientErrorNotRetried(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusNotFound)
	}))
	defer srv.Close()
	var w warnings
	n, _ := New([]string{srv.URL}, Options{Backoff: time.Millisecond, Warn: w.warn})
	n.Send(Event{Event: "started"})
	n.Close(5 * time.Second)
	if calls.Load() != 1 || !strings.Contains(w.String(), "HTTP 404 (not retried)") {
		t.Fatalf("calls %d, warnings %q", calls.Load(), w.String())
	}
}

// A hanging endpoint costs each attempt its timeout, and Close never waits
// longer than its bound: the deploy is not held by a webhook.
func TestTimeoutAndBoundedClose(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	var w warnings
	n, _ := New([]string{srv.URL + "/?key=s3cret"}, Options{Timeout: 50 * time.Millisecond, Backoff: 10 * time.Millisecond, Attempts: 2, Warn: w.warn})
	start := time.Now()
	n.Send(Event{Event: "started"})
	n.Close(2 * time.Second)
	if d := time.Since(start); d > time.Second {
		t.Fatalf("took %s, want about 2 x 50ms", d)
	}
	if !strings.Contains(w.String(), "2 attempts") || strings.Contains(w.String(), "s3cret") {
		t.Fatalf("warnings %q", w.String())
	}

	n, _ = New([]string{srv.URL}, Options{Timeout: time.Hour, Backoff: time.Millisecond, Warn: w.warn})
	start = time.Now()
	n.Send(Event{Event: "started"})
	n.Close(100 * time.Millisecond)
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Close waited %s, bound 100ms", d)
	}
}

func TestNilNotifier(t *testing.T) {
	n, err := New([]string{"", " "}, Options{})
	if err != nil || n != nil {
		t.Fatalf("no URLs: %v %v", n, err)
	}
	n.Send(Event{Event: "started"})
	n.Close(time.Second)
	if _, err := New([]string{"http://example.com/x?t=s3cret"}, Options{}); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("bad URL: %v", err)
	}
}
