package plan_test

import (
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/belay-sh/belay/deploy/plan"
)

// healthScript is the plan's canary health command, pointed at url instead of
// the canary's loopback port.
func healthScript(t *testing.T, timeout time.Duration, url string) string {
	t.Helper()
	p, err := plan.Deploy(plan.Input{Inventory: inv(t), App: "shop", Release: "v42", Artifact: artifact,
		Strategy: plan.Strategy{HealthTimeout: timeout}})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range p.Steps {
		if strings.HasSuffix(s.ID, "canary-health") {
			const canary = "http://127.0.0.1:8001/healthz"
			if !strings.Contains(s.Command, canary) {
				t.Fatalf("canary health command does not probe %s:\n%s", canary, s.Command)
			}
			return strings.ReplaceAll(s.Command, canary, url)
		}
	}
	t.Fatal("no canary-health step")
	return ""
}

// TestHealthCommandPolls runs the rendered health check in a real shell
// against a local server: it keeps polling while the app is not ready, passes
// on the first 2xx, and gives up after the timeout naming the last answer.
func TestHealthCommandPolls(t *testing.T) {
	for _, tool := range []string{"sh", "curl", "date", "sleep"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	t.Run("ready after a few probes", func(t *testing.T) {
		var n atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if n.Add(1) <= 3 {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
		}))
		t.Cleanup(srv.Close)
		out, err := exec.Command("sh", "-c", healthScript(t, 30*time.Second, srv.URL+"/healthz")).CombinedOutput()
		if err != nil {
			t.Fatalf("health check failed against an app that became ready: %v\n%s", err, out)
		}
		if got := n.Load(); got != 4 {
			t.Errorf("probes = %d, want 4 (3 not ready, then ready)", got)
		}
	})
	t.Run("never ready", func(t *testing.T) {
		var n atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n.Add(1)
			w.WriteHeader(http.StatusInternalServerError)
		}))
		t.Cleanup(srv.Close)
		out, err := exec.Command("sh", "-c", healthScript(t, 400*time.Millisecond, srv.URL+"/healthz")).CombinedOutput()
		if err == nil {
			t.Fatalf("health check passed against an app answering 500:\n%s", out)
		}
		if !strings.Contains(string(out), "failed for 400ms") || !strings.Contains(string(out), "last answer: 500") {
			t.Errorf("failure does not say how long it tried and the last answer:\n%s", out)
		}
		if n.Load() < 2 {
			t.Errorf("probes = %d: gave up without polling again", n.Load())
		}
	})
	t.Run("nothing listening", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		url := srv.URL
		srv.Close()
		out, err := exec.Command("sh", "-c", healthScript(t, 200*time.Millisecond, url+"/healthz")).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "last answer: curl: (7)") || !strings.Contains(string(out), "000") {
			t.Errorf("want a failure showing curl's connect error and code 000; err %v\n%s", err, out)
		}
	})
}
