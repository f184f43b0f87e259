package deploy

import (
	"fmt"
	"time"

	"github.com/belay-sh/belay/deploy/notify"
	"github.com/belay-sh/belay/deploy/plan"
	"github.com/belay-sh/belay/deploy/run"
	"github.com/belay-sh/belay/hostrelease/journal"
)

// envOnly names an env-only release after the running one and the env serial.
func envOnly(in *plan.Input, current string, serial int) error {
	if current == "" {
		return fmt.Errorf("app %s: no release runs yet: deploy an artifact first (it carries the env)", in.App)
	}
	rel := plan.EnvRelease(current, serial)
	if rel == current {
		return fmt.Errorf("app %s: %s already runs env serial %d; nothing to deploy", in.App, current, serial)
	}
	in.CopyFrom, in.Release = current, rel
	return nil
}

// mayHaveStarted says whether any host got past the preparing steps (upload,
// unpack, copy, env, release command) to one that starts, routes or switches
// something: a failure before that needs no rollback at all.
func mayHaveStarted(p *plan.Plan, recs map[string]journal.Record) bool {
	first := -1
	idx := map[string]int{}
	for i, s := range p.Steps {
		idx[s.ID] = i
		switch s.Stage {
		case plan.Upload, plan.Unpack, plan.Verify, plan.Release:
		default:
			if first < 0 {
				first = i
			}
		}
	}
	if first < 0 {
		return false
	}
	for _, r := range recs {
		for _, id := range []string{r.Step, r.InProgress} {
			if i, ok := idx[id]; ok && i >= first {
				return true
			}
		}
	}
	return false
}

// send fills in who and where, and queues ev (never blocks).
func (d *Deployer) send(ev notify.Event) {
	if d.Notify == nil {
		return
	}
	ev.App, ev.Cell, ev.Stack, ev.By, ev.CI, ev.Time = d.App, d.Cell, d.Stack, d.Actor.Who, d.Actor.CI, time.Now().UTC()
	d.Notify.Send(ev)
}

// watchVerdicts sends each analysis stage's final verdict with its figures;
// the returned func restores the runner's previous hook.
func (d *Deployer) watchVerdicts(release, id string) func() {
	prev := d.Runner.OnVerdict
	d.Runner.OnVerdict = func(stage string, v run.Verdict) {
		if prev != nil {
			prev(stage, v)
		}
		verdict := "pass"
		if v.Decision == run.Fail {
			verdict = "fail"
		}
		d.send(notify.Event{Event: "verdict", Release: release, DeployID: id, Stage: stage, Verdict: verdict, Reason: v.Reason, Analysis: v.Numbers})
	}
	return func() { d.Runner.OnVerdict = prev }
}

// notifyOutcome sends the deploy's end: promoted, paused, rolled-back or failed.
func (d *Deployer) notifyOutcome(out *Outcome) {
	ev := notify.Event{Release: out.Release, Previous: out.Previous, DeployID: out.DeployID, Error: out.Error, Duration: out.Duration, Rollback: out.Rollback}
	switch out.Result {
	case "ok":
		ev.Event = "promoted"
	case "paused":
		ev.Event = "paused"
		ev.Stage = out.PausedAfter
	case "rolled-back":
		ev.Event = "rolled-back"
	case "":
		return
	default: // failed, rollback-failed
		ev.Event = "failed"
	}
	d.send(ev)
}

// notifyRollback sends a `belay rollback`'s end: rolled-back when hosts were
// moved back, failed when it failed; an abandon with nothing to undo is silent.
func (d *Deployer) notifyRollback(out *Outcome) {
	ev := notify.Event{Release: out.Release, Previous: out.Previous, DeployID: out.DeployID, Error: out.Error, Duration: out.Duration, Reason: "belay rollback"}
	switch out.Result {
	case "ok":
		ev.Event = "rolled-back"
	case "", "nothing to abandon":
		return
	default:
		ev.Event = "failed"
	}
	d.send(ev)
}
