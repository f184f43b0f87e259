package sync

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/belay-sh/belay/internal/nginxctl"
)

// settle waits until every worker that ran before a reload (before) has
// stopped being a current worker: new requests use the new upstreams. Old
// workers may still finish requests; the routes themselves are in shared
// memory, the same for old and new workers, so no drain is needed.
func (d *Daemon) settle(ctx context.Context, before map[int]bool) error {
	stale, _, err := nginxctl.WaitReloaded(ctx, nginxctl.Wait{
		PIDFile: d.o.PIDFile, Procs: d.o.Procs, Before: before,
		Timeout: d.o.DrainTimeout, Poll: 5 * time.Millisecond,
	})
	if errors.Is(err, nginxctl.ErrTimeout) {
		return fmt.Errorf("nginx still has %d workers of the old configuration after %s", stale, d.o.DrainTimeout)
	}
	return err
}
