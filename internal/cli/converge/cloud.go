package converge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"sort"
	"strings"

	"github.com/belay-sh/belay/config"
	"github.com/belay-sh/belay/hostspec"
	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/topology"
)

// PulumiRunner runs the pulumi CLI with args (in the working directory: the
// project's, where Pulumi.<stack>.yaml is) and returns its standard output.
type PulumiRunner func(ctx context.Context, args ...string) ([]byte, error)

// runPulumi is the production PulumiRunner.
func runPulumi(ctx context.Context, args ...string) ([]byte, error) {
	out, err := exec.CommandContext(ctx, "pulumi", args...).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && len(ee.Stderr) > 0 {
			return nil, fmt.Errorf("pulumi %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(ee.Stderr)))
		}
		return nil, fmt.Errorf("pulumi %s: %w", strings.Join(args, " "), err)
	}
	return out, nil
}

// loadCloudSource is the desired state of a Pulumi stack: its config as the
// program sees it (`pulumi config --show-secrets --json`: the seed and the
// host API tokens are secrets the hosts' files carry), and the addresses the
// last `pulumi up` exported (`pulumi stack output --json`).
func loadCloudSource(ctx context.Context, o *Options, stack string) (*Source, error) {
	if o.StackFile != "" || o.Apps != 0 {
		return nil, fmt.Errorf("--stack-file and --apps describe the lab; stack %s's config is its Pulumi.<stack>.yaml (edit it, or pulumi config set)", stack)
	}
	inv, err := o.Inventory(o.InventoryRef)
	if err != nil {
		return nil, err
	}
	cfgJSON, err := o.Pulumi(ctx, "config", "--show-secrets", "--json", "--stack", stack)
	if err != nil {
		return nil, err
	}
	outJSON, err := o.Pulumi(ctx, "stack", "output", "--json", "--stack", stack)
	if err != nil {
		return nil, err
	}
	return CloudSource(stack, inv, cfgJSON, outJSON)
}

// CloudSource builds a cloud stack's Source from `pulumi config
// --show-secrets --json` and `pulumi stack output --json`: every host's Spec
// from exactly the addresses its user data was rendered from
// (hostspec.CloudSpecs), so for an unchanged config converge renders the
// bytes first boot did.
func CloudSource(stack string, inv *inventory.Inventory, configJSON, outputsJSON []byte) (*Source, error) {
	// The program sees the stack's short name (ctx.Stack()); --stack may be org/[project/]stack.
	short := stack[strings.LastIndexByte(stack, '/')+1:]
	cfg, err := ParsePulumiConfig(configJSON)
	if err != nil {
		return nil, fmt.Errorf("stack %s: %w", stack, err)
	}
	for _, s := range []config.Provider{cfg.Sites.Primary.Provider, cfg.Sites.Standby.Provider} {
		if s == config.Lab {
			return nil, fmt.Errorf("stack %s: %s: provider lab is the local lab, converge it with --inventory lab", stack, config.KeySites)
		}
	}
	if inv.Stack != short {
		return nil, fmt.Errorf("stack %s: the inventory output is stack %q", stack, inv.Stack)
	}
	topo, err := topology.Plan(cfg)
	if err != nil {
		return nil, fmt.Errorf("stack %s: %w", stack, err)
	}
	addrs, err := hostspec.ParseAddresses(outputsJSON, short)
	if err != nil {
		return nil, fmt.Errorf("stack %s: %w", stack, err)
	}
	specs, err := hostspec.CloudSpecs(cfg, topo, short, addrs)
	if err != nil {
		return nil, fmt.Errorf("stack %s: %w (a host the config adds is created by pulumi up first)", stack, err)
	}
	order := make([]string, 0, len(topo.Hosts))
	for _, h := range topo.Hosts {
		order = append(order, h.Name)
	}
	return &Source{Stack: short, Seed: cfg.HostKeySeed, Specs: specs, Order: order, Inv: inv}, nil
}

// ParsePulumiConfig reads `pulumi config --show-secrets --json` into the
// config the Pulumi program gets (config.Parse with the same values and
// secret keys), refusing a secret shown without its value (no --show-secrets,
// or a secrets provider that could not decrypt it).
func ParsePulumiConfig(b []byte) (*config.Config, error) {
	var doc map[string]struct {
		Value  *string `json:"value"`
		Secret bool    `json:"secret"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("pulumi config --json: expected an object of {value, secret}: %w", err)
	}
	values := map[string]string{}
	var secret, hidden []string
	for k, v := range doc {
		if !strings.HasPrefix(k, config.Namespace+":") {
			continue // the providers' own keys (hcloud:token, ...)
		}
		if v.Secret {
			secret = append(secret, k)
		}
		if v.Value == nil {
			if v.Secret {
				hidden = append(hidden, k)
			}
			continue
		}
		values[k] = *v.Value
	}
	if len(hidden) > 0 {
		sort.Strings(hidden)
		return nil, fmt.Errorf("pulumi config --json: %s: secret shown without its value, expected --show-secrets to decrypt it", strings.Join(hidden, ", "))
	}
	return config.Parse(values, config.WithSecretKeys(secret))
}
