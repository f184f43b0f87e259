package lease

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/belay-sh/belay/deploy/sshx"
	"github.com/belay-sh/belay/hostrelease"
	"github.com/belay-sh/belay/internal/clock"
)

// Exec runs cmd as the deploy user on host. code is the exit status (-1 when
// the command did not run); err is non-nil for any failure, a non-zero exit included.
type Exec func(ctx context.Context, host, cmd string) (stdout []byte, code int, err error)

// ErrLost is the cause of a held run's cancellation: the lease was taken,
// broken, or could not be renewed before it would expire.
var ErrLost = errors.New("lease lost")

// errGone: a renewal found no lease file at all.
var errGone = errors.New("lease gone")

// Holder takes an app's lease, fences every server of the app, renews the
// lease while a run goes on and cancels the run before the lease can expire
// unrenewed. It runs its commands through Exec (deploy's SSH pool, or the
// operator commands' remote.Runner).
type Holder struct {
	Exec      Exec
	Layout    hostrelease.Layout
	LeaseHost string
	// Servers get the fence; the lease host is always one of them.
	Servers []string
	Owner   Owner
	// TTL is the lease's life without renewal (default DefaultTTL).
	TTL time.Duration
	// RenewEvery (default TTL/4) is the renewal period; a failed renewal is
	// retried every Retry (default TTL/30, at least 1 s). Margin (default TTL/4)
	// is the least lease life left: when renewals fail until less remains, the
	// run is cancelled, so it stops well before another run can take over.
	RenewEvery, Retry, Margin time.Duration
	// Local proves a holder on this machine dead; nil: no takeover by proof.
	Local *LocalLock
	// Wait queues behind a held lease (polling every WaitPoll, default 10 s) up to WaitTimeout (0: no limit).
	Wait        bool
	WaitTimeout time.Duration
	WaitPoll    time.Duration
	Note        func(format string, a ...any)
	// Now and Sleep make the deployer's clock injectable (tests).
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error

	mu         sync.Mutex
	validUntil time.Time // by the local clock: send time of the last successful take/renewal + TTL
	unlock     func()
}

func (h *Holder) ttl() time.Duration {
	if h.TTL > 0 {
		return h.TTL
	}
	return DefaultTTL
}

func (h *Holder) now() time.Time { return clock.Now(h.Now) }

func (h *Holder) sleep(ctx context.Context, d time.Duration) error {
	return clock.Sleep(ctx, h.Sleep, d)
}

func (h *Holder) note(format string, a ...any) {
	if h.Note != nil {
		h.Note(format, a...)
	}
}

// NewToken returns a fresh random lease token (32 hex digits).
func NewToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Fence is the fence the held run's host steps must check.
func (h *Holder) Fence() *Fence {
	return &Fence{Layout: h.Layout, Token: h.Owner.Token, LeaseHost: h.LeaseHost}
}

// run executes one lease command on the lease host; a "held" exit becomes a *HeldError.
func (h *Holder) run(ctx context.Context, cmd string) error {
	return h.runWithin(ctx, time.Minute, cmd)
}

func (h *Holder) runWithin(ctx context.Context, timeout time.Duration, cmd string) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out, code, err := h.Exec(ctx, h.LeaseHost, cmd)
	if err == nil {
		return nil
	}
	if IsHeld(code) && len(strings.TrimSpace(string(out))) == 0 {
		return fmt.Errorf("%w: the lease on %s is gone (broken or released)", errGone, h.LeaseHost)
	}
	if IsHeld(code) {
		held, perr := Parse(out)
		if perr != nil {
			return fmt.Errorf("app %s is locked (lease on %s unreadable: %v)", h.Layout.App, h.LeaseHost, perr)
		}
		return &HeldError{App: h.Layout.App, Host: h.LeaseHost, Held: held}
	}
	return fmt.Errorf("lease on %s: %w", h.LeaseHost, err)
}

