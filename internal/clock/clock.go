// Package clock is the injectable time of belay's waiting loops (the deploy
// runner, the lease holder, the cloud retries): the real clock unless a test
// passes its own. One implementation, so a context-cancelled sleep behaves the
// same everywhere.
package clock

import (
	"context"
	"time"
)

// Now returns now() or, when now is nil, time.Now().
func Now(now func() time.Time) time.Time {
	if now != nil {
		return now()
	}
	return time.Now()
}

// Sleep waits d, or returns ctx.Err() as soon as ctx is done. A non-nil sleep
// replaces the real wait (tests).
func Sleep(ctx context.Context, sleep func(context.Context, time.Duration) error, d time.Duration) error {
	if sleep != nil {
		return sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
