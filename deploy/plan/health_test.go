package plan_test

import (
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
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
// against a local server (with a running unit): it keeps polling while the app
// is not ready, passes on the first 2xx, and gives up after the timeout naming
// the last answer.
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
		f := newFakeSystemd(t, running)
		out, err := f.cmd(healthScript(t, 30*time.Second, srv.URL+"/healthz")).CombinedOutput()
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
		f := newFakeSystemd(t, running)
		out, err := f.cmd(healthScript(t, time.Second, srv.URL+"/healthz")).CombinedOutput()
		if err == nil {
			t.Fatalf("health check passed against an app answering 500:\n%s", out)
		}
		if !strings.Contains(string(out), "failed for 1s") || !strings.Contains(string(out), "last answer: 500") {
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
		f := newFakeSystemd(t, running)
		out, err := f.cmd(healthScript(t, 200*time.Millisecond, url+"/healthz")).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "last answer: curl: (7)") || !strings.Contains(string(out), "000") {
			t.Errorf("want a failure showing curl's connect error and code 000; err %v\n%s", err, out)
		}
	})
}

// TestHealthCommandStopsOnCrash: the health check fails at once — with the
// unit's log — when the unit is not running or restarted since the check
// began, instead of polling out its 30 s; and keeps polling when systemctl
// cannot tell.
func TestHealthCommandStopsOnCrash(t *testing.T) {
	for _, tool := range []string{"sh", "curl", "date", "sleep"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	closed := httptest.NewServer(http.NotFoundHandler())
	down := closed.URL + "/healthz"
	closed.Close()
	tests := []struct {
		name  string
		state string
		// later, if set, replaces the state 300 ms into the check.
		later string
		want  string
	}{
		{"start exits at once, systemd gave up", "ActiveState=failed SubState=failed NRestarts=3", "", "belay-canary@shop.service is failed (failed)"},
		{"crashed, waiting for its automatic restart", "ActiveState=activating SubState=auto-restart NRestarts=0", "", "exited and waits for its automatic restart (activating/auto-restart)"},
		{"start exited 0", "ActiveState=inactive SubState=dead NRestarts=0", "", "is inactive (dead)"},
		{"restarted since the check began", "ActiveState=active SubState=running NRestarts=2", "ActiveState=active SubState=running NRestarts=3", "restarted 1 time(s) (NRestarts 2 -> 3)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeSystemd(t, tc.state)
			if tc.later != "" {
				time.AfterFunc(300*time.Millisecond, func() { f.set(t, tc.later) })
			}
			start := time.Now()
			out, err := f.cmd(healthScript(t, 30*time.Second, down)).CombinedOutput()
			took := time.Since(start)
			if err == nil {
				t.Fatalf("health check passed against a crashed unit:\n%s", out)
			}
			// Stopped at the crash, not at the budget's end: what the check
			// said proves it (a wall-time bound flakes on a loaded box).
			if strings.Contains(string(out), "failed for 30s") {
				t.Errorf("the check polled out its budget instead of stopping at the crash:\n%s", out)
			}
			t.Logf("saw the crash after %s", took.Round(time.Millisecond))
			for _, want := range []string{tc.want, "last answer: curl: (7)", "panic: database URL not set", "journalctl -u belay-canary@shop.service -n 30"} {
				if !strings.Contains(string(out), want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
		})
	}
	t.Run("systemctl cannot tell: the probe alone decides", func(t *testing.T) {
		f := newFakeSystemd(t, running)
		f.write(t, "nosystemd", "")
		out, err := f.cmd(healthScript(t, 400*time.Millisecond, down)).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "failed for 400ms") {
			t.Errorf("want the timeout failure; err %v\n%s", err, out)
		}
	})
}

// TestRestartResetsFailedFirst runs the restart script with a fake systemd: a
// unit rate-limited by a crash-looping release restarts at once because the
// script resets its failed state first; a host whose sudoers predates
// reset-failed waits the limit out; other failures fail at once with the log.
func TestRestartResetsFailedFirst(t *testing.T) {
	const unit = "belay-canary@shop.service"
	t.Run("rate-limited unit restarts at once", func(t *testing.T) {
		f := newFakeSystemd(t, running)
		f.write(t, "limited", "5")
		if out, err := f.cmd(plan.Restart(unit)).CombinedOutput(); err != nil {
			t.Fatalf("restart failed: %v\n%s", err, out)
		}
		if got, want := strings.Join(f.calls(t), "|"), "reset-failed "+unit+"|restart "+unit; got != want {
			t.Errorf("calls %q, want %q", got, want)
		}
	})
	t.Run("old sudoers: waits out the limit", func(t *testing.T) {
		f := newFakeSystemd(t, running)
		f.write(t, "limited", "2")
		f.write(t, "no-reset", "")
		noSleep := t.TempDir() // the script sleeps 5 s per attempt; not here
		os.WriteFile(filepath.Join(noSleep, "sleep"), []byte("#!/bin/sh\nexit 0\n"), 0o755)
		if out, err := f.cmd(plan.Restart(unit), noSleep).CombinedOutput(); err != nil {
			t.Fatalf("restart failed: %v\n%s", err, out)
		}
		if n := strings.Count(strings.Join(f.calls(t), "\n"), "restart "+unit); n != 3 {
			t.Errorf("%d restart attempts, want 3 (two rate-limited, then started): %v", n, f.calls(t))
		}
	})
	t.Run("other failure: at once, with systemd's message and the log", func(t *testing.T) {
		f := newFakeSystemd(t, running)
		f.write(t, "restart-error", "Job for "+unit+" failed because the control process exited with error code.\n")
		out, err := f.cmd(plan.Restart(unit)).CombinedOutput()
		if err == nil {
			t.Fatalf("restart passed:\n%s", out)
		}
		for _, want := range []string{"control process exited with error code", "panic: database URL not set"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(string(out), "was refused") {
			t.Errorf("blames reset-failed although it worked:\n%s", out)
		}
	})
	t.Run("old sudoers and another failure: says how to fix the host", func(t *testing.T) {
		f := newFakeSystemd(t, running)
		f.write(t, "no-reset", "")
		f.write(t, "restart-error", "Job failed.\n")
		out, err := f.cmd(plan.Restart(unit)).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "reset-failed "+unit+" was refused: sudo: a password is required; this host's sudoers predates it") {
			t.Errorf("want the reset-failed hint; err %v\n%s", err, out)
		}
	})
}
