package deploy

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/belay-sh/belay/deploy/plan"
	"github.com/belay-sh/belay/deploy/sshx"
	"github.com/belay-sh/belay/hostrelease/journal"
)

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
