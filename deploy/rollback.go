package deploy

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/belay-sh/belay/deploy/lease"
	"github.com/belay-sh/belay/deploy/plan"
	"github.com/belay-sh/belay/deploy/sshx"
	"github.com/belay-sh/belay/hostrelease"
	"github.com/belay-sh/belay/hostrelease/journal"
)

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
		if err := hostrelease.ValidateID(to); err != nil {
			return nil, err
		}
	}
	id := NewID(time.Now())
	return d.locked(ctx, "rollback", func(ctx context.Context) (*Outcome, error) {
		start := time.Now()
		out := &Outcome{App: d.App, DeployID: id, Action: "rollback", Hosts: app.Hosts}
		defer func() { d.notifyRollback(out) }()
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
