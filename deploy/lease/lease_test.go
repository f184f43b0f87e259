package lease_test

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/belay-sh/belay/deploy/lease"
	"github.com/belay-sh/belay/hostrelease"
)

func sh(t *testing.T, script string) (string, int) {
	t.Helper()
	out, err := exec.Command("sh", "-c", script).Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(out), ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(out), 0
}

func TestLeaseLifecycle(t *testing.T) {
	l := hostrelease.Layout{App: "shop", Base: t.TempDir()}
	a := lease.Owner{Token: "tok-a", Who: "alice@laptop", PID: 11, Action: "deploy v42"}
	b := lease.Owner{Token: "tok-b", Who: "ci@runner", PID: 22, CI: "https://github.com/x/y/actions/runs/1", Action: "deploy v43"}
	steps := []struct {
		name string
		cmd  string
		code int
		who  string // holder named in the output when refused
	}{
		{"a takes a free lease", lease.AcquireCommand(l, a, time.Minute, false), 0, ""},
		{"b is refused", lease.AcquireCommand(l, b, time.Minute, false), 75, "alice@laptop"},
		{"a renews", lease.AcquireCommand(l, a, time.Minute, true), 0, ""},
		{"b cannot renew what it does not hold", lease.AcquireCommand(l, b, time.Minute, true), 75, "alice@laptop"},
		{"a re-acquires its own lease", lease.AcquireCommand(l, a, 0, false), 0, ""},
		{"b takes the stale lease", lease.AcquireCommand(l, b, time.Minute, false), 0, ""},
		{"a lost it", lease.AcquireCommand(l, a, time.Minute, true), 75, "ci@runner"},
		{"a's release leaves b's lease", lease.ReleaseCommand(l, a), 0, ""},
		{"still b's", lease.AcquireCommand(l, a, time.Minute, false), 75, "ci@runner"},
		{"b releases", lease.ReleaseCommand(l, b), 0, ""},
		{"free again", lease.AcquireCommand(l, a, time.Minute, false), 0, ""},
	}
	for _, s := range steps {
		out, code := sh(t, s.cmd)
		if code != s.code {
			t.Fatalf("%s: exit %d, want %d (%s)", s.name, code, s.code, out)
		}
		if s.who != "" {
			h, err := lease.Parse([]byte(out))
			if err != nil || h.Owner.Who != s.who || h.Expires.Before(time.Now().Add(-time.Minute)) {
				t.Fatalf("%s: holder %+v %v, want %s", s.name, h, err, s.who)
			}
			msg := (&lease.HeldError{App: "shop", Host: "shop-1", Held: h}).Error()
			if !strings.Contains(msg, s.who) || !strings.Contains(msg, "until") {
				t.Errorf("message %q should name the owner and expiry", msg)
			}
		}
	}
}

// TestLeaseExclusive races many acquirers: flock lets exactly one win.
func TestLeaseExclusive(t *testing.T) {
	l := hostrelease.Layout{App: "shop", Base: t.TempDir()}
	const n = 8
	codes := make(chan int, n)
	for i := 0; i < n; i++ {
		o := lease.Owner{Token: "tok-" + string(rune('a'+i)), Who: "w", Action: "deploy"}
		go func() {
			out, err := exec.Command("sh", "-c", lease.AcquireCommand(l, o, time.Minute, false)).Output()
			_ = out
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				codes <- ee.ExitCode()
				return
			}
			codes <- 0
		}()
	}
	wins := 0
	for i := 0; i < n; i++ {
		if <-codes == 0 {
			wins++
		}
	}
	if wins != 1 {
		t.Fatalf("%d acquirers won, want exactly 1", wins)
	}
}

func TestStealOnlyFromTheDeadHolder(t *testing.T) {
	l := hostrelease.Layout{App: "shop", Base: t.TempDir()}
	dead := lease.Owner{Token: "tok-dead", Who: "ci@runner", PID: 99999, Action: "deploy v1"}
	me := lease.Owner{Token: "tok-me", Who: "ci@runner", PID: 100, Action: "deploy v2"}
	other := lease.Owner{Token: "tok-other", Who: "bob@laptop", PID: 7, Action: "rollback"}
	if _, code := sh(t, lease.AcquireCommand(l, dead, time.Hour, false)); code != 0 {
		t.Fatal("setup")
	}
	if out, code := sh(t, lease.StealCommand(l, me, "tok-dead", time.Minute)); code != 0 {
		t.Fatalf("steal from the dead holder: %d %s", code, out)
	}
	// The stale token no longer holds it: a second steal (someone else's view) fails.
	if _, code := sh(t, lease.StealCommand(l, other, "tok-dead", time.Minute)); code != 75 {
		t.Fatalf("stole a lease that changed hands: exit %d", code)
	}
	if _, code := sh(t, lease.AcquireCommand(l, me, time.Minute, true)); code != 0 {
		t.Fatal("the thief does not hold the lease")
	}
}
