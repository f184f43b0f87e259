// Package run executes deploy plans over SSH: step after step, each on its
// hosts in parallel (bounded), every remote step wrapped in journal writes, with
// one progress line per host and step on stderr:
//
//	[shop-1] unpack v42 … ok (0.4s)
//
// It stops at the first failing step and returns a *StepError; deciding what to
// do next (roll every host back) is the caller's job (package deploy).
package run

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/belay-sh/belay/deploy/lease"
	"github.com/belay-sh/belay/deploy/plan"
	"github.com/belay-sh/belay/deploy/sshx"
	"github.com/belay-sh/belay/hostrelease"
	"github.com/belay-sh/belay/hostrelease/journal"
	"github.com/belay-sh/belay/internal/clock"
)

// Runner executes plans.
type Runner struct {
	Pool   *sshx.Pool
	Layout hostrelease.Layout
	// Artifact opens the artifact for one host's upload (once per host).
	Artifact func() (io.ReadCloser, error)
	// Env is the app's env file a plan's "env" stdin streams (secret: never logged).
	Env []byte
	// OnVerdict, when set, hears every analysis stage's final verdict.
	OnVerdict func(stage string, v Verdict)
	// Progress receives the per-host lines (stderr).
	Progress io.Writer
	// Parallel bounds hosts worked on at once (0: all).
	Parallel int
	// Judge decides analysis steps; nil fails any plan that has one.
	Judge Judge
	// Fence, when set, guards every remote step and journal write: the host
	// refuses it unless this run still holds the app's lease (see lease.Fence).
	Fence *lease.Fence
	// Now and Sleep are injectable for tests.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error

	mu sync.Mutex
}

// StepError is a failed step: which one, and why on each host that failed.
type StepError struct {
	Step   plan.Step
	ByHost map[string]error
}

