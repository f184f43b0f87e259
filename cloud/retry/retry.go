// Package retry runs provider API calls with capped exponential backoff and
// full jitter, and polls asynchronous actions, both bounded by the context's
// deadline. It knows nothing about any provider: callers classify errors.
package retry

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/belay-sh/belay/internal/clock"
)

// Verdict is how a failed call should be treated.
type Verdict struct {
	// Retry is true for errors that may go away on their own: 5xx, 429,
	// network errors, and "another action is pending" answers.
	Retry bool
	// After is the server's Retry-After hint (0 = none); it replaces the
	// computed backoff when longer, because asking earlier just earns another 429.
	After time.Duration
	// Reason is a short label for the log line ("HTTP 503", "pending action").
	Reason string
}

// Classifier decides whether err is worth another attempt.
type Classifier func(err error) Verdict

// Policy shapes the backoff between attempts.
type Policy struct {
	// Base is the first backoff step; each retry doubles it up to Max.
	Base time.Duration
	Max  time.Duration
	// Jitter returns a number in [0,1); nil uses math/rand. Full jitter spreads
	// the two members of a VRRP group that may both retry against the same API.
	Jitter func() float64
	// Logf receives one line per retry; nil discards.
	Logf func(format string, args ...any)
}

// Default is the policy claims and DNS updates use: 250 ms doubling to 5 s.
var Default = Policy{Base: 250 * time.Millisecond, Max: 5 * time.Second}

// Backoff returns the wait before retry number attempt (0-based): a uniformly
// random duration in [0, min(Max, Base*2^attempt)] ("full jitter").
func (p Policy) Backoff(attempt int) time.Duration {
	base, max := p.Base, p.Max
	if base <= 0 {
		base = Default.Base
	}
	if max < base {
		max = base
	}
	ceil := base
	for i := 0; i < attempt && ceil < max; i++ {
		ceil *= 2
	}
	if ceil > max {
		ceil = max
	}
	j := p.Jitter
	if j == nil {
		j = rand.Float64
	}
	return time.Duration(j() * float64(ceil+1))
}

func (p Policy) logf(format string, args ...any) {
	if p.Logf != nil {
		p.Logf(format, args...)
	}
}

// Do calls fn until it succeeds, classify says the error is permanent, or ctx
// ends. what names the call in log lines and errors. The last error is
// returned wrapped, so callers can still inspect the provider's error.
func Do(ctx context.Context, p Policy, what string, classify Classifier, fn func(context.Context) error) error {
	var prev error // the attempt before; when the deadline cuts a request short, it holds the real cause
	for attempt := 0; ; attempt++ {
		err := fn(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: gave up after %d attempt(s): %w", what, attempt+1, errors.Join(ctx.Err(), err, prev))
		}
		prev = err
		v := classify(err)
		if !v.Retry {
			return fmt.Errorf("%s: %w", what, err)
		}
		wait := p.Backoff(attempt)
		if v.After > wait {
			wait = v.After
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			// Sleeping past the deadline only delays the failure report.
			return fmt.Errorf("%s: gave up after %d attempt(s), next retry (in %s) would pass the deadline: %w",
				what, attempt+1, wait.Round(time.Millisecond), err)
		}
		p.logf("%s: %s, retry %d in %s", what, v.Reason, attempt+1, wait.Round(time.Millisecond))
		if serr := clock.Sleep(ctx, nil, wait); serr != nil {
			return fmt.Errorf("%s: gave up after %d attempt(s): %w", what, attempt+1, errors.Join(serr, err))
		}
	}
}

// ErrActionFailed is wrapped by Poll's error when the provider reports the action failed.
var ErrActionFailed = errors.New("action failed")

// Poll calls check every interval until it reports done, returns an error, or
// ctx ends. It returns the number of checks made. check should itself retry
// transient errors (wrap it with Do) so one 503 does not abort a wait.
func Poll(ctx context.Context, interval time.Duration, check func(context.Context) (done bool, err error)) (int, error) {
	for n := 1; ; n++ {
		done, err := check(ctx)
		if err != nil {
			return n, err
		}
		if done {
			return n, nil
		}
		if err := clock.Sleep(ctx, nil, interval); err != nil {
			return n, fmt.Errorf("still not finished after %d check(s): %w", n, err)
		}
	}
}
