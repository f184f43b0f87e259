package retry

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

var errTransient = errors.New("transient")
var errFatal = errors.New("fatal")

func classify(err error) Verdict {
	if errors.Is(err, errTransient) {
		return Verdict{Retry: true, Reason: "transient"}
	}
	return Verdict{}
}

func TestBackoffCapsAndJitters(t *testing.T) {
	p := Policy{Base: 100 * time.Millisecond, Max: time.Second, Jitter: func() float64 { return 0.999999 }}
	tests := []struct {
		attempt int
		want    time.Duration
	}{
		{0, 100 * time.Millisecond},
		{1, 200 * time.Millisecond},
		{3, 800 * time.Millisecond},
		{4, time.Second},
		{40, time.Second},
	}
	for _, tt := range tests {
		got := p.Backoff(tt.attempt)
		if got < tt.want-time.Millisecond || got > tt.want {
			t.Errorf("Backoff(%d) = %s, want ≈%s", tt.attempt, got, tt.want)
		}
	}
	p.Jitter = func() float64 { return 0 }
	if got := p.Backoff(5); got != 0 {
		t.Errorf("zero jitter: Backoff = %s, want 0", got)
	}
}

func TestDo(t *testing.T) {
	fast := Policy{Base: time.Millisecond, Max: 2 * time.Millisecond}
	tests := []struct {
		name      string
		errs      []error // returned by successive calls; nil after the list ends
		wantCalls int
		wantErr   error
	}{
		{"success first try", nil, 1, nil},
		{"transient then success", []error{errTransient, errTransient}, 3, nil},
		{"permanent stops at once", []error{errFatal}, 1, errFatal},
		{"transient then permanent", []error{errTransient, errFatal}, 2, errFatal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			var logged []string
			p := fast
			p.Logf = func(f string, a ...any) { logged = append(logged, f) }
			err := Do(context.Background(), p, "op", classify, func(context.Context) error {
				calls++
				if calls <= len(tt.errs) {
					return tt.errs[calls-1]
				}
				return nil
			})
			if calls != tt.wantCalls {
				t.Errorf("calls = %d, want %d", calls, tt.wantCalls)
			}
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			}
			retries := 0
			for _, e := range tt.errs {
				if errors.Is(e, errTransient) {
					retries++
				}
			}
			if len(logged) != retries {
				t.Errorf("logged %d retry lines, want %d", len(logged), retries)
			}
		})
	}
}

func TestDoStopsBeforeDeadline(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	calls := 0
	err := Do(ctx, Policy{Base: time.Second, Max: time.Second, Jitter: func() float64 { return 0.5 }}, "op", classify,
		func(context.Context) error { calls++; return errTransient })
	if calls != 1 || err == nil || !strings.Contains(err.Error(), "would pass the deadline") || !errors.Is(err, errTransient) {
		t.Fatalf("calls=%d err=%v; want one call and a deadline error wrapping the last error", calls, err)
	}
}

func TestDoHonoursRetryAfter(t *testing.T) {
	calls := 0
	start := time.Now()
	err := Do(context.Background(), Policy{Base: time.Microsecond, Max: time.Microsecond}, "op",
		func(error) Verdict { return Verdict{Retry: true, After: 30 * time.Millisecond} },
		func(context.Context) error {
			calls++
			if calls == 1 {
				return errTransient
			}
			return nil
		})
	if err != nil || calls != 2 {
		t.Fatalf("err=%v calls=%d", err, calls)
	}
	if waited := time.Since(start); waited < 30*time.Millisecond {
		t.Errorf("waited %s, want at least the Retry-After of 30ms", waited)
	}
}

func TestPoll(t *testing.T) {
	t.Run("done after three checks", func(t *testing.T) {
		checks := 0
		n, err := Poll(context.Background(), time.Millisecond, func(context.Context) (bool, error) {
			checks++
			return checks == 3, nil
		})
		if err != nil || n != 3 {
			t.Fatalf("n=%d err=%v, want 3 checks and no error", n, err)
		}
	})
	t.Run("check error ends the wait", func(t *testing.T) {
		n, err := Poll(context.Background(), time.Millisecond, func(context.Context) (bool, error) {
			return false, ErrActionFailed
		})
		if n != 1 || !errors.Is(err, ErrActionFailed) {
			t.Fatalf("n=%d err=%v", n, err)
		}
	})
	t.Run("deadline ends the wait", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		_, err := Poll(ctx, 5*time.Millisecond, func(context.Context) (bool, error) { return false, nil })
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err=%v, want deadline exceeded", err)
		}
	})
}
