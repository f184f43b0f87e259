package converge

import (
	"context"
	"fmt"
	"io"

	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/remote"
	"github.com/belay-sh/belay/roles"
)

// What another command needs to converge some hosts with converge's own
// code (belay db copy's switch).

// RunPulumi runs the pulumi CLI (a cloud stack's config and outputs).
var RunPulumi PulumiRunner = runPulumi

// NoLease is a Hold for a caller that holds the leases it needs already.
func NoLease(ctx context.Context, _ remote.Runner, _ *inventory.Inventory, _ io.Writer) (context.Context, func(), error) {
	return ctx, func() {}, nil
}

// OnlyHosts narrows a converge source to hosts.
func OnlyHosts(src *Source, hosts ...string) (*Source, error) {
	inv := *src.Inv
	inv.Hosts = nil
	out := *src
	out.Inv = &inv
	out.Specs = map[string]*roles.Spec{}
	out.Order = nil
	for _, host := range hosts {
		spec, h := src.Specs[host], src.Inv.Host(host)
		if spec == nil || h == nil {
			return nil, fmt.Errorf("converge: %s is not in both the stack config and the inventory", host)
		}
		inv.Hosts = append(inv.Hosts, *h)
		out.Specs[host] = spec
		out.Order = append(out.Order, host)
	}
	return &out, nil
}