// Take acquires the lease (queueing with Wait; taking over a holder proven
// dead), then writes this run's token into every server's fence. Nothing else
// runs on any host before Take returns.
func (h *Holder) Take(ctx context.Context) error {
	if h.Owner.Token == "" {
		h.Owner.Token = NewToken()
	}
	h.Owner.Since = h.now().UTC()
	if h.Local != nil {
		unlock, err := h.Local.Hold(h.Owner.Token)
		if err != nil {
			return err
		}
		h.unlock = unlock
	}
	poll := h.WaitPoll
	if poll <= 0 {
		poll = 10 * time.Second
	}
	deadline := h.now().Add(h.WaitTimeout)
	for {
		sent := h.now()
		err := h.run(ctx, AcquireCommand(h.Layout, h.Owner, h.ttl(), false))
		var held *HeldError
		if errors.As(err, &held) && h.Local != nil && h.Local.Gone(held.Held.Owner.Token) {
			h.note("lease held by %s (%s), whose run on this machine is gone (its lock is free): taking it over", held.Held.Owner.Who, held.Held.Owner.Action)
			sent = h.now()
			if err = h.run(ctx, StealCommand(h.Layout, h.Owner, held.Held.Owner.Token, h.ttl())); err == nil {
				h.Local.Forget(held.Held.Owner.Token)
			}
		}
		if err == nil {
			h.setValid(sent)
			break
		}
		if !errors.As(err, &held) || !h.Wait || (h.WaitTimeout > 0 && h.now().After(deadline)) {
			h.dropLocal()
			return err
		}
		h.note("waiting: %v", err)
		if err := h.sleep(ctx, poll); err != nil {
			h.dropLocal()
			return err
		}
	}
	if err := WriteFences(ctx, h.Exec, h.Layout, h.servers(), h.Owner.Token); err != nil {
		h.release()
		return fmt.Errorf("fencing the servers of %s (lease released, nothing ran): %w", h.Layout.App, err)
	}
	return nil
}

func (h *Holder) servers() []string {
	out := []string{h.LeaseHost}
	for _, s := range h.Servers {
		if s != h.LeaseHost {
			out = append(out, s)
		}
	}
	return out
}

// WriteFences sets token as the fence on every host, in parallel; each write
// waits for the steps under way on its host.
func WriteFences(ctx context.Context, exec Exec, l hostrelease.Layout, hosts []string, token string) error {
	var mu sync.Mutex
	var errs []string
	var wg sync.WaitGroup
	for _, host := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fctx, cancel := context.WithTimeout(ctx, FenceWait*time.Second+time.Minute)
			defer cancel()
			if _, _, err := exec(fctx, host, WriteFenceCommand(l, token)); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Sprintf("%s: %v", host, err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		sort.Strings(errs)
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

func (h *Holder) setValid(sent time.Time) {
	h.mu.Lock()
	// The host counts whole seconds: its expiry may be up to 1 s short of sent+TTL.
	h.validUntil = sent.Add(h.ttl() - time.Second)
	h.mu.Unlock()
}

// ValidUntil is when the lease expires at the latest by the local clock,
// counted from the send time of the last successful take or renewal.
func (h *Holder) ValidUntil() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.validUntil
}

type leaseCtxKey struct{}

// Hold returns ctx cancelled (cause wrapping ErrLost) when the lease is lost
// or cannot be renewed in time, and starts renewing. done stops renewing and
// releases the lease; call it once the run is over.
func (h *Holder) Hold(ctx context.Context) (held context.Context, done func()) {
	ttl := h.ttl()
	every, retry, margin := h.RenewEvery, h.Retry, h.Margin
	if every <= 0 {
		every = ttl / 4
	}
	if retry <= 0 {
		retry = max(ttl/30, time.Second)
	}
	if margin <= 0 {
		margin = ttl / 4
	}
	// leaseCtx ends only with the lease: a rollback after Ctrl-C lives on it
	// (see Survive); the run's ctx ends with either.
	leaseCtx, lose := context.WithCancelCause(context.WithoutCancel(ctx))
	runCtx, cancelRun := context.WithCancelCause(ctx)
	stopAfter := context.AfterFunc(leaseCtx, func() { cancelRun(context.Cause(leaseCtx)) })
	runCtx = context.WithValue(runCtx, leaseCtxKey{}, leaseCtx)

	stopRenew, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		wait := every
		for {
			// Never sleep past the point where the margin starts.
			if rest := h.ValidUntil().Sub(h.now()) - margin; rest < wait {
				wait = max(rest, 0)
			}
			if h.sleep(stopRenew, wait) != nil {
				return
			}
			sent := h.now()
			// A hung lease host must not hold the renewal past the margin.
			budget := min(max(h.ValidUntil().Sub(sent)-margin/2, 500*time.Millisecond), time.Minute)
			err := h.runWithin(leaseCtx, budget, AcquireCommand(h.Layout, h.Owner, ttl, true))
			var heldErr *HeldError
			switch {
			case err == nil:
				h.setValid(sent)
				wait = every
				continue
			case errors.As(err, &heldErr), errors.Is(err, errGone):
				lose(fmt.Errorf("%w: %v", ErrLost, err))
				return
			}
			left := h.ValidUntil().Sub(h.now())
			if left <= margin {
				lose(fmt.Errorf("%w: could not renew the lease on %s (%v); stopping with %s left before it expires, so no other run overlaps this one",
					ErrLost, h.LeaseHost, err, left.Round(time.Second)))
				return
			}
			h.note("lease renewal failed (retrying, %s left): %v", left.Round(time.Second), err)
			wait = retry
		}
	}()
	return runCtx, func() {
		stop()
		wg.Wait()
		stopAfter()
		h.release()
		lose(context.Canceled)
		cancelRun(context.Canceled)
	}
}

