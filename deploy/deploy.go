// Package deploy orchestrates a release rollout over SSH. The pieces, one job each:
//
//   - deploy/release checks the artifact locally (sha256, no entry escaping the
//     release directory); hostrelease (below deploy, shared with belay
//     replace) is the host layout and builds the receive/unpack commands;
//   - deploy/plan turns (inventory, app, release, strategy) into steps as data;
//   - deploy/traffic renders the nginx routing of each stage, deploy/analysis
//     judges the canary from the access logs;
//   - deploy/sshx holds one strictly verified connection per host;
//   - deploy/run executes the steps with per-host progress and journal writes;
//   - deploy/lease and hostrelease/journal are the lock and the memory on the hosts.
//
// This package ties them: take the lease, converge any unfinished rollout, run
// the plan, and on the first failure roll EVERY host back as one unit.
//
// # Recovery rule (deployer killed mid-rollout)
//
// A journal with status "running" on any host means a deployer died. The next
// deploy or rollback first converges every host to ONE release:
//
//   - roll FORWARD when every host's `current` already points at the journal's
//     target (the point of no return, switch-current, was passed everywhere):
//     the release went live everywhere, so finishing is the smaller change;
//   - otherwise roll BACK to the journal's previous release: an Abort plan
//     (traffic to stable, canary stopped) when no host switched `current`, or a
//     direct swap back to the previous release when some did.
//
// A first deploy (no previous release) that died is rolled forward if any host
// switched, else aborted.
package deploy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/belay-sh/belay/deploy/lease"
	"github.com/belay-sh/belay/deploy/notify"
	"github.com/belay-sh/belay/deploy/plan"
	"github.com/belay-sh/belay/deploy/run"
	"github.com/belay-sh/belay/deploy/sshx"
	"github.com/belay-sh/belay/hostrelease"
	"github.com/belay-sh/belay/hostrelease/journal"
	"github.com/belay-sh/belay/inventory"
)

// Actor says who deploys, for the lease and the audit log.
type Actor struct {
	Who  string // user@host
	From string // machine the deployer runs on
	CI   string // CI run URL, if any
	PID  int
}

// Deployer drives one app.
type Deployer struct {
	Inv *inventory.Inventory
	App string
	// Cell is set on a cell's Deployer (ForCell): its events carry it.
	Cell   string
	Pool   *sshx.Pool
	Runner *run.Runner
	Actor  Actor
	// LeaseTTL (default 15 min) and Wait: block until the lease is free (up to WaitTimeout).
	LeaseTTL    time.Duration
	Wait        bool
	WaitTimeout time.Duration
	// LeaseRenew, LeaseMargin and WaitPoll tune the lease (see lease.Holder; zero: defaults).
	LeaseRenew, LeaseMargin, WaitPoll time.Duration
	// LockDir keeps this machine's proof-of-life lease locks (lease.LocalLock);
	// "" disables taking over a dead holder's lease before it expires.
	LockDir string
	// leaseHook adjusts the lease holder (tests: a deployer cut from the lease host, or asleep).
	leaseHook func(*lease.Holder)
	// KnownGoodKeep is how many known-good releases the journal remembers (default 5).
	KnownGoodKeep int
	// SkipStandby leaves the standby site's app server out of deploys and rollbacks.
	SkipStandby bool
	// Base overrides /srv (tests).
	Base string
	// DrainTimeout bounds each drain of a rollback, abort or recovery (default
	// plan.DefaultDrainTimeout); a deploy's own drains come from its Strategy.
	DrainTimeout time.Duration
	// Notify receives the deploy's events (nil: none); Stack names the stack in them.
	Notify *notify.Notifier
	Stack  string
	// held is the fence of a lease a cells deploy already holds for this
	// cell (see DeployCells): locked then takes no lease of its own.
	held *lease.Fence
	// leaseExec replaces the SSH pool for lease commands (tests).
	leaseExec lease.Exec
	// progressMu serialises the progress lines of the cells of one wave (ForCell).
	progressMu *sync.Mutex
}

// servers are the app hosts plus the standby server (unless skipped): every
// server that holds releases and a journal.
func (d *Deployer) servers(app *inventory.App) []string {
	out := append([]string(nil), app.Hosts...)
	if app.Standby != "" && !d.SkipStandby {
		out = append(out, app.Standby)
	}
	return out
}

