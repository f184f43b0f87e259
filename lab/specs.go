package lab

import (
	"fmt"
	"os"
	"strings"

	"github.com/belay-sh/belay/hostspec"
	"github.com/belay-sh/belay/roles"
	"github.com/belay-sh/belay/topology"
)

// Specs is what `belay lab up` renders each machine's user data from, for
// the lab's existing seed and admin key: `belay converge` renders the same
// roles.Spec for a running lab after the stack file changed.
type Specs struct {
	Seed  string
	Hosts map[string]*roles.Spec
	// Order is the hosts in the address plan's order.
	Order []string
}

// HostSpecs loads in (the stack file and --apps lab up took, possibly
// edited since) with the lab's seed and builds every host's Spec exactly as
// Up does. It never creates a seed or key: the lab must exist.
func HostSpecs(p Paths, in StackInput) (*Specs, error) {
	b, err := os.ReadFile(p.seed())
	if err != nil {
		return nil, fmt.Errorf("lab seed (run belay lab up first): %w", err)
	}
	seed := strings.TrimSpace(string(b))
	pub, err := os.ReadFile(p.adminKey() + ".pub")
	if err != nil {
		return nil, fmt.Errorf("lab admin key (run belay lab up first): %w", err)
	}
	cfg, err := LoadStack(in, seed, strings.TrimSpace(string(pub)))
	if err != nil {
		return nil, err
	}
	topo, err := topology.Plan(cfg)
	if err != nil {
		return nil, err
	}
	env, err := hostspec.DefaultEnv(cfg, topo, true)
	if err != nil {
		return nil, err
	}
	specs, err := hostspec.Build(cfg, topo, StackName, env)
	if err != nil {
		return nil, err
	}
	out := &Specs{Seed: seed, Hosts: specs}
	for _, h := range topo.Hosts {
		out.Order = append(out.Order, h.Name)
	}
	return out, nil
}