// Survive is the context a rollback or final journal write runs under: not
// cancelled by the caller (Ctrl-C, deploy timeout) but still by the loss of
// the lease that ctx was held under. Outside a held run it is
// context.WithoutCancel(ctx).
func Survive(ctx context.Context) context.Context {
	if l, ok := ctx.Value(leaseCtxKey{}).(context.Context); ok {
		return l
	}
	return context.WithoutCancel(ctx)
}

func (h *Holder) release() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, _, _ = h.Exec(ctx, h.LeaseHost, ReleaseCommand(h.Layout, h.Owner))
	h.dropLocal()
}

func (h *Holder) dropLocal() {
	if h.unlock != nil {
		h.unlock()
		h.unlock = nil
	}
}

// Break removes the lease whoever holds it and fences every server with a
// fresh token no run holds: the holder (if alive) can neither renew nor start
// another step anywhere. It waits for steps under way. It returns the lease it
// broke; a free lease is an error (nothing to break).
func Break(ctx context.Context, exec Exec, l hostrelease.Layout, leaseHost string, servers []string) (Held, error) {
	out, _, err := exec(ctx, leaseHost, ReadCommand(l))
	if err != nil {
		return Held{}, fmt.Errorf("reading the lease on %s: %w", leaseHost, err)
	}
	if len(strings.TrimSpace(string(out))) == 0 {
		return Held{}, fmt.Errorf("app %s: the lease on %s is free; nothing to break", l.App, leaseHost)
	}
	held, err := Parse(out)
	if err != nil {
		return Held{}, fmt.Errorf("app %s: %w", l.App, err)
	}
	if _, code, err := exec(ctx, leaseHost, BreakCommand(l, held.Owner.Token)); err != nil {
		if IsHeld(code) {
			return held, fmt.Errorf("app %s: the lease changed hands while breaking it; look again with `belay status`", l.App)
		}
		return held, fmt.Errorf("breaking the lease on %s: %w", leaseHost, err)
	}
	hosts := append([]string{leaseHost}, servers...)
	sort.Strings(hosts)
	hosts = compact(hosts)
	if err := WriteFences(ctx, exec, l, hosts, "broken-"+NewToken()); err != nil {
		return held, fmt.Errorf("lease removed, but fencing failed (the old holder may still run steps there): %w", err)
	}
	return held, nil
}

func compact(s []string) []string {
	var out []string
	for i, x := range s {
		if i == 0 || x != s[i-1] {
			out = append(out, x)
		}
	}
	return out
}

// PoolExec runs lease commands over a deploy SSH pool.
func PoolExec(p *sshx.Pool) Exec {
	return func(ctx context.Context, host, cmd string) ([]byte, int, error) {
		c, err := p.Get(ctx, host)
		if err != nil {
			return nil, -1, err
		}
		res, err := c.Run(ctx, cmd, nil)
		return res.Stdout, res.ExitCode, err
	}
}
