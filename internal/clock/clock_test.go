package clock

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestNow(t *testing.T) {
	fixed := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if got := Now(func() time.Time { return fixed }); !got.Equal(fixed) {
		t.Fatalf("Now(fixed) = %v", got)
	}
	before := time.Now()
	if got := Now(nil); got.Before(before) || got.After(time.Now()) {
		t.Fatalf("Now(nil) = %v, not the real clock", got)
	}
}

func TestSleep(t *testing.T) {
	var slept time.Duration
	fake := func(_ context.Context, d time.Duration) error { slept = d; return nil }
	if err := Sleep(context.Background(), fake, time.Hour); err != nil || slept != time.Hour {
		t.Fatalf("fake sleep: %v, slept %v", err, slept)
	}
	start := time.Now()
	if err := Sleep(context.Background(), nil, 20*time.Millisecond); err != nil || time.Since(start) < 20*time.Millisecond {
		t.Fatalf("real sleep: %v after %v", err, time.Since(start))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start = time.Now()
	if err := Sleep(ctx, nil, time.Hour); !errors.Is(err, context.Canceled) || time.Since(start) > time.Second {
		t.Fatalf("cancelled sleep: %v after %v", err, time.Since(start))
	}
}
