package run

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/belay-sh/belay/deploy/plan"
	"github.com/belay-sh/belay/deploy/sshx"
)

// Decision is a canary verdict.
type Decision int

// The verdicts a Judgement returns.
const (
	Pass Decision = iota
	Wait          // not enough canary requests yet
	Fail
)

// Verdict is a Judgement's answer with its reason for the log and the audit trail.
type Verdict struct {
	Decision Decision
	Reason   string
	// FirstBad, for a Fail, is when the canary's trouble began by the hosts'
	// clocks (e.g. the first canary 5xx), zero if unknown; FirstBadWhat names it.
	FirstBad     time.Time
	FirstBadWhat string
	// Numbers are the judgement's figures for notifications (deploy.Judge:
	// an analysis.Verdict); nil if it has none.
	Numbers any
}

// verdict hands a stage's final verdict to OnVerdict.
func (r *Runner) verdict(stage string, v Verdict) {
	if r.OnVerdict != nil {
		r.OnVerdict(stage, v)
	}
}

// Judge starts the judgement of one stage.
type Judge func(stage string) Judgement

// Judgement compares canary and stable in the access-log lines a stage wrote.
// The runner hands it each host's new complete lines on every tick (never the
// same line twice) and asks for a verdict on everything seen so far.
type Judgement interface {
	Add(host string, lines []byte) error
	Verdict() (Verdict, error)
}

// CanaryError is an analysis stage that rejected the canary: a failed verdict
// or a crashed canary unit, with when the trouble began and when it was seen.
type CanaryError struct {
	Stage string
	// Host is the host whose canary unit crashed ("" for a verdict).
	Host   string
	Reason string
	// FirstBad is when the trouble began, by the host's clock: the unit's exit
	// (systemd, µs) or the first canary 5xx (nginx's $time_iso8601, whole
	// seconds); zero when unknown. FirstBadWhat says which.
	FirstBad     time.Time
	FirstBadWhat string
	// Detected is when the runner saw it (this machine's clock).
	Detected time.Time
}

func (e *CanaryError) Error() string {
	if e.Host != "" {
		return fmt.Sprintf("canary crashed at %s on %s: %s", e.Stage, e.Host, e.Reason)
	}
	return fmt.Sprintf("canary rejected at %s: %s", e.Stage, e.Reason)
}

// FirstCanaryError returns, among the canary errors in err, the one whose
// trouble began first (known start times first), or nil.
func FirstCanaryError(err error) *CanaryError {
	var all []*CanaryError
	var walk func(error)
	walk = func(err error) {
		if ce, ok := err.(*CanaryError); ok {
			all = append(all, ce)
			return
		}
		switch u := err.(type) {
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				walk(e)
			}
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		}
	}
	if err != nil {
		walk(err)
	}
	sort.Slice(all, func(i, j int) bool {
		a, b := all[i], all[j]
		if a.FirstBad.IsZero() != b.FirstBad.IsZero() {
			return !a.FirstBad.IsZero()
		}
		if !a.FirstBad.Equal(b.FirstBad) {
			return a.FirstBad.Before(b.FirstBad)
		}
		return a.Host < b.Host
	})
	if len(all) == 0 {
		return nil
	}
	return all[0]
}

// hostProbe is one host's analysis state between ticks.
type hostProbe struct {
	offset   int64
	restarts int
}

