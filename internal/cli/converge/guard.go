package converge

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"slices"

	"github.com/belay-sh/belay/celldb"
	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/remote"
)

// StatusRefused is a dedicated cell's server converge leaves alone: its
// new DATABASE_URL would name a pair that lacks the cell's data (celldb.Guard).
const StatusRefused = "refused"

// GuardFunc decides which dedicated cells' servers may be converged.
type GuardFunc func(ctx context.Context, r remote.Runner, inv *inventory.Inventory, hosts []string) []celldb.Refusal

func defaultGuard(ctx context.Context, r remote.Runner, inv *inventory.Inventory, hosts []string) []celldb.Refusal {
	return celldb.Guard(ctx, r, inv, hosts)
}

// runGuarded runs the jobs of hosts outside dedicated cells first, then
// asks the guard about the dedicated cells' servers (the data nodes'
// sudoers, which the guard's reads need, are current by then) and runs the
// ones it allows; the others are reported refused, naming the cell and the
// command to run.
func runGuarded(ctx context.Context, o *Options, r Runner, inv *inventory.Inventory, key ed25519.PrivateKey, serial uint64, jobs []job) []HostReport {
	var names []string
	for _, j := range jobs {
		names = append(names, j.name)
	}
	guarded := celldb.GuardedHosts(inv, names)
	if len(guarded) == 0 {
		return runJobs(ctx, o, r, key, serial, jobs)
	}
	var first, later []job
	for _, j := range jobs {
		if slices.Contains(guarded, j.name) {
			later = append(later, j)
		} else {
			first = append(first, j)
		}
	}
	out := runJobs(ctx, o, r, key, serial, first)
	for _, h := range out {
		if h.Status == StatusFailed || h.Status == StatusNotStarted {
			for _, j := range later {
				out = append(out, HostReport{Host: j.name, Status: StatusNotStarted})
			}
			return out
		}
	}
	guard := o.Guard
	if guard == nil {
		guard = defaultGuard
	}
	refused := map[string]string{}
	for _, rf := range guard(ctx, r, inv, guarded) {
		for _, h := range rf.Hosts {
			refused[h] = rf.Reason
		}
	}
	var allowed []job
	for _, j := range later {
		if reason, ok := refused[j.name]; ok {
			fmt.Fprintf(o.IO.ErrOut, "[%s] %s: %s\n", j.name, StatusRefused, reason)
			out = append(out, HostReport{Host: j.name, Status: StatusRefused, Error: reason})
		} else {
			allowed = append(allowed, j)
		}
	}
	return append(out, runJobs(ctx, o, r, key, serial, allowed)...)
}
