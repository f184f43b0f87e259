package converge

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/belay-sh/belay/inventory"
)

// TestLoadSourceCloudStack: a pulumi:<stack> target reads the stack's config
// with its secrets and every output through the injected runner (never a
// live engine), refuses the lab-only flags, and passes runner errors on.
func TestLoadSourceCloudStack(t *testing.T) {
	var calls []string
	inv := &inventory.Inventory{Stack: "prod"}
	o := &Options{InventoryRef: "pulumi:acme/prod",
		Inventory: func(ref string) (*inventory.Inventory, error) {
			if ref != "pulumi:acme/prod" {
				t.Errorf("inventory ref %q", ref)
			}
			return inv, nil
		},
		Pulumi: func(_ context.Context, args ...string) ([]byte, error) {
			calls = append(calls, strings.Join(args, " "))
			if args[0] == "stack" {
				return nil, errors.New("pulumi: no stack named acme/prod")
			}
			return []byte(`{"belay:hostKeySeed":{"value":"x","secret":true}}`), nil
		},
	}
	_, err := LoadSource(context.Background(), o)
	want := []string{"config --show-secrets --json --stack acme/prod", "stack output --json --stack acme/prod"}
	if strings.Join(calls, "|") != strings.Join(want, "|") {
		t.Errorf("pulumi calls %q, want %q", calls, want)
	}
	if err == nil || !strings.Contains(err.Error(), "no stack named acme/prod") {
		t.Errorf("err = %v, want the runner's error", err)
	}

	for _, set := range []func(*Options){
		func(o *Options) { o.StackFile = "stacks/Pulumi.lab.yaml" },
		func(o *Options) { o.Apps = 3 },
	} {
		calls = nil
		lo := *o
		set(&lo)
		if _, err := LoadSource(context.Background(), &lo); err == nil || !strings.Contains(err.Error(), "describe the lab") {
			t.Errorf("lab flag with a cloud stack: err = %v", err)
		}
		if len(calls) != 0 {
			t.Errorf("refused flags still ran pulumi: %q", calls)
		}
	}
}

// TestLoadSourceRefusesCloudInventoryFile: a cloud stack's inventory file has
// neither its config nor its addresses; converge says to use --stack.
func TestLoadSourceRefusesCloudInventoryFile(t *testing.T) {
	o := &Options{InventoryRef: "prod.json", Inventory: func(string) (*inventory.Inventory, error) {
		return &inventory.Inventory{Stack: "prod", Sites: map[inventory.SiteName]inventory.Site{inventory.Primary: {Provider: "hetzner"}}}, nil
	}}
	if _, err := LoadSource(context.Background(), o); err == nil || !strings.Contains(err.Error(), "--stack prod") {
		t.Errorf("err = %v, want a pointer to --stack", err)
	}
}