func (e *StepError) Error() string {
	var hosts []string
	for h := range e.ByHost {
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	var parts []string
	for _, h := range hosts {
		parts = append(parts, e.ByHost[h].Error())
	}
	return fmt.Sprintf("step %s (%s) failed: %s", e.Step.ID, e.Step.Title, strings.Join(parts, "; "))
}

// Unwrap exposes the host errors (errors.As finds a HostKeyError among them).
func (e *StepError) Unwrap() []error {
	var out []error
	for _, err := range e.ByHost {
		out = append(out, err)
	}
	return out
}

func (r *Runner) now() time.Time { return clock.Now(r.Now) }

func (r *Runner) sleep(ctx context.Context, d time.Duration) error {
	return clock.Sleep(ctx, r.Sleep, d)
}

func (r *Runner) progress(host, title, result string, took time.Duration) {
	if r.Progress == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(r.Progress, "[%s] %s … %s (%.1fs)\n", host, title, result, took.Seconds())
}

// Note prints a line without a host (stage banners, rollback notices).
func (r *Runner) Note(format string, a ...any) {
	if r.Progress == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(r.Progress, format+"\n", a...)
}

// Exec runs every step of p. recs holds each host's journal record for this
// run (Kind, Target, Previous, ...); Exec keeps Step/InProgress current on the
// hosts. Steps already done on a host (their Skip test passes) are skipped.
//
// A step normally ends on all its hosts before the next begins. Consecutive
// steps of one Pipeline are the exception: each host goes through them back to
// back, so a host that finished its upload unpacks while a slower one is still
// receiving, and the pipeline costs its slowest host's sum, not the sum of each
// step's slowest host. Every host finishes the pipeline before the next step.
func (r *Runner) Exec(ctx context.Context, p *plan.Plan, recs map[string]journal.Record) error {
	for i := 0; i < len(p.Steps); {
		s := p.Steps[i]
		if err := ctx.Err(); err != nil {
			return &StepError{Step: s, ByHost: map[string]error{"deployer": err}}
		}
		j := i + 1
		for s.Pipeline != "" && s.Analyze == nil && j < len(p.Steps) && p.Steps[j].Pipeline == s.Pipeline && p.Steps[j].Analyze == nil {
			j++
		}
		var err error
		switch {
		case s.Analyze != nil:
			err = r.analyze(ctx, s)
		case j-i > 1:
			err = r.pipeline(ctx, p.Steps[i:j], recs)
		default:
			err = r.remote(ctx, s, recs)
		}
		if err != nil {
			return err
		}
		i = j
	}
	return nil
}

// remote runs one step on its hosts in parallel.
func (r *Runner) remote(ctx context.Context, s plan.Step, recs map[string]journal.Record) error {
	errs := sshx.Parallel(ctx, s.Hosts, r.Parallel, func(ctx context.Context, host string) error {
		return r.stepOn(ctx, s, host, recs)
	})
	if failed := only(errs); len(failed) > 0 {
		return &StepError{Step: s, ByHost: failed}
	}
	return nil
}

// pipeline runs steps back to back on each host, hosts in parallel. After a
// failure no host starts another step (the ones under way finish), and the
// error names the earliest failed step; hosts that failed at a later one say which.
func (r *Runner) pipeline(ctx context.Context, steps []plan.Step, recs map[string]journal.Record) error {
	var hosts []string
	seen := map[string]bool{}
	for _, s := range steps {
		for _, h := range s.Hosts {
			if !seen[h] {
				seen[h] = true
				hosts = append(hosts, h)
			}
		}
	}
	var stop atomic.Bool
	var mu sync.Mutex
	failedAt := map[string]int{}
	errs := sshx.Parallel(ctx, hosts, r.Parallel, func(ctx context.Context, host string) error {
		for k, s := range steps {
			if !slices.Contains(s.Hosts, host) {
				continue
			}
			if stop.Load() {
				return nil
			}
			if err := r.stepOn(ctx, s, host, recs); err != nil {
				stop.Store(true)
				mu.Lock()
				failedAt[host] = k
				mu.Unlock()
				return err
			}
		}
		return nil
	})
	failed := only(errs)
	if len(failed) == 0 {
		return nil
	}
	first := len(steps)
	for h := range failed {
		if k, ok := failedAt[h]; ok && k < first {
			first = k
		}
	}
	if first == len(steps) { // failed before any step ran (connect, context)
		first = 0
	}
	for h, err := range failed {
		if k, ok := failedAt[h]; ok && k != first {
			failed[h] = fmt.Errorf("at step %s (%s): %w", steps[k].ID, steps[k].Title, err)
		}
	}
	return &StepError{Step: steps[first], ByHost: failed}
}

// stepOn runs s on one host and prints its progress line.
func (r *Runner) stepOn(ctx context.Context, s plan.Step, host string, recs map[string]journal.Record) error {
	start := time.Now()
	err := r.remoteOn(ctx, s, host, recs)
	switch {
	case errors.Is(err, errSkipped):
		r.progress(host, s.Title, "already done", time.Since(start))
		return nil
	case err != nil:
		r.progress(host, s.Title, "FAILED", time.Since(start))
		return err
	}
	r.progress(host, s.Title, "ok", time.Since(start))
	return nil
}

var errSkipped = errors.New("skipped")

func (r *Runner) remoteOn(ctx context.Context, s plan.Step, host string, recs map[string]journal.Record) error {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(s.Timeout))
	defer cancel()
	c, err := r.Pool.Get(ctx, host)
	if err != nil {
		return err
	}
	rec := recs[host]
	if s.Skip != "" {
		if _, err := c.Run(ctx, s.Skip, nil); err == nil {
			rec.Step, rec.InProgress, rec.UpdatedAt = s.ID, "", r.now().UTC()
			r.setRec(recs, host, rec)
			if _, err := c.Run(ctx, r.Fence.Wrap(host, journal.WriteCommand(r.Layout, rec)), nil); err != nil {
				if fe := fenced(host, err); fe != nil {
					return fe
				}
				return fmt.Errorf("journal: %w", err)
			}
			return errSkipped
		} else if ctx.Err() != nil {
			return err
		}
	}
	before := rec
	before.InProgress, before.UpdatedAt = s.ID, r.now().UTC()
	after := rec
	after.Step, after.InProgress, after.UpdatedAt = s.ID, "", r.now().UTC()
	var stdin io.Reader
	if s.Stdin == "artifact" {
		if r.Artifact == nil {
			return errors.New("plan streams an artifact but the runner has none")
		}
		f, err := r.Artifact()
		if err != nil {
			return fmt.Errorf("artifact: %w", err)
		}
		defer f.Close()
		stdin = f
	} else if s.Stdin == "env" {
		stdin = bytes.NewReader(r.Env)
	}
	cmd := r.Fence.Wrap(host, journal.Wrap(r.Layout, before, after, s.Command))
	if s.Stream {
		out := r.prefixed(host)
		_, err = c.Stream(ctx, cmd, stdin, out, out)
	} else {
		_, err = c.Run(ctx, cmd, stdin)
	}
	if err != nil {
		if fe := fenced(host, err); fe != nil {
			return fe // refused before the journal write: rec stays as it was
		}
		r.setRec(recs, host, before)
		var ce *sshx.CommandError
		if errors.As(err, &ce) {
			ce.Cmd = s.Title // the wrapped script is noise; the step says what failed
		}
		return err
	}
	r.setRec(recs, host, after)
	return nil
}

// fenced turns the fence's refusal into a *lease.FencedError (nil otherwise).
func fenced(host string, err error) error {
	var ce *sshx.CommandError
	if errors.As(err, &ce) && lease.IsFenced(ce.Code) {
		return &lease.FencedError{Host: host, Msg: ce.Stderr}
	}
	return nil
}

func (r *Runner) setRec(recs map[string]journal.Record, host string, rec journal.Record) {
	r.mu.Lock()
	defer r.mu.Unlock()
	recs[host] = rec
}

func only(errs map[string]error) map[string]error {
	out := map[string]error{}
	for h, err := range errs {
		if err != nil {
			out[h] = err
		}
	}
	return out
}
