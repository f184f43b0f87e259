package deploy

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/belay-sh/belay/deploy/lease"
	"github.com/belay-sh/belay/deploy/sshx"
	"github.com/belay-sh/belay/hostrelease/journal"
	"github.com/belay-sh/belay/inventory"
)

// holder is the app's lease holder for one run of action.
func (d *Deployer) holder(app *inventory.App, action string) *lease.Holder {
	exec := lease.PoolExec(d.Pool)
	if d.leaseExec != nil {
		exec = d.leaseExec
	}
	h := &lease.Holder{
		Exec:      exec,
		Layout:    d.Layout(),
		LeaseHost: app.Hosts[0],
		Servers:   d.servers(app),
		Owner:     lease.Owner{Who: d.Actor.Who, PID: d.Actor.PID, Host: d.Actor.From, CI: d.Actor.CI, Action: action},
		TTL:       d.LeaseTTL, RenewEvery: d.LeaseRenew, Margin: d.LeaseMargin,
		Wait: d.Wait, WaitTimeout: d.WaitTimeout, WaitPoll: d.WaitPoll,
		Note: d.Runner.Note,
	}
	if d.LockDir != "" {
		h.Local = &lease.LocalLock{Dir: d.LockDir}
	}
	if d.leaseHook != nil {
		d.leaseHook(h)
	}
	return h
}

// locked runs fn holding the app's lease: taken on the first app host, the
// run's token written into every server's fence, renewed while fn runs, and
// every step of d.Runner fenced by it. Losing the lease (taken over, broken,
// or not renewable before it would expire) cancels fn.
func (d *Deployer) locked(ctx context.Context, action string, fn func(ctx context.Context) (*Outcome, error)) (*Outcome, error) {
	app, err := d.app()
	if err != nil {
		return nil, err
	}
	if d.held != nil {
		// A cells deploy took this cell's lease (with every other cell's, in
		// name order) before any cell was touched, and holds it for the whole
		// rollout: ctx ends when any of those leases is lost.
		d.Runner.Fence = d.held
		out, err := fn(ctx)
		return out, withLeaseCause(ctx, err)
	}
	// Connect to every host first: a refused host key (or a dead host) stops us
	// before any command runs anywhere, lease included.
	if err := d.connectAll(ctx, d.servers(app)); err != nil {
		return nil, err
	}
	h := d.holder(app, action)
	if err := h.Take(ctx); err != nil {
		return nil, err
	}
	hctx, done := h.Hold(ctx)
	d.Runner.Fence = h.Fence()
	out, err := fn(hctx)
	err = withLeaseCause(hctx, err)
	done()
	d.Runner.Fence = nil
	return out, err
}

// withLeaseCause adds a lost lease (the cause of ctx's end) to err.
func withLeaseCause(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); errors.Is(cause, lease.ErrLost) {
		if err == nil {
			return cause
		} else if !errors.Is(err, lease.ErrLost) {
			return fmt.Errorf("%w (%w)", err, cause)
		}
	}
	return err
}

// lost reports whether a run failed because it no longer holds the lease.
func lost(ctx context.Context, err error) bool {
	var fe *lease.FencedError
	return errors.Is(context.Cause(ctx), lease.ErrLost) || errors.As(err, &fe)
}

func (d *Deployer) connectAll(ctx context.Context, hosts []string) error {
	errs := sshx.Parallel(ctx, hosts, d.Runner.Parallel, func(ctx context.Context, h string) error {
		_, err := d.Pool.Get(ctx, h)
		return err
	})
	if err := joinHostErrors(errs); err != nil {
		return fmt.Errorf("connecting to every host of %s (nothing was run anywhere): %w", d.App, err)
	}
	return nil
}

// BreakLease removes the app's lease whoever holds it and fences every server
// against its holder, after writing the reason and the holder to the audit log
// on every app host. For a holder that is certainly gone (a crashed CI runner
// on another machine) when waiting for the expiry is not an option.
func (d *Deployer) BreakLease(ctx context.Context, reason string) (lease.Held, error) {
	if reason == "" {
		return lease.Held{}, errors.New("--reason: required (it goes to the audit log: why the holder is known to be gone)")
	}
	app, err := d.app()
	if err != nil {
		return lease.Held{}, err
	}
	if err := d.connectAll(ctx, d.servers(app)); err != nil {
		return lease.Held{}, err
	}
	held, err := lease.Break(ctx, lease.PoolExec(d.Pool), d.Layout(), app.Hosts[0], d.servers(app))
	if held.Owner.Token == "" && err != nil {
		return held, err
	}
	result := "ok"
	if err != nil {
		result = "failed"
	}
	o := held.Owner
	detail := fmt.Sprintf("reason: %s; holder: %s pid %d on %s (%s) since %s, lease until %s", reason, o.Who, o.PID, o.Host, o.Action,
		o.Since.UTC().Format(time.RFC3339), held.Expires.UTC().Format(time.RFC3339))
	if o.CI != "" {
		detail += ", CI " + o.CI
	}
	if err != nil {
		detail += "; " + err.Error()
	}
	d.audit(ctx, app.Hosts, journal.Entry{Action: "lease-break", Result: result, Detail: trim(detail)})
	return held, err
}
