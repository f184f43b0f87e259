package lease_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/belay-sh/belay/deploy/lease"
	"github.com/belay-sh/belay/hostrelease"
)

// localHosts runs commands with sh on this machine, one root per host name
// (BELAY_ROOT); cut hosts fail like an unreachable one.
type localHosts struct {
	roots map[string]string
	cut   map[string]*atomic.Bool
}

func newLocalHosts(t *testing.T, names ...string) *localHosts {
	t.Helper()
	lh := &localHosts{roots: map[string]string{}, cut: map[string]*atomic.Bool{}}
	for _, n := range names {
		lh.roots[n] = filepath.Join(t.TempDir(), n)
		os.MkdirAll(lh.roots[n], 0o755)
		lh.cut[n] = &atomic.Bool{}
	}
	return lh
}

func (lh *localHosts) exec(ctx context.Context, host, cmd string) ([]byte, int, error) {
	if lh.cut[host].Load() {
		return nil, -1, fmt.Errorf("host %s: dial: connection timed out", host)
	}
	c := exec.CommandContext(ctx, "sh", "-c", cmd)
	c.Env = append(os.Environ(), "BELAY_ROOT="+lh.roots[host])
	c.WaitDelay = 200 * time.Millisecond // a killed sh must not wait for its children's pipes
	out, err := c.Output()
	if err != nil {
		return out, c.ProcessState.ExitCode(), err
	}
	return out, 0, nil
}

var hostLayout = hostrelease.Layout{App: "shop", Base: "$BELAY_ROOT"}

func newHolder(lh *localHosts, who string, ttl time.Duration) *lease.Holder {
	return &lease.Holder{Exec: lh.exec, Layout: hostLayout, LeaseHost: "shop-1", Servers: []string{"shop-1", "shop-2"},
		Owner: lease.Owner{Who: who, Action: "deploy"}, TTL: ttl}
}

func fence(t *testing.T, lh *localHosts, host string) string {
	t.Helper()
	b, _ := os.ReadFile(filepath.Join(lh.roots[host], "shop", ".belay", "fence"))
	return strings.TrimSpace(string(b))
}

// TestHolderFencesEveryServer: taking the lease writes the token into every
// server's fence before anything runs; a second holder is refused naming the first.
func TestHolderFencesEveryServer(t *testing.T) {
	lh := newLocalHosts(t, "shop-1", "shop-2")
	a := newHolder(lh, "alice@laptop", time.Minute)
	if err := a.Take(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"shop-1", "shop-2"} {
		if got := fence(t, lh, h); got != a.Owner.Token {
			t.Errorf("%s fence %q, want a's token", h, got)
		}
	}
	b := newHolder(lh, "bob@ci", time.Minute)
	err := b.Take(context.Background())
	var held *lease.HeldError
	if !errors.As(err, &held) || !strings.Contains(err.Error(), "alice@laptop") || !strings.Contains(err.Error(), "since") {
		t.Fatalf("second holder: %v, want a HeldError naming alice and since when", err)
	}
	if got := fence(t, lh, "shop-2"); got != a.Owner.Token {
		t.Errorf("a refused holder changed the fence to %q", got)
	}
	_, done := a.Hold(context.Background())
	done()
	if err := b.Take(context.Background()); err != nil {
		t.Fatalf("after a released: %v", err)
	}
}

// TestHolderStopsBeforeExpiry: cut from the lease host, a holder cancels its
// run with lease.ErrLost while the lease is still valid (margin left), not after.
func TestHolderStopsBeforeExpiry(t *testing.T) {
	lh := newLocalHosts(t, "shop-1", "shop-2")
	a := newHolder(lh, "alice@laptop", 4*time.Second)
	a.RenewEvery, a.Retry, a.Margin = 500*time.Millisecond, 200*time.Millisecond, time.Second
	if err := a.Take(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, done := a.Hold(context.Background())
	defer done()
	time.Sleep(1200 * time.Millisecond) // renewals succeed meanwhile
	lh.cut["shop-1"].Store(true)
	cutAt := time.Now()
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the run was not cancelled although the lease could not be renewed")
	}
	stopped := time.Now()
	if !errors.Is(context.Cause(ctx), lease.ErrLost) {
		t.Fatalf("cause %v, want ErrLost", context.Cause(ctx))
	}
	if left := a.ValidUntil().Sub(stopped); left < 500*time.Millisecond {
		t.Fatalf("stopped %s after the cut with only %s of the lease left; want the margin (1s) kept", stopped.Sub(cutAt), left)
	}
	if !strings.Contains(context.Cause(ctx).Error(), "could not renew") {
		t.Errorf("cause %q should say the renewal failed", context.Cause(ctx))
	}
	if lease.Survive(ctx).Err() == nil {
		t.Error("the rollback context survives the loss of the lease")
	}
}

