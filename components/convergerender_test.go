package components

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/belay-sh/belay/config"
	cliconverge "github.com/belay-sh/belay/internal/cli/converge"
	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/roles"
)

// pulumiConfigJSON is vals as `pulumi config --show-secrets --json` prints
// them: {value, secret} per key, secret-only keys marked secret.
func pulumiConfigJSON(t *testing.T, vals map[string]string) []byte {
	t.Helper()
	type entry struct {
		Value  string `json:"value"`
		Secret bool   `json:"secret"`
	}
	doc := map[string]entry{"hcloud:token": {Value: "provider-token", Secret: true}}
	for k, v := range vals {
		doc[k] = entry{Value: v, Secret: k == config.KeyHostKeySeed || k == config.KeyHostAPITokens}
	}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestConvergeRendersFirstBootUserData: what `belay converge --stack` renders
// from the stack's config and its exported outputs is, byte for byte, the
// user data the Pulumi program gave every server (both provider directions;
// the DigitalOcean double assigns private addresses unlike the plan's, and
// an app with cells adds the router groups). A config edit is then the only
// thing that makes converge change a file.
func TestConvergeRendersFirstBootUserData(t *testing.T) {
	for _, d := range directions {
		for _, tc := range []struct {
			name string
			doc  map[string]any
		}{
			{"2 apps", testDoc(d.primary, d.standby, 2)},
			{"cells", cellsDoc(d.primary, d.standby, 2, 2)},
		} {
			t.Run(d.name+"/"+tc.name, func(t *testing.T) {
				vals := values(tc.doc)
				res, outputs := runProgramOutputs(t, vals)
				inv, err := inventory.Parse([]byte(res.inventory))
				if err != nil {
					t.Fatal(err)
				}
				src, err := cliconverge.CloudSource("org/test", inv, pulumiConfigJSON(t, vals), outputs)
				if err != nil {
					t.Fatal(err)
				}
				srv := servers(t, res.m)
				if len(srv) != len(src.Order) || len(src.Order) == 0 {
					t.Fatalf("%d servers registered, converge has %d hosts", len(srv), len(src.Order))
				}
				for _, h := range src.Order {
					r, ok := srv[h]
					if !ok {
						t.Fatalf("%s: no server registered", h)
					}
					want := str(r.Inputs, "userData")
					if want == "" {
						t.Fatalf("%s: no user data registered", h)
					}
					got, err := roles.Render(src.Specs[h])
					if err != nil {
						t.Fatalf("%s: %v", h, err)
					}
					if string(got) != want {
						t.Errorf("%s: converge renders %d bytes, first boot had %d: they differ at byte %d", h, len(got), len(want), firstDiff(string(got), want))
					}
				}
			})
		}
	}
}

// TestConvergeCloudSourceRefusals: outputs that cannot give the first-boot
// addresses are refused, naming what is missing.
func TestConvergeCloudSourceRefusals(t *testing.T) {
	vals := values(testDoc(config.Hetzner, config.DigitalOcean, 1))
	res, outputs := runProgramOutputs(t, vals)
	inv, err := inventory.Parse([]byte(res.inventory))
	if err != nil {
		t.Fatal(err)
	}
	var all map[string]map[string]any
	if err := json.Unmarshal(outputs, &all); err != nil {
		t.Fatal(err)
	}
	delete(all["addresses"]["vips"].(map[string]any), "shop0")
	noVIP, _ := json.Marshal(all)
	cases := []struct {
		name, stack string
		cfg, outs   []byte
		want        string
	}{
		{"no addresses output", "test", pulumiConfigJSON(t, vals), []byte(`{"inventory":{}}`), `no "addresses" output`},
		{"other stack", "prod", pulumiConfigJSON(t, vals), outputs, `inventory output is stack "test"`},
		{"a VIP missing", "test", pulumiConfigJSON(t, vals), noVIP, "no address for vip/shop0"},
		{"secret not shown", "test", []byte(`{"belay:hostKeySeed":{"secret":true}}`), outputs, "belay:hostKeySeed: secret shown without its value"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := cliconverge.CloudSource(c.stack, inv, c.cfg, c.outs)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("err = %v, want %q", err, c.want)
			}
		})
	}
}

func firstDiff(a, b string) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// runProgramOutputs runs the program under the mocks and returns its result
// and the stack's outputs as `pulumi stack output --json` prints them.
func runProgramOutputs(t *testing.T, vals map[string]string) (result, []byte) {
	t.Helper()
	var res result
	res.m = newMocks(doPrivate(plannedAddresses(vals)))
	var wg sync.WaitGroup
	var addrs map[string]interface{}
	res.err = pulumi.RunErr(func(ctx *pulumi.Context) error {
		cfg, err := config.Parse(vals)
		if err != nil {
			return err
		}
		b, err := NewBelay(ctx, ctx.Stack(), cfg)
		if err != nil {
			return err
		}
		wg.Add(2)
		b.InventoryJSON.ApplyT(func(s string) string { res.inventory = s; wg.Done(); return s })
		b.Addresses.ApplyT(func(m map[string]interface{}) map[string]interface{} { addrs = m; wg.Done(); return m })
		return nil
	}, pulumi.WithMocks("belay", "test", res.m))
	if res.err != nil {
		t.Fatal(res.err)
	}
	wg.Wait()
	if res.m.err != nil {
		t.Fatal(res.m.err)
	}
	var inv map[string]interface{}
	if err := json.Unmarshal([]byte(res.inventory), &inv); err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(map[string]interface{}{"inventory": inv, "addresses": addrs})
	if err != nil {
		t.Fatal(err)
	}
	return res, out
}