// Outcome is what a deploy or rollback did.
type Outcome struct {
	App      string `json:"app"`
	DeployID string `json:"deployId"`
	Action   string `json:"action"`
	Release  string `json:"release"`
	Previous string `json:"previous,omitempty"`
	Result   string `json:"result"` // ok, paused, rolled-back, rollback-failed, failed
	// PausedAfter is the stage a --stop-after rollout holds at.
	PausedAfter string   `json:"pausedAfter,omitempty"`
	Error       string   `json:"error,omitempty"`
	Recovery    string   `json:"recovery,omitempty"`
	Hosts       []string `json:"hosts"`
	Duration    string   `json:"duration"`
	// Rollback is how long the automatic rollback took, from the failure (a
	// canary verdict, a failed health check, a host lost) until every host was
	// back on the previous release with its journal written.
	Rollback string `json:"rollback,omitempty"`
	// Detection times the rollback against the first bad sign (see Detection).
	Detection *Detection `json:"detection,omitempty"`
}

// Layout is the app's directory layout on the hosts.
func (d *Deployer) Layout() hostrelease.Layout { return hostrelease.Layout{App: d.App, Base: d.Base} }

func (d *Deployer) app() (*inventory.App, error) {
	a := d.Inv.App(d.App)
	if a == nil {
		var names []string
		for _, x := range d.Inv.Apps {
			names = append(names, x.Name)
		}
		return nil, fmt.Errorf("app %q: not in the inventory (apps: %s)", d.App, strings.Join(names, ", "))
	}
	if len(a.Hosts) == 0 && len(a.Cells) > 0 {
		return nil, fmt.Errorf("app %s has cells (%s): its servers are the cells', and this acts on an app's servers; deploys and status work per cell (see docs/cells.md)", d.App, strings.Join(cellNames(a), ", "))
	}
	if len(a.Hosts) == 0 {
		return nil, fmt.Errorf("app %s: the inventory lists no hosts", d.App)
	}
	return a, nil
}

// NewID returns a fresh deploy id (time + random suffix).
func NewID(now time.Time) string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b)
}

// Deploy rolls in.Release out with in.Strategy. The artifact must already be
// verified (release.Inspect); nothing is sent before the lease is held.
func (d *Deployer) Deploy(ctx context.Context, in plan.Input) (*Outcome, error) {
	return d.deploy(ctx, in, 0)
}

// DeployEnvOnly re-deploys the running release with the app's env of serial
// envSerial (streamed by the Runner) as the new release <current>.env<serial>:
// copied on every host, then the normal canary path.
func (d *Deployer) DeployEnvOnly(ctx context.Context, in plan.Input, envSerial int) (*Outcome, error) {
	if envSerial < 1 {
		return nil, errors.New("env-only deploy: the app has no env set (belay env set APP KEY=VALUE)")
	}
	in.Artifact, in.Env = nil, true
	return d.deploy(ctx, in, envSerial)
}