// analyze judges a stage while it runs. Every Tick it probes every host in
// parallel — one SSH round trip each: the access-log bytes written since the
// last probe, and the canary unit's state — and hands the new complete lines
// to the stage's Judgement. It fails at once when a canary unit crashed or
// restarted (with the unit's log) or the verdict is Fail; it passes only once
// the whole Pause was observed; without enough canary requests it waits on up
// to MaxWait. Ticks are scheduled from the stage's start, and the pause's end
// is always a tick, so the pass comes on time.
func (r *Runner) analyze(ctx context.Context, s plan.Step) error {
	a := s.Analyze
	fail := func(err error) error {
		return &StepError{Step: s, ByHost: map[string]error{"analysis": err}}
	}
	if r.Judge == nil {
		return fail(errors.New("no canary judge configured"))
	}
	tick, pause, maxWait := time.Duration(a.Tick), time.Duration(a.Pause), time.Duration(a.MaxWait)
	if tick <= 0 {
		tick = min(plan.AnalyzeTick, pause)
	}
	if tick <= 0 {
		return fail(fmt.Errorf("analysis %s: tick %s and pause %s, expected > 0", a.Stage, tick, pause))
	}
	judgement := r.Judge(a.Stage)
	state := map[string]*hostProbe{}
	for _, h := range s.Hosts {
		state[h] = &hostProbe{offset: -1, restarts: -1}
	}
	start := r.now()
	// The first probe starts the window (log offsets, restart counts) and
	// already fails a canary that crashed since its health check.
	if err := r.probeAll(ctx, s, start, state, judgement); err != nil {
		return err
	}
	r.Note("[analysis] %s: observing for %s, judging every %s", a.Stage, pause, tick)
	noteEvery := max(pause/4, tick)
	at, noted := time.Duration(0), time.Duration(0)
	for {
		next := at + tick
		if at < pause && next > pause {
			next = pause
		}
		next = min(next, maxWait)
		at = next
		if d := start.Add(at).Sub(r.now()); d > 0 {
			if err := r.sleep(ctx, d); err != nil {
				return fail(err)
			}
		}
		if err := r.probeAll(ctx, s, start, state, judgement); err != nil {
			return err
		}
		v, err := judgement.Verdict()
		if err != nil {
			return fail(fmt.Errorf("analysis: %w", err))
		}
		took := r.now().Sub(start)
		switch {
		case v.Decision == Fail:
			r.progress("analysis", s.Title, "FAIL: "+v.Reason, took)
			r.verdict(a.Stage, v)
			return fail(&CanaryError{Stage: a.Stage, Reason: v.Reason, FirstBad: v.FirstBad, FirstBadWhat: v.FirstBadWhat, Detected: r.now()})
		case at < pause:
			if at-noted >= noteEvery {
				noted = at
				r.Note("[analysis] %s: %s observed: %s", a.Stage, at, v.Reason)
			}
			continue
		case v.Decision == Pass:
			r.progress("analysis", s.Title, "pass: "+v.Reason, took)
			r.verdict(a.Stage, v)
			return nil
		case at >= maxWait:
			r.progress("analysis", s.Title, "FAIL: "+v.Reason, took)
			r.verdict(a.Stage, Verdict{Decision: Fail, Reason: "no verdict after " + at.String() + ": " + v.Reason, Numbers: v.Numbers})
			return fail(fmt.Errorf("canary at %s: no verdict after %s: %s", a.Stage, at, v.Reason))
		}
		if at == pause || at-noted >= noteEvery {
			noted = at
			r.Note("[analysis] %s: %s; waiting up to %s more", a.Stage, v.Reason, maxWait-at)
		}
	}
}

// probeAll probes every host once and feeds the judgement their new complete
// log lines. A crashed canary unit fails the step naming each host it crashed on.
func (r *Runner) probeAll(ctx context.Context, s plan.Step, start time.Time, state map[string]*hostProbe, j Judgement) error {
	var mu sync.Mutex
	crashed := map[string]error{}
	errs := sshx.Parallel(ctx, s.Hosts, r.Parallel, func(ctx context.Context, host string) error {
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		c, err := r.Pool.Get(ctx, host)
		if err != nil {
			return err
		}
		st := state[host] // each goroutine owns its host's entry
		res, err := c.Run(ctx, plan.ProbeArgs(st.offset, st.restarts)+s.Analyze.ProbeCommand, nil)
		if err != nil {
			return err
		}
		p, err := plan.ParseProbe(res.Stdout)
		if err != nil {
			return fmt.Errorf("host %s: %w", host, err)
		}
		// Only complete lines count: the next probe reads a half-written
		// line again from its start.
		lines := p.Log
		if i := bytes.LastIndexByte(lines, '\n'); i >= 0 {
			lines = lines[:i+1]
		} else if len(lines) < plan.MaxProbeLog {
			lines = nil
		}
		st.offset, st.restarts = p.Offset+int64(len(lines)), p.Restarts
		mu.Lock()
		defer mu.Unlock()
		if len(lines) > 0 {
			if err := j.Add(host, lines); err != nil {
				return fmt.Errorf("host %s: access log: %w", host, err)
			}
		}
		if p.Bad != "" {
			reason := p.Bad
			if p.Journal != "" {
				reason += "\n--- journalctl -u " + s.Analyze.Unit + " -n " + fmt.Sprint(plan.JournalLines) + "\n" + p.Journal
			}
			ce := &CanaryError{Stage: s.Analyze.Stage, Host: host, Reason: reason, FirstBad: p.Exited, Detected: r.now()}
			if !p.Exited.IsZero() {
				ce.FirstBadWhat = "canary unit exited on " + host
			}
			crashed[host] = ce
		}
		return nil
	})
	if failed := only(errs); len(failed) > 0 {
		return &StepError{Step: s, ByHost: failed}
	}
	if len(crashed) > 0 {
		hosts := make([]string, 0, len(crashed))
		for h := range crashed {
			hosts = append(hosts, h)
		}
		sort.Strings(hosts)
		r.progress("analysis", s.Title, "FAIL: canary crashed on "+strings.Join(hosts, ", "), r.now().Sub(start))
		return &StepError{Step: s, ByHost: crashed}
	}
	return nil
}
