package hostroute

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/belay-sh/belay/internal/nginxctl"
)

// waitRetired waits until nginx took the new configuration: none of the
// workers that ran before the reload is still a plain worker (each exited or
// is shutting down) and a new worker runs. `systemctl reload` only sends the
// signal, so without this a drain could start before the old generation knows
// it is old.
func waitRetired(ctx context.Context, o Options, before map[int]bool) error {
	_, _, err := nginxctl.WaitReloaded(ctx, nginxctl.Wait{
		PIDFile: o.PIDFile, Procs: o.Procs, Before: before, Timeout: o.ReloadTimeout, Poll: o.Poll,
	})
	if errors.Is(err, nginxctl.ErrTimeout) {
		return fmt.Errorf("nginx did not take the new configuration within %s (old workers still current; see journalctl -u nginx)", o.ReloadTimeout)
	}
	return err
}

// WaitDrained waits until no nginx worker of an older generation is left (each
// exits once its requests in flight are answered), at most timeout. It returns
// how many were still serving when the timeout passed; that is not an error:
// a request longer than the drain timeout is cut when its backend stops.
func WaitDrained(ctx context.Context, o Options, timeout time.Duration) (int, error) {
	o = o.withDefaults()
	deadline := time.Now().Add(timeout)
	for {
		ps, err := o.Procs()
		if err != nil {
			return 0, err
		}
		left := 0
		for _, p := range ps {
			if p.Title == nginxctl.ShuttingTitle {
				left++
			}
		}
		if left == 0 || !time.Now().Before(deadline) {
			return left, nil
		}
		select {
		case <-ctx.Done():
			return left, ctx.Err()
		case <-time.After(o.Poll):
		}
	}
}
