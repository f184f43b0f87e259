package analysis

import (
	"fmt"
	"strings"
	"time"
)

// Thresholds decide a verdict. A zero field takes its default (DefaultThresholds).
type Thresholds struct {
	// MinRequests is the canary sample needed before anything but an early
	// rollback (default 200). Fewer canary requests never pass.
	MinRequests int64 `json:"minRequests"`
	// MinBaseline is the stable sample needed to compare against (default 200).
	// With fewer (e.g. in the full stage, where stable gets nothing) the canary is
	// judged against a perfect baseline: 0 % errors, 0 % slow, SlowFallback as the
	// slow threshold (unless SlowAbsolute is set).
	MinBaseline int64 `json:"minBaseline"`
	// MaxErrorDelta is how many percentage points the canary's 5xx rate may
	// exceed the baseline's (default 1.0).
	MaxErrorDelta float64 `json:"maxErrorDelta"`
	// MaxSlowDelta is how many percentage points the canary's slow-request share
	// may exceed the baseline's (default 5.0).
	MaxSlowDelta float64 `json:"maxSlowDelta"`
	// SlowAbsolute, when set, makes every request slower than it slow.
	SlowAbsolute time.Duration `json:"slowAbsolute"`
	// SlowFactor: without SlowAbsolute a request is slow above SlowFactor × the
	// baseline's p95 (default 2) ...
	SlowFactor float64 `json:"slowFactor"`
	// SlowFloor ... but never below SlowFloor (default 50 ms), so a 3 ms baseline
	// does not turn scheduler noise into "slow".
	SlowFloor time.Duration `json:"slowFloor"`
	// SlowFallback is the slow threshold when the baseline is too small (default 1 s).
	SlowFallback time.Duration `json:"slowFallback"`
}

// DefaultThresholds are the defaults documented in docs/canary.md.
func DefaultThresholds() Thresholds {
	return Thresholds{
		MinRequests:   200,
		MinBaseline:   200,
		MaxErrorDelta: 1.0,
		MaxSlowDelta:  5.0,
		SlowFactor:    2,
		SlowFloor:     50 * time.Millisecond,
		SlowFallback:  time.Second,
	}
}

// WithDefaults fills zero fields from DefaultThresholds.
func (t Thresholds) WithDefaults() Thresholds {
	d := DefaultThresholds()
	if t.MinRequests <= 0 {
		t.MinRequests = d.MinRequests
	}
	if t.MinBaseline <= 0 {
		t.MinBaseline = d.MinBaseline
	}
	if t.MaxErrorDelta <= 0 {
		t.MaxErrorDelta = d.MaxErrorDelta
	}
	if t.MaxSlowDelta <= 0 {
		t.MaxSlowDelta = d.MaxSlowDelta
	}
	if t.SlowFactor <= 0 {
		t.SlowFactor = d.SlowFactor
	}
	if t.SlowFloor <= 0 {
		t.SlowFloor = d.SlowFloor
	}
	if t.SlowFallback <= 0 {
		t.SlowFallback = d.SlowFallback
	}
	return t
}

// The checks a Verdict names in Failed.
const (
	CheckErrors = "5xx"
	CheckSlow   = "slow"
)

// Decision is what the deployer should do next.
type Decision string

// The decisions.
const (
	Wait     Decision = "wait"     // not enough canary traffic yet; keep the stage
	Pass     Decision = "pass"     // enough traffic and within every threshold
	Rollback Decision = "rollback" // a threshold is exceeded
)

// Side is one pool's numbers as judged.
type Side struct {
	Requests  int64         `json:"requests"`
	Errors    int64         `json:"errors"`
	ErrorRate float64       `json:"errorRate"` // 0..1
	P95       time.Duration `json:"p95"`
	Slow      int64         `json:"slow"`
	SlowShare float64       `json:"slowShare"` // 0..1
}

// Verdict is Evaluate's answer, with the numbers behind it.
type Verdict struct {
	Decision Decision `json:"decision"`
	// Reason is one human line per check, joined by "; ".
	Reason string `json:"reason"`
	// Failed names the checks that failed a Rollback: "5xx", "slow".
	Failed   []string `json:"failed,omitempty"`
	Canary   Side     `json:"canary"`
	Baseline Side     `json:"baseline"`
	// BaselineUsed is false when the baseline was too small and the canary was
	// judged against a perfect one.
	BaselineUsed bool `json:"baselineUsed"`
	// SlowThreshold is the request time above which a request counted as slow.
	SlowThreshold time.Duration `json:"slowThreshold"`
	Thresholds    Thresholds    `json:"thresholds"`
}