// TestHolderLosesToTakeover: a lease taken over (expired, then taken by b)
// cancels a's run at its next renewal, and Survive (the rollback's context)
// ends with it; a plain cancel of a's run leaves Survive alive.
func TestHolderLosesToTakeover(t *testing.T) {
	lh := newLocalHosts(t, "shop-1", "shop-2")
	a := newHolder(lh, "alice@laptop", time.Minute)
	a.RenewEvery = 200 * time.Millisecond
	if err := a.Take(context.Background()); err != nil {
		t.Fatal(err)
	}
	parent, cancel := context.WithCancel(context.Background())
	ctx, done := a.Hold(parent)
	defer done()
	cancel() // Ctrl-C: the run stops, its rollback may go on
	if ctx.Err() == nil || lease.Survive(ctx).Err() != nil {
		t.Fatal("Ctrl-C must end the run but not the rollback context")
	}
	// b breaks the lease (the audited way out).
	held, err := lease.Break(context.Background(), lh.exec, hostLayout, "shop-1", []string{"shop-2"})
	if err != nil || held.Owner.Who != "alice@laptop" {
		t.Fatalf("break: %+v %v", held, err)
	}
	select {
	case <-lease.Survive(ctx).Done():
	case <-time.After(5 * time.Second):
		t.Fatal("a kept going after its lease was broken")
	}
	if !errors.Is(context.Cause(lease.Survive(ctx)), lease.ErrLost) {
		t.Fatalf("cause %v", context.Cause(lease.Survive(ctx)))
	}
	for _, h := range []string{"shop-1", "shop-2"} {
		if f := fence(t, lh, h); !strings.HasPrefix(f, "broken-") {
			t.Errorf("%s fence %q after a break, want a token nobody holds", h, f)
		}
	}
	if _, err := lease.Break(context.Background(), lh.exec, hostLayout, "shop-1", nil); err == nil || !strings.Contains(err.Error(), "free") {
		t.Errorf("breaking a free lease: %v", err)
	}
}

// TestHolderTakesOverOnlyProvenDead: a lease whose holder's local lock is
// free is taken over at once; one held by a live holder (or one on another
// machine, no lock file here) is not, whatever its hostname and PID say.
func TestHolderTakesOverOnlyProvenDead(t *testing.T) {
	lh := newLocalHosts(t, "shop-1", "shop-2")
	ll := &lease.LocalLock{Dir: t.TempDir()}
	a := newHolder(lh, "ci@runner", time.Hour)
	a.Local = ll
	if err := a.Take(context.Background()); err != nil {
		t.Fatal(err)
	}
	b := newHolder(lh, "ci@runner", time.Hour)
	b.Local = ll
	if err := b.Take(context.Background()); err == nil {
		t.Fatal("took over from a live holder")
	}
	other := newHolder(lh, "ci@runner", time.Hour)
	other.Local = &lease.LocalLock{Dir: t.TempDir()} // another container: same hostname, no lock file
	if err := other.Take(context.Background()); err == nil {
		t.Fatal("took over from a holder it cannot see")
	}
	_, done := a.Hold(context.Background())
	done()
	// A holder SIGKILLed on this machine leaves its lease and its lock file,
	// with no process holding the flock.
	dead := lease.Owner{Token: "dddddddddddddddd", Who: "ci@runner", PID: 1, Action: "deploy v1"}
	if _, code, err := lh.exec(context.Background(), "shop-1", lease.AcquireCommand(hostLayout, dead, time.Hour, false)); code != 0 {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ll.Dir, "lease-"+dead.Token+".lock"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	c := newHolder(lh, "ci@runner", time.Hour)
	c.Local = ll
	if err := c.Take(context.Background()); err != nil {
		t.Fatalf("takeover of a proven-dead holder: %v", err)
	}
	if fence(t, lh, "shop-2") != c.Owner.Token {
		t.Error("the taker did not fence the servers")
	}
	if _, err := os.Stat(filepath.Join(ll.Dir, "lease-"+dead.Token+".lock")); !os.IsNotExist(err) {
		t.Error("the dead holder's lock file was not cleaned up")
	}
}
