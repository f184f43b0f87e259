package analysis

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// TestFirstError: each pool remembers its earliest 5xx, across sources read
// in any order, for the "first bad response to rollback" report.
func TestFirstError(t *testing.T) {
	lb1 := logLine(4, 200, 5, PoolCanary) + logLine(7, 503, 5, PoolCanary) + logLine(9, 500, 5, PoolCanary)
	lb2 := logLine(6, 502, 5, PoolCanary) + logLine(1, 500, 5, PoolStable) + logLine(3, 404, 5, PoolCanary)
	rep, err := Analyze(Window{}, strings.NewReader(lb1), strings.NewReader(lb2))
	if err != nil {
		t.Fatal(err)
	}
	if want := t0.Add(6 * time.Second); !rep.Canary.FirstError.Equal(want) {
		t.Errorf("canary first error %s, want %s", rep.Canary.FirstError, want)
	}
	if want := t0.Add(time.Second); !rep.Stable.FirstError.Equal(want) {
		t.Errorf("stable first error %s, want %s", rep.Stable.FirstError, want)
	}
	// Merging per-source reports gives the same answer.
	var a, b Report
	a.Read(Window{}, strings.NewReader(lb2))
	b.Read(Window{}, strings.NewReader(lb1))
	a.Merge(&b)
	if !a.Canary.FirstError.Equal(rep.Canary.FirstError) {
		t.Errorf("merged first error %s, want %s", a.Canary.FirstError, rep.Canary.FirstError)
	}
	var none Report
	none.Read(Window{}, strings.NewReader(logLine(1, 200, 5, PoolCanary)))
	if !none.Canary.FirstError.IsZero() {
		t.Errorf("first error %s without any 5xx", none.Canary.FirstError)
	}
}

// TestVerdictNamesFailedChecks: a rollback says which checks failed, early or
// with the full sample; a pass or wait names none.
func TestVerdictNamesFailedChecks(t *testing.T) {
	stats := func(n, errs int64, ms int) Stats {
		var s Stats
		for i := int64(0); i < n; i++ {
			st := 200
			if i < errs {
				st = 500
			}
			s.Add(st, time.Duration(ms)*time.Millisecond)
		}
		return s
	}
	base := stats(1000, 0, 10)
	tests := []struct {
		name   string
		canary Stats
		want   []string
	}{
		{"errors early", stats(20, 10, 10), []string{CheckErrors}},
		{"errors and slow", stats(300, 30, 500), []string{CheckErrors, CheckSlow}},
		{"slow only", stats(300, 0, 500), []string{CheckSlow}},
		{"pass", stats(300, 0, 10), nil},
		{"wait", stats(20, 0, 10), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := Evaluate(tc.canary, base, Thresholds{})
			if !slices.Equal(v.Failed, tc.want) {
				t.Errorf("failed %v, want %v (%s)", v.Failed, tc.want, v)
			}
		})
	}
}
