package lease_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/belay-sh/belay/deploy/lease"
	"github.com/belay-sh/belay/hostrelease"
	"github.com/belay-sh/belay/internal/shq"
)

// TestFenceRefusesOtherTokens: a step runs only under the host's fence token,
// and on the lease host only while the lease file carries it unexpired.
func TestFenceRefusesOtherTokens(t *testing.T) {
	l := hostrelease.Layout{App: "shop", Base: t.TempDir()}
	a := lease.Owner{Token: "aaaaaaaaaaaaaaaa", Who: "alice@laptop", Action: "deploy v1"}
	b := lease.Owner{Token: "bbbbbbbbbbbbbbbb", Who: "bob@ci", Action: "deploy v2"}
	trace := filepath.Join(l.Base, "trace")
	step := func(name string) string { return "printf '%s\\n' " + shq.Quote(name) + " >> " + trace }
	fa := &lease.Fence{Layout: l, Token: a.Token, LeaseHost: "shop-1"}
	tests := []struct {
		name  string
		setup string
		host  string
		fence *lease.Fence
		code  int
		msg   string
	}{
		{"no fence yet", "", "shop-2", fa, 76, "(none)"},
		{"fenced for a", lease.WriteFenceCommand(l, a.Token), "shop-2", fa, 0, ""},
		{"lease host without the lease", "", "shop-1", fa, 76, "no longer holds the lease"},
		{"lease host with a's lease", lease.AcquireCommand(l, a, time.Minute, false), "shop-1", fa, 0, ""},
		{"expired lease on the lease host", lease.AcquireCommand(l, a, 0, false), "shop-1", fa, 76, "expired or taken over"},
		{"b took the lease: lease host refuses a", lease.AcquireCommand(l, b, time.Minute, false), "shop-1", fa, 76, "no longer holds"},
		{"b fenced the other host: a refused there too", lease.WriteFenceCommand(l, b.Token), "shop-2", fa, 76, b.Token},
		{"b runs", "", "shop-2", &lease.Fence{Layout: l, Token: b.Token, LeaseHost: "shop-1"}, 0, ""},
		{"hostile token is one word", "", "shop-2", &lease.Fence{Layout: l, Token: "x'; touch " + l.Base + "/pwned; '", LeaseHost: "shop-1"}, 76, ""},
	}
	for _, tc := range tests {
		if tc.setup != "" {
			if out, code := sh(t, tc.setup); code != 0 {
				t.Fatalf("%s: setup exit %d: %s", tc.name, code, out)
			}
		}
		os.Remove(trace)
		cmd := exec.Command("sh", "-c", tc.fence.Wrap(tc.host, step(tc.name)))
		var stderr strings.Builder
		cmd.Stderr = &stderr
		err := cmd.Run()
		code := 0
		if err != nil {
			code = cmd.ProcessState.ExitCode()
		}
		ran, _ := os.ReadFile(trace)
		if code != tc.code || (code == 0) != (string(ran) == tc.name+"\n") {
			t.Errorf("%s: exit %d (want %d), step ran: %q, stderr %s", tc.name, code, tc.code, ran, stderr.String())
		}
		if !strings.Contains(stderr.String(), tc.msg) {
			t.Errorf("%s: stderr %q lacks %q", tc.name, stderr.String(), tc.msg)
		}
	}
	if _, err := os.Stat(filepath.Join(l.Base, "pwned")); err == nil {
		t.Fatal("a quote in the token escaped the shell word")
	}
	var nilFence *lease.Fence
	if nilFence.Wrap("shop-1", "true") != "true" {
		t.Fatal("a nil fence must leave the command alone")
	}
}

// TestFenceWriteWaitsForSteps: a new fence is only written once the steps
// under way on the host have ended, and a step started after it is refused.
func TestFenceWriteWaitsForSteps(t *testing.T) {
	l := hostrelease.Layout{App: "shop", Base: t.TempDir()}
	if _, code := sh(t, lease.WriteFenceCommand(l, "aaaaaaaaaaaaaaaa")); code != 0 {
		t.Fatal("setup")
	}
	fa := &lease.Fence{Layout: l, Token: "aaaaaaaaaaaaaaaa", LeaseHost: "elsewhere"}
	trace := filepath.Join(l.Base, "trace")
	long := exec.Command("sh", "-c", fa.Wrap("shop-2", "echo step-start >> "+trace+"; sleep 0.6; echo step-end >> "+trace))
	if err := long.Start(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ { // until the step holds the lock
		if b, _ := os.ReadFile(trace); len(b) > 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, code := sh(t, lease.WriteFenceCommand(l, "bbbbbbbbbbbbbbbb")+" && echo fence-b >> "+trace); code != 0 {
		t.Fatal("fence write failed")
	}
	if err := long.Wait(); err != nil {
		t.Fatalf("the step under way was disturbed: %v", err)
	}
	if _, code := sh(t, fa.Wrap("shop-2", "echo late >> "+trace)); code != 76 {
		t.Fatalf("a step of the old token after the new fence: exit %d, want 76", code)
	}
	got, _ := os.ReadFile(trace)
	if string(got) != "step-start\nstep-end\nfence-b\n" {
		t.Fatalf("order on the host:\n%s\nwant the step to end before the new fence, and nothing after", got)
	}
}
