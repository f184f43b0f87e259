package analysis

import (
	"strings"
	"testing"
	"time"
)

// pool builds Stats: n requests, errs of them 5xx, latencies spread over lat
// (cycled), slow of them replaced by slowMS.
func pool(n, errs int, lat []int, slow int, slowMS int) Stats {
	var s Stats
	for i := 0; i < n; i++ {
		st := 200
		if i < errs {
			st = 502
		}
		ms := lat[i%len(lat)]
		if i >= n-slow {
			ms = slowMS
		}
		s.Add(st, time.Duration(ms)*time.Millisecond)
	}
	return s
}

func TestEvaluate(t *testing.T) {
	fast := []int{20, 30, 40, 50, 60, 70, 80, 90, 100, 110} // p95 110 ms → slow above 220 ms
	tests := []struct {
		name      string
		canary    Stats
		baseline  Stats
		th        Thresholds
		want      Decision
		reason    string // exact, or substring when contains
		contains  bool
		baseUsed  bool
		threshold time.Duration
	}{
		{
			name:   "brief example: error rate",
			canary: pool(300, 22, fast, 0, 0), baseline: pool(1500, 3, fast, 0, 0),
			want:     Rollback,
			reason:   "canary 5xx 7.3% (22/300) vs stable 0.2% (3/1500): > +1.0 pt",
			baseUsed: true, threshold: 220 * time.Millisecond,
		},
		{
			name:   "healthy canary passes",
			canary: pool(300, 1, fast, 3, 500), baseline: pool(1500, 3, fast, 0, 0),
			want:     Pass,
			reason:   "canary 5xx 0.3% (1/300) vs stable 0.2% (3/1500): within +1.0 pt; canary slow (>220ms) 1.0% (3/300) vs stable 0.0% (0/1500): within +5.0 pt",
			baseUsed: true, threshold: 220 * time.Millisecond,
		},
		{
			name:   "exactly +1.0 pt is within",
			canary: pool(200, 4, fast, 0, 0), baseline: pool(1000, 10, fast, 0, 0), // 2.0% vs 1.0%
			want: Pass, reason: "5xx 2.0% (4/200) vs stable 1.0% (10/1000): within +1.0 pt", contains: true, baseUsed: true, threshold: 220 * time.Millisecond,
		},
		{
			name:   "just over +1.0 pt",
			canary: pool(200, 5, fast, 0, 0), baseline: pool(1000, 10, fast, 0, 0), // 2.5% vs 1.0%
			want: Rollback, reason: "canary 5xx 2.5% (5/200) vs stable 1.0% (10/1000): > +1.0 pt", baseUsed: true, threshold: 220 * time.Millisecond,
		},
		{
			name:   "slow share over +5 pt",
			canary: pool(400, 0, fast, 30, 900), baseline: pool(2000, 0, fast, 20, 900), // 7.5% vs 1.0%
			want: Rollback, reason: "canary slow (>220ms) 7.5% (30/400) vs stable 1.0% (20/2000): > +5.0 pt", baseUsed: true, threshold: 220 * time.Millisecond,
		},
		{
			name:   "both checks fail",
			canary: pool(400, 40, fast, 60, 900), baseline: pool(2000, 0, fast, 0, 0),
			want: Rollback, reason: "canary 5xx 10.0% (40/400) vs stable 0.0% (0/2000): > +1.0 pt; canary slow (>220ms) 15.0% (60/400) vs stable 0.0% (0/2000): > +5.0 pt",
			baseUsed: true, threshold: 220 * time.Millisecond,
		},
		{
			name:   "too few canary requests waits, never passes",
			canary: pool(150, 0, fast, 0, 0), baseline: pool(1500, 3, fast, 0, 0),
			want: Wait, reason: "canary has 150 requests, need 200", baseUsed: true, threshold: 220 * time.Millisecond,
		},
		{
			name:   "no canary requests waits",
			canary: Stats{}, baseline: pool(1500, 3, fast, 0, 0),
			want: Wait, reason: "canary has 0 requests, need 200", baseUsed: true, threshold: 220 * time.Millisecond,
		},
		{
			name:   "early rollback: the minimum sample cannot save it",
			canary: pool(20, 5, fast, 0, 0), baseline: pool(1500, 3, fast, 0, 0), // 5/200 = 2.5% > 0.2+1
			want: Rollback, reason: "canary 5xx 5 in its first 20 requests: at least 2.5% (5/200) vs stable 0.2% (3/1500): > +1.0 pt",
			baseUsed: true, threshold: 220 * time.Millisecond,
		},
		{
			name:   "few early errors still wait",
			canary: pool(20, 2, fast, 0, 0), baseline: pool(1500, 3, fast, 0, 0), // 2/200 = 1.0% <= 1.2%
			want: Wait, reason: "canary has 20 requests, need 200", baseUsed: true, threshold: 220 * time.Millisecond,
		},
		{
			name:   "thin baseline: judged against perfect",
			canary: pool(300, 4, fast, 0, 0), baseline: pool(50, 0, fast, 0, 0), // 1.3% > 0 + 1
			want: Rollback, reason: "canary 5xx 1.3% (4/300) vs perfect baseline (stable has 50 < 200 requests): > +1.0 pt",
			baseUsed: false, threshold: time.Second,
		},
		{
			name:   "thin baseline, clean canary passes with the 1 s fallback",
			canary: pool(300, 0, fast, 10, 1500), baseline: Stats{},
			want: Pass, reason: "canary slow (>1s) 3.3% (10/300) vs perfect baseline (stable has 0 < 200 requests): within +5.0 pt", contains: true,
			baseUsed: false, threshold: time.Second,
		},
		{
			name:   "absolute slow threshold",
			canary: pool(300, 0, fast, 20, 400), baseline: pool(1000, 0, fast, 0, 0),
			th:   Thresholds{SlowAbsolute: 300 * time.Millisecond},
			want: Rollback, reason: "canary slow (>300ms) 6.7% (20/300) vs stable 0.0% (0/1000): > +5.0 pt", baseUsed: true, threshold: 300 * time.Millisecond,
		},
		{
			name:   "slow floor for a very fast baseline",
			canary: pool(300, 0, []int{1, 2, 3}, 0, 0), baseline: pool(1000, 0, []int{1, 2, 3}, 0, 0),
			want: Pass, reason: "slow (>50ms)", contains: true, baseUsed: true, threshold: 50 * time.Millisecond,
		},
		{
			name:   "custom thresholds",
			canary: pool(60, 3, fast, 0, 0), baseline: pool(100, 0, fast, 0, 0), // 5% vs 0%
			th:   Thresholds{MinRequests: 50, MinBaseline: 100, MaxErrorDelta: 10},
			want: Pass, reason: "canary 5xx 5.0% (3/60) vs stable 0.0% (0/100): within +10.0 pt", contains: true, baseUsed: true, threshold: 220 * time.Millisecond,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := Evaluate(tt.canary, tt.baseline, tt.th)
			if v.Decision != tt.want {
				t.Errorf("decision %s, want %s (%s)", v.Decision, tt.want, v.Reason)
			}
			if tt.contains {
				if !strings.Contains(v.Reason, tt.reason) {
					t.Errorf("reason %q\nlacks %q", v.Reason, tt.reason)
				}
			} else if v.Reason != tt.reason {
				t.Errorf("reason %q\nwant   %q", v.Reason, tt.reason)
			}
			if v.BaselineUsed != tt.baseUsed {
				t.Errorf("baselineUsed %v", v.BaselineUsed)
			}
			if v.SlowThreshold != tt.threshold {
				t.Errorf("slow threshold %v, want %v", v.SlowThreshold, tt.threshold)
			}
			if v.Canary.Requests != tt.canary.Requests || v.Canary.Errors != tt.canary.Errors {
				t.Errorf("verdict numbers %+v", v.Canary)
			}
			if !strings.HasPrefix(v.String(), string(tt.want)+": ") {
				t.Errorf("String() = %q", v.String())
			}
		})
	}
}

func TestThresholdDefaults(t *testing.T) {
	d := Thresholds{}.WithDefaults()
	if d != DefaultThresholds() {
		t.Errorf("zero thresholds → %+v, want %+v", d, DefaultThresholds())
	}
	if d.MaxErrorDelta != 1.0 || d.MaxSlowDelta != 5.0 || d.MinRequests != 200 {
		t.Errorf("defaults drifted from docs/canary.md: %+v", d)
	}
}
