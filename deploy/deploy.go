// Package deploy orchestrates a release rollout over SSH. The pieces, one job each:
//
//   - deploy/release checks the artifact locally (sha256, no entry escaping the
//     release directory) and builds the receive/unpack commands;
//   - deploy/plan turns (inventory, app, release, strategy) into steps as data;
//   - deploy/traffic renders the nginx routing of each stage, deploy/analysis
//     judges the canary from the access logs;
//   - deploy/sshx holds one strictly verified connection per host;
//   - deploy/run executes the steps with per-host progress and journal writes;
//   - deploy/lease and deploy/journal are the lock and the memory on the hosts.
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
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/belay-sh/belay/deploy/journal"
	"github.com/belay-sh/belay/deploy/lease"
	"github.com/belay-sh/belay/deploy/plan"
	"github.com/belay-sh/belay/deploy/release"
	"github.com/belay-sh/belay/deploy/run"
	"github.com/belay-sh/belay/deploy/sshx"
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
	Inv    *inventory.Inventory
	App    string
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
func (d *Deployer) Layout() release.Layout { return release.Layout{App: d.App, Base: d.Base} }

func (d *Deployer) app() (*inventory.App, error) {
	a := d.Inv.App(d.App)
	if a == nil {
		var names []string
		for _, x := range d.Inv.Apps {
			names = append(names, x.Name)
		}
		return nil, fmt.Errorf("app %q: not in the inventory (apps: %s)", d.App, strings.Join(names, ", "))
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
	app, err := d.app()
	if err != nil {
		return nil, err
	}
	in.Inventory, in.App, in.Base, in.SkipStandby = d.Inv, d.App, d.Base, d.SkipStandby
	if _, err := plan.Deploy(in); err != nil { // bad input: fail before touching any host
		return nil, err
	}
	id := NewID(time.Now())
	return d.locked(ctx, "deploy "+in.Release, func(ctx context.Context) (*Outcome, error) {
		start := time.Now()
		out := &Outcome{App: d.App, DeployID: id, Action: "deploy", Release: in.Release, Hosts: app.Hosts}
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

// Rollback moves every host to `to` (default: the last known-good release other
// than the running one) at once: no analysis, the release must be on disk.
func (d *Deployer) Rollback(ctx context.Context, to string) (*Outcome, error) {
	return d.rollback(ctx, to, false)
}

// Abandon undoes a paused or unfinished rollout and does nothing otherwise
// (CI's cleanup after a rejected approval: never rolls back a finished deploy).
func (d *Deployer) Abandon(ctx context.Context) (*Outcome, error) {
	return d.rollback(ctx, "", true)
}

func (d *Deployer) rollback(ctx context.Context, to string, abandonOnly bool) (*Outcome, error) {
	app, err := d.app()
	if err != nil {
		return nil, err
	}
	if to != "" {
		if err := release.ValidateID(to); err != nil {
			return nil, err
		}
	}
	id := NewID(time.Now())
	return d.locked(ctx, "rollback", func(ctx context.Context) (*Outcome, error) {
		start := time.Now()
		out := &Outcome{App: d.App, DeployID: id, Action: "rollback", Hosts: app.Hosts}
		states, recovery, rec, err := d.convergeRec(ctx, "")
		out.Recovery = recovery
		if err != nil {
			out.Result, out.Error = "failed", err.Error()
			return out, err
		}
		if abandonOnly {
			cur, _ := commonCurrent(states)
			out.Release, out.Result = cur, "ok"
			if recovery == "" {
				out.Result = "nothing to abandon"
			}
			out.Duration = time.Since(start).Round(time.Millisecond).String()
			return out, nil
		}
		// Converging an interrupted deploy backwards, or finishing an interrupted
		// rollback/recovery, already was the rollback the operator asked for.
		if recovery != "" && to == "" && (strings.HasPrefix(recovery, "rolled back") || rec != nil && rec.Kind != "deploy") {
			// The unfinished rollout was just undone: that was the rollback.
			out.Result, out.Duration = "ok", time.Since(start).Round(time.Millisecond).String()
			cur, _ := commonCurrent(states)
			out.Release = cur
			return out, nil
		}
		cur, err := commonCurrent(states)
		if err != nil && to == "" {
			return nil, fmt.Errorf("%w; name the release to converge on with --to", err)
		}
		known := knownGood(states)
		if to == "" {
			var skipped []string
			to, skipped = rollbackTarget(known, cur, states)
			for _, sk := range skipped {
				d.Runner.Note("not rolling back to %s", sk)
			}
			if to == "" {
				return nil, fmt.Errorf("app %s: no known-good release other than the running %s is on every host to roll back to (see `belay releases`; pass --to)", d.App, orNone(cur))
			}
		}
		out.Release, out.Previous = to, cur
		if to == cur {
			return nil, fmt.Errorf("app %s: every host already runs %s; nothing to roll back to (see `belay releases`)", d.App, to)
		}
		p, err := plan.Deploy(plan.Input{Inventory: d.Inv, App: d.App, SkipStandby: d.SkipStandby, Release: to, Base: d.Base, Strategy: plan.Strategy{Direct: true, DrainTimeout: d.DrainTimeout}})
		if err != nil {
			return nil, err
		}
		known = journal.RemoveKnownGood(known, cur)
		known = journal.AddKnownGood(known, to, d.keep())
		recs := d.records(d.servers(app), id, "rollback", to, cur, known)
		d.audit(ctx, app.Hosts, journal.Entry{Action: "rollback", Release: to, Previous: cur, DeployID: id, Result: "started"})
		err = d.Runner.Exec(ctx, p, recs)
		if err == nil {
			err = d.finish(ctx, d.servers(app), recs, journal.Done, known, "")
		}
		out.Duration = time.Since(start).Round(time.Millisecond).String()
		if err != nil {
			out.Result, out.Error = "failed", err.Error()
			d.audit(ctx, app.Hosts, journal.Entry{Action: "rollback", Release: to, Previous: cur, DeployID: id, Result: "failed", Detail: trim(err.Error())})
			return out, fmt.Errorf("rollback to %s: %w", to, err)
		}
		out.Result = "ok"
		d.audit(ctx, app.Hosts, journal.Entry{Action: "rollback", Release: to, Previous: cur, DeployID: id, Result: "ok"})
		return out, nil
	})
}

func (d *Deployer) keep() int {
	if d.KnownGoodKeep > 0 {
		return d.KnownGoodKeep
	}
	return 5
}

func (d *Deployer) records(hosts []string, id, kind, target, prev string, known []string) map[string]journal.Record {
	now := time.Now().UTC()
	recs := map[string]journal.Record{}
	for _, h := range hosts {
		recs[h] = journal.Record{DeployID: id, App: d.App, Kind: kind, Target: target, Previous: prev, KnownGood: known,
			Status: journal.Running, By: d.Actor.Who, StartedAt: now, UpdatedAt: now}
	}
	return recs
}

// finish writes the final journal on every host.
func (d *Deployer) finish(ctx context.Context, hosts []string, recs map[string]journal.Record, st journal.Status, known []string, msg string) error {
	errs := sshx.Parallel(ctx, hosts, d.Runner.Parallel, func(ctx context.Context, h string) error {
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		c, err := d.Pool.Get(ctx, h)
		if err != nil {
			return err
		}
		rec := recs[h]
		rec.Status, rec.KnownGood, rec.InProgress, rec.Error, rec.UpdatedAt = st, known, "", msg, time.Now().UTC()
		_, err = c.Run(ctx, d.Runner.Fence.Wrap(h, journal.WriteCommand(d.Layout(), rec)), nil)
		return err
	})
	return joinHostErrors(errs)
}

// mayHaveSwitched says whether any host of the run got as far as the step
// that points `current` at the new release (done or under way), by the
// journal records the runner kept: a rollout that failed before it needs only
// its traffic and canary undone.
func mayHaveSwitched(p *plan.Plan, recs map[string]journal.Record) bool {
	sw := -1
	idx := map[string]int{}
	for i, s := range p.Steps {
		idx[s.ID] = i
		if s.Switches && sw < 0 {
			sw = i
		}
	}
	if sw < 0 {
		return false
	}
	for _, r := range recs {
		for _, id := range []string{r.Step, r.InProgress} {
			if i, ok := idx[id]; ok && i >= sw {
				return true
			}
		}
	}
	return false
}

// rollbackAll undoes a failed rollout on every host: an abort when no host
// switched `current`, else a direct swap back to prev. noneSwitched (known
// from this run's own journal records) skips reading the hosts' state first:
// after a canary verdict every millisecond until traffic is back on stable
// counts, and the abort is right whatever the hosts' state is.
func (d *Deployer) rollbackAll(ctx context.Context, hosts []string, id, target, prev string, known []string, why string, noneSwitched bool) error {
	// The deploy's context may be what failed (timeout, Ctrl-C): the rollback
	// gets its own budget so the hosts still end up on one release.
	// It still stops if the lease is lost (lease.Survive): the run that took it
	// over converges the hosts, and the fence would refuse our steps anyway.
	ctx, cancel := context.WithTimeout(lease.Survive(ctx), 15*time.Minute)
	defer cancel()
	var p *plan.Plan
	var how string
	var err error
	if noneSwitched {
		p, err = plan.AbortDrain(d.Inv, d.App, d.Base, d.DrainTimeout)
		how = "traffic back to stable (" + orNone(prev) + "), canary stopped"
	} else {
		var states map[string]*HostState
		if states, err = d.probe(ctx); err != nil {
			return err
		}
		p, how, err = d.undoPlan(states, target, prev)
	}
	if err != nil {
		return err
	}
	d.Runner.Note("rolling back every host: %s", how)
	recs := d.records(hosts, id, "rollback", prevOr(prev, target), target, known)
	if err := d.Runner.Exec(ctx, p, recs); err != nil {
		return err
	}
	return d.finish(ctx, hosts, recs, journal.RolledBack, known, trim(why))
}

func prevOr(prev, target string) string {
	if prev != "" {
		return prev
	}
	return target
}

// undoPlan picks how to bring every host back to prev (see the package doc).
func (d *Deployer) undoPlan(states map[string]*HostState, target, prev string) (*plan.Plan, string, error) {
	switched := false
	for _, s := range states {
		if s.Current != prev {
			switched = true
		}
	}
	if !switched || prev == "" && !anyCurrent(states, target) {
		p, err := plan.AbortDrain(d.Inv, d.App, d.Base, d.DrainTimeout)
		return p, "traffic back to stable (" + orNone(prev) + "), canary stopped", err
	}
	if prev == "" {
		// First deploy: nothing to go back to; finish the switch so all hosts agree.
		p, err := plan.Deploy(plan.Input{Inventory: d.Inv, App: d.App, SkipStandby: d.SkipStandby, Release: target, Base: d.Base, Strategy: plan.Strategy{Direct: true, DrainTimeout: d.DrainTimeout}})
		return p, "no previous release: converging every host on " + target, err
	}
	p, err := d.direct(prev, states)
	how := "swapping every host back to " + prev
	if canaryServes(states) {
		how += " (the serving canary carries the stable restart)"
	}
	return p, how, err
}

func anyCurrent(states map[string]*HostState, rel string) bool {
	for _, s := range states {
		if s.Current == rel {
			return true
		}
	}
	return false
}

// converge finds an unfinished rollout (a deployer that died) and brings every
// host to one release before anything else happens. It returns the hosts'
// states afterwards and a description of what it did ("" if nothing).
func (d *Deployer) converge(ctx context.Context, resume string) (map[string]*HostState, string, error) {
	states, how, _, err := d.convergeRec(ctx, resume)
	return states, how, err
}

// convergeRec is converge that also returns the journal it acted on (nil if none).
func (d *Deployer) convergeRec(ctx context.Context, resume string) (map[string]*HostState, string, *journal.Record, error) {
	states, err := d.probe(ctx)
	if err != nil {
		return nil, "", nil, err
	}
	var j, paused *journal.Record
	for _, h := range sortedKeys(states) {
		s := states[h]
		if s.Journal.Unfinished() && j == nil {
			j = s.Journal
		}
		if s.Journal != nil && s.Journal.Status == journal.Paused && paused == nil {
			paused = s.Journal
		}
	}
	if j == nil && paused != nil {
		if paused.Target == resume {
			d.Runner.Note("resuming the rollout of %s paused after %s", resume, paused.Step)
			return states, "", nil, nil
		}
		// A rollout paused for approval that is not being continued is abandoned:
		// take its canary out first, so one release serves everything again.
		j = paused
		d.Runner.Note("a rollout of %s is paused (deploy %s by %s): rolling it back first", j.Target, j.DeployID, j.By)
	} else if j != nil {
		d.Runner.Note("found an unfinished %s of %s (deploy %s by %s, last step %q): converging every host first", j.Kind, j.Target, j.DeployID, j.By, j.Step)
	}
	if j == nil {
		return states, "", nil, nil
	}
	all := true
	for _, s := range states {
		if s.Current != j.Target {
			all = false
		}
	}
	var p *plan.Plan
	var how string
	st := journal.RolledBack
	known := j.KnownGood
	if all {
		p, err = d.direct(j.Target, states)
		how, st = "rolled forward to "+j.Target+" (already current on every host)", journal.Done
		if j.Kind == "deploy" {
			known = journal.AddKnownGood(known, j.Target, d.keep())
		}
	} else {
		p, how, err = d.undoPlan(states, j.Target, j.Previous)
		how = "rolled back: " + how
	}
	if err != nil {
		return nil, "", nil, err
	}
	d.Runner.Note("recovery: %s", how)
	app, _ := d.app()
	target := j.Target
	if !all && j.Previous != "" {
		target = j.Previous
	}
	recs := d.records(d.servers(app), j.DeployID, "recover", target, j.Previous, known)
	if err := d.Runner.Exec(ctx, p, recs); err != nil {
		return nil, how, j, fmt.Errorf("recovering the unfinished %s of %s: %w", j.Kind, j.Target, err)
	}
	if err := d.finish(ctx, d.servers(app), recs, st, known, "recovered: "+how); err != nil {
		return nil, how, j, err
	}
	d.audit(ctx, app.Hosts, journal.Entry{Action: "recover", Release: target, Previous: j.Target, DeployID: j.DeployID, Result: "ok", Detail: how})
	states, err = d.probe(ctx)
	return states, how, j, err
}

// audit appends e on every app host (best effort: a failed audit write is
// reported but does not change the deploy's outcome).
func (d *Deployer) audit(ctx context.Context, hosts []string, e journal.Entry) {
	e.Time, e.Who, e.From, e.CI, e.App = time.Now().UTC(), d.Actor.Who, d.Actor.From, d.Actor.CI, d.App
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	errs := sshx.Parallel(ctx, hosts, d.Runner.Parallel, func(ctx context.Context, h string) error {
		c, err := d.Pool.Get(ctx, h)
		if err != nil {
			return err
		}
		_, err = c.Run(ctx, journal.AppendAuditCommand(d.Layout(), e), nil)
		return err
	})
	if err := joinHostErrors(errs); err != nil {
		d.Runner.Note("audit log write failed: %v", err)
	}
}

func commonCurrent(states map[string]*HostState) (string, error) {
	byRel := map[string][]string{}
	for h, s := range states {
		byRel[s.Current] = append(byRel[s.Current], h)
	}
	if len(byRel) == 1 {
		for r := range byRel {
			return r, nil
		}
	}
	var parts []string
	for r, hs := range byRel {
		sort.Strings(hs)
		parts = append(parts, strings.Join(hs, ",")+": "+orNone(r))
	}
	sort.Strings(parts)
	return "", fmt.Errorf("hosts run different releases (%s); converge them first with `belay rollback --to RELEASE`", strings.Join(parts, "; "))
}

func knownGood(states map[string]*HostState) []string {
	var best *journal.Record
	for _, h := range sortedKeys(states) {
		j := states[h].Journal
		if j != nil && (best == nil || j.UpdatedAt.After(best.UpdatedAt)) {
			best = j
		}
	}
	if best == nil {
		return nil
	}
	return append([]string(nil), best.KnownGood...)
}

// rollbackTarget picks the newest known-good release other than cur that is
// on disk on every host. A release deployed with a cut-down inventory is known
// good on some hosts only; rolling back to it would fail on the others at
// "release on disk", so it is skipped (and said why).
func rollbackTarget(known []string, cur string, states map[string]*HostState) (string, []string) {
	var skipped []string
	for i := len(known) - 1; i >= 0; i-- {
		rel := known[i]
		if rel == cur {
			continue
		}
		var missing []string
		for _, h := range sortedKeys(states) {
			if !slices.Contains(states[h].Releases, rel) {
				missing = append(missing, h)
			}
		}
		if len(missing) == 0 {
			return rel, skipped
		}
		skipped = append(skipped, rel+": not on disk on "+strings.Join(missing, ", "))
	}
	return "", skipped
}

func sortedKeys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func joinHostErrors(errs map[string]error) error {
	var out []error
	for _, h := range sortedKeys(errs) {
		if errs[h] != nil {
			out = append(out, errs[h])
		}
	}
	return errors.Join(out...)
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func trim(s string) string {
	if len(s) > 1000 {
		return s[:1000] + "…"
	}
	return s
}

// OpenArtifact returns the Runner.Artifact opener for a verified artifact,
// refusing a file that changed since it was inspected.
func OpenArtifact(a *release.Artifact) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) {
		f, err := os.Open(a.Path)
		if err != nil {
			return nil, err
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, err
		}
		if st.Size() != a.Size {
			f.Close()
			return nil, fmt.Errorf("artifact %s changed since it was verified (size %d, was %d)", a.Path, st.Size(), a.Size)
		}
		// The host recomputes sha256 on arrival and refuses a mismatch.
		return f, nil
	}
}

// direct plans a straight move to rel; when every app host's canary already
// serves all traffic, it is not restarted under that traffic.
func (d *Deployer) direct(rel string, states map[string]*HostState) (*plan.Plan, error) {
	return plan.Deploy(plan.Input{Inventory: d.Inv, App: d.App, SkipStandby: d.SkipStandby, Release: rel, Base: d.Base,
		Strategy: plan.Strategy{Direct: true, DrainTimeout: d.DrainTimeout, CanaryServes: canaryServes(states)}})
}

// canaryServes: every app host routes everything to a running canary.
func canaryServes(states map[string]*HostState) bool {
	n := 0
	for _, s := range states {
		if s.Standby {
			continue
		}
		if s.Stage != "full" || s.CanaryUnit != "active" {
			return false
		}
		n++
	}
	return n > 0
}
