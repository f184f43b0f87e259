package converge

import (
	"context"
	"fmt"
	"strings"

	"github.com/belay-sh/belay/internal/cli"
	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/lab"
	"github.com/belay-sh/belay/roles"
)

// Source is the desired state converge renders from and where it runs.
type Source struct {
	// Stack names the stack (the bundles carry it).
	Stack string
	// Seed is belay:hostKeySeed: it derives the converge signing key.
	Seed string
	// Specs are every host's roles.Spec, built as the Pulumi program / lab up build them.
	Specs map[string]*roles.Spec
	// Order is the hosts in the address plan's order.
	Order []string
	// Inv is the running stack's inventory (addresses, pinned host keys).
	Inv *inventory.Inventory
}

// LoadSource picks what to converge from the target. It is the one place
// that decides, so a default target (a belay.yaml) hooks in here.
//
//   - pulumi:<stack> (--stack): the stack's config (`pulumi config
//     --show-secrets --json`) and the addresses its last `pulumi up` exported
//     (loadCloudSource).
//   - the lab: the stack file `belay lab up --stack` took (edited since), the
//     lab's own seed, and the lab's inventory.
//
// Any other inventory (a file or stdin holding a cloud stack's inventory)
// is refused: it carries neither the config nor the provider-assigned
// addresses the hosts' files name.
func LoadSource(ctx context.Context, o *Options) (*Source, error) {
	if stack, ok := strings.CutPrefix(o.InventoryRef, "pulumi:"); ok {
		return loadCloudSource(ctx, o, stack)
	}
	inv, err := o.Inventory(o.InventoryRef)
	if err != nil {
		return nil, err
	}
	for _, s := range inv.Sites {
		if s.Provider != "lab" {
			return nil, fmt.Errorf("--inventory %s: stack %s runs on %s: converge a cloud stack with --stack %s (it reads the stack's config and its addresses output through pulumi)", refOrDefault(o.InventoryRef), inv.Stack, s.Provider, inv.Stack)
		}
	}
	specs, err := lab.HostSpecs(o.LabPaths, lab.StackInput{File: o.StackFile, Apps: o.Apps})
	if err != nil {
		return nil, err
	}
	if inv.Stack != lab.StackName {
		return nil, fmt.Errorf("inventory is stack %q, the lab's is %q", inv.Stack, lab.StackName)
	}
	return &Source{Stack: lab.StackName, Seed: specs.Seed, Specs: specs.Hosts, Order: specs.Order, Inv: inv}, nil
}

func refOrDefault(ref string) string {
	if ref == "" {
		return cli.DefaultInventory
	}
	return ref
}