func (d *Deployer) deploy(ctx context.Context, in plan.Input, envSerial int) (*Outcome, error) {
	app, err := d.app()
	if err != nil {
		return nil, err
	}
	in.Inventory, in.App, in.Base, in.SkipStandby = d.Inv, d.App, d.Base, d.SkipStandby
	check := in
	if envSerial > 0 { // the release ids are known once the hosts are read
		check.CopyFrom, check.Release = "current", plan.EnvRelease("current", envSerial)
	}
	if _, err := plan.Deploy(check); err != nil { // bad input: fail before touching any host
		return nil, err
	}
	id := NewID(time.Now())
	what := "deploy " + in.Release
	if envSerial > 0 {
		what = fmt.Sprintf("deploy env %d", envSerial)
	}
	return d.locked(ctx, what, func(ctx context.Context) (*Outcome, error) {
		start := time.Now()
		out := &Outcome{App: d.App, DeployID: id, Action: "deploy", Release: in.Release, Hosts: app.Hosts}
		defer func() { d.notifyOutcome(out) }()
		states, recovery, err := d.converge(ctx, in.Release)
		out.Recovery = recovery
		if err != nil {
			out.Result, out.Error = "failed", err.Error()
			return out, err
		}
		prev, err := commonCurrent(states)
		if err != nil {
			out.Result, out.Error = "failed", err.Error()
			return out, err
		}
		if envSerial > 0 {
			if err := envOnly(&in, prev, envSerial); err != nil {
				out.Result, out.Error = "failed", err.Error()
				return out, err
			}
			out.Release = in.Release
		}
		out.Previous = prev
		known := knownGood(states)
		in.Strategy.Protect = append(in.Strategy.Protect, known...)
		if prev != "" {
			in.Strategy.Protect = append(in.Strategy.Protect, prev)
		}
		p, err := plan.Deploy(in)
		if err != nil {
			return nil, err
		}
		recs := d.records(d.servers(app), id, "deploy", in.Release, prev, known)
		d.audit(ctx, app.Hosts, journal.Entry{Action: "deploy", Release: in.Release, Previous: prev, DeployID: id, Result: "started"})
		d.send(notify.Event{Event: "started", Release: in.Release, Previous: prev, DeployID: id})
		defer d.watchVerdicts(in.Release, id)()
		err = d.Runner.Exec(ctx, p, recs)
		if err == nil && p.PausedAfter != "" {
			err = d.finish(ctx, d.servers(app), recs, journal.Paused, known, "")
			if err == nil {
				out.Result, out.Duration = "paused", time.Since(start).Round(time.Millisecond).String()
				out.PausedAfter = p.PausedAfter
				d.audit(ctx, app.Hosts, journal.Entry{Action: "deploy", Release: in.Release, Previous: prev, DeployID: id, Result: "paused", Detail: "after " + p.PausedAfter})
				return out, nil
			}
		}
		if err == nil {
			err = d.finish(ctx, d.servers(app), recs, journal.Done, journal.AddKnownGood(known, in.Release, d.keep()), "")
		}
		out.Duration = time.Since(start).Round(time.Millisecond).String()
		if err == nil {
			out.Result = "ok"
			d.audit(ctx, app.Hosts, journal.Entry{Action: "deploy", Release: in.Release, Previous: prev, DeployID: id, Result: "ok"})
			return out, nil
		}
		seen := time.Now()
		out.Error = err.Error()
		d.Runner.Note("deploy of %s failed: %v", in.Release, err)
		if lost(ctx, err) {
			// Another run holds the app now (or the lease was broken): it converges
			// the hosts from their journals; our steps would be refused anyway.
			out.Result = "failed"
			d.audit(ctx, app.Hosts, journal.Entry{Action: "deploy", Release: in.Release, Previous: prev, DeployID: id, Result: "lease-lost", Detail: trim(err.Error())})
			return out, fmt.Errorf("%w; this run lost the app's lease and stopped without rolling back: the next deploy or rollback converges the hosts", err)
		}
		if !mayHaveStarted(p, recs) {
			// Failed while preparing (upload, unpack, env, release command): no
			// unit, link or route changed anywhere; only the journals say so.
			known = journal.RemoveKnownGood(known, in.Release)
			out.Result, out.Duration = "failed", time.Since(start).Round(time.Millisecond).String()
			if ferr := d.finish(ctx, d.servers(app), recs, journal.RolledBack, known, trim(err.Error())); ferr != nil {
				d.Runner.Note("journal write failed: %v", ferr)
			}
			d.audit(ctx, app.Hosts, journal.Entry{Action: "deploy", Release: in.Release, Previous: prev, DeployID: id, Result: "failed", Detail: trim("nothing switched: " + err.Error())})
			return out, fmt.Errorf("%w; nothing was switched: every host still runs %s, and %s is not known-good", err, orNone(prev), in.Release)
		}
		rbStart := time.Now()
		rbErr := d.rollbackAll(ctx, d.servers(app), id, in.Release, prev, known, err.Error(), !mayHaveSwitched(p, recs))
		rbEnd := time.Now()
		out.Rollback = rbEnd.Sub(rbStart).Round(time.Millisecond).String()
		out.Detection = detection(err, seen, rbStart, rbEnd)
		out.Duration = time.Since(start).Round(time.Millisecond).String()
		if rbErr != nil {
			out.Result = "rollback-failed"
			d.audit(ctx, app.Hosts, journal.Entry{Action: "deploy", Release: in.Release, Previous: prev, DeployID: id, Result: "rollback-failed", Detail: trim(err.Error() + "; rollback: " + rbErr.Error())})
			return out, fmt.Errorf("%w; ROLLBACK FAILED: %v (run `belay rollback --app %s` to converge)", err, rbErr, d.App)
		}
		out.Result = "rolled-back"
		d.Runner.Note("every host is back on %s (rollback took %s)%s", orNone(prev), out.Rollback, out.Detection.Summary())
		d.audit(ctx, app.Hosts, journal.Entry{Action: "deploy", Release: in.Release, Previous: prev, DeployID: id, Result: "rolled-back", Detail: trim(err.Error())})
		return out, fmt.Errorf("%w; every host was rolled back to %s", err, orNone(prev))
	})
}
