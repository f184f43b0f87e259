package sync

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/belay-sh/belay/internal/nginxctl"
)

// settle waits until nginx serves only with the new map: every worker that
// ran before the reload (before) has stopped being a current worker, and no
// worker of an older generation is left with a request in flight. Only then
// may a move rely on a frozen shop getting no request routed by the old map.
func (d *Daemon) settle(ctx context.Context, before map[int]bool) error {
	stale, shutting, err := nginxctl.WaitReloaded(ctx, nginxctl.Wait{
		PIDFile: d.o.PIDFile, Procs: d.o.Procs, Before: before, Drained: true,
		Timeout: d.o.DrainTimeout, Poll: 5 * time.Millisecond,
	})
	if errors.Is(err, nginxctl.ErrTimeout) {
		return fmt.Errorf("nginx still has %d workers of the old map and %d finishing requests after %s", stale, shutting, d.o.DrainTimeout)
	}
	return err
}