// String is "rollback: canary 5xx 7.3% (22/300) vs stable 0.2% (3/1500): > +1.0 pt".
func (v Verdict) String() string { return string(v.Decision) + ": " + v.Reason }

const eps = 1e-9 // float slack so exactly +1.0 pt is "within", not "above"

// Evaluate compares the canary pool with the baseline (normally the stable pool
// over the same window).
func Evaluate(canary, baseline Stats, th Thresholds) Verdict {
	th = th.WithDefaults()
	v := Verdict{Thresholds: th, BaselineUsed: baseline.Requests >= th.MinBaseline}

	switch {
	case th.SlowAbsolute > 0:
		v.SlowThreshold = th.SlowAbsolute
	case v.BaselineUsed:
		v.SlowThreshold = time.Duration(th.SlowFactor * float64(baseline.P95()))
		if v.SlowThreshold < th.SlowFloor {
			v.SlowThreshold = th.SlowFloor
		}
		v.SlowThreshold = v.SlowThreshold.Round(time.Millisecond)
	default:
		v.SlowThreshold = th.SlowFallback
	}
	v.Canary = side(&canary, v.SlowThreshold)
	v.Baseline = side(&baseline, v.SlowThreshold)
	baseName := "stable"
	if !v.BaselineUsed {
		// Too little stable traffic to measure: hold the canary to a perfect baseline.
		baseName = fmt.Sprintf("perfect baseline (stable has %d < %d requests)", baseline.Requests, th.MinBaseline)
		v.Baseline.ErrorRate, v.Baseline.SlowShare = 0, 0
	}
	slowName := fmt.Sprintf("slow (>%s)", v.SlowThreshold)

	type check struct {
		id, name       string
		n              int64
		rate, baseRate float64
		limit          float64
		base           string
	}
	checks := []check{
		{CheckErrors, "5xx", canary.Errors, v.Canary.ErrorRate, v.Baseline.ErrorRate, th.MaxErrorDelta, baseText(v.BaselineUsed, baseName, v.Baseline.ErrorRate, v.Baseline.Errors, v.Baseline.Requests)},
		{CheckSlow, slowName, v.Canary.Slow, v.Canary.SlowShare, v.Baseline.SlowShare, th.MaxSlowDelta, baseText(v.BaselineUsed, baseName, v.Baseline.SlowShare, v.Baseline.Slow, v.Baseline.Requests)},
	}

	if canary.Requests < th.MinRequests {
		// Early rollback: so many bad requests already that even if every request up
		// to the minimum sample succeeded, the canary would still fail.
		var fails []string
		for _, c := range checks {
			atMin := float64(c.n) / float64(th.MinRequests)
			if (atMin-c.baseRate)*100 > c.limit+eps {
				fails = append(fails, fmt.Sprintf("canary %s %d in its first %d requests: at least %s (%d/%d) vs %s: > +%.1f pt",
					c.name, c.n, canary.Requests, pct(atMin), c.n, th.MinRequests, c.base, c.limit))
				v.Failed = append(v.Failed, c.id)
			}
		}
		if len(fails) > 0 {
			v.Decision, v.Reason = Rollback, strings.Join(fails, "; ")
			return v
		}
		v.Decision = Wait
		v.Reason = fmt.Sprintf("canary has %d requests, need %d", canary.Requests, th.MinRequests)
		return v
	}

	var fails, oks []string
	for _, c := range checks {
		line := fmt.Sprintf("canary %s %s (%d/%d) vs %s", c.name, pct(c.rate), c.n, canary.Requests, c.base)
		if (c.rate-c.baseRate)*100 > c.limit+eps {
			fails = append(fails, fmt.Sprintf("%s: > +%.1f pt", line, c.limit))
			v.Failed = append(v.Failed, c.id)
		} else {
			oks = append(oks, fmt.Sprintf("%s: within +%.1f pt", line, c.limit))
		}
	}
	if len(fails) > 0 {
		v.Decision, v.Reason = Rollback, strings.Join(fails, "; ")
		return v
	}
	v.Decision, v.Reason = Pass, strings.Join(oks, "; ")
	return v
}

func side(s *Stats, slow time.Duration) Side {
	out := Side{Requests: s.Requests, Errors: s.Errors, ErrorRate: s.ErrorRate(), P95: s.P95()}
	out.Slow = s.SlowerThan(slow)
	if s.Requests > 0 {
		out.SlowShare = float64(out.Slow) / float64(s.Requests)
	}
	return out
}

func baseText(used bool, name string, rate float64, n, total int64) string {
	if !used {
		return name
	}
	return fmt.Sprintf("%s %s (%d/%d)", name, pct(rate), n, total)
}

func pct(f float64) string { return fmt.Sprintf("%.1f%%", f*100) }
