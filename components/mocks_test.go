package components

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"golang.org/x/crypto/ssh"

	"github.com/belay-sh/belay/config"
	"github.com/belay-sh/belay/topology"
)

// registration is one RegisterResource call the mock monitor saw.
type registration struct {
	Type          string
	Name          string
	Custom        bool
	Parent        string
	ID            string
	Inputs        resource.PropertyMap
	Outputs       resource.PropertyMap
	IgnoreChanges []string
	DeleteFirst   bool
	Protect       bool
	Retain        bool
	// Deps are the URNs the resource was registered as depending on.
	Deps []string
}

// mocks is a resource monitor double that records every registration and
// answers like the providers do: numeric IDs (DO VPCs, firewalls and reserved
// IPs excepted, as at DigitalOcean), public and private addresses. Every value
// is derived from the resource's type and name, so two runs of the program get
// the same answers whatever order the SDK registers resources in.
type mocks struct {
	mu   sync.Mutex
	regs []registration
	// used detects two resources given the same ID or address.
	used map[string]string
	// private maps a DigitalOcean droplet's name to the VPC address the double assigns.
	private func(dropletName string) string
	// primaryIPs remembers Hetzner primary IPs by ID, for servers that use one.
	primaryIPs map[string]string
	err        error
}

func newMocks(private func(string) string) *mocks {
	return &mocks{used: map[string]string{}, private: private, primaryIPs: map[string]string{}}
}

func (m *mocks) hash(kind, key string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(kind + "\x00" + key))
	return h.Sum64()
}

// unique records v as taken by owner, failing the run on a collision.
func (m *mocks) unique(v, owner string) string {
	if prev, ok := m.used[v]; ok && prev != owner {
		m.err = fmt.Errorf("mock: %s and %s got the same value %s", prev, owner, v)
	}
	m.used[v] = owner
	return v
}

// numericID is a 10-digit ID derived from the resource.
func (m *mocks) numericID(typ, name string) string {
	return m.unique(fmt.Sprint(1_000_000_000+m.hash("id", typ+"/"+name)%8_999_999_999), typ+"/"+name)
}

// publicIP is an address in 11.0.0.0/8 derived from the resource.
func (m *mocks) publicIP(typ, name string) string {
	v := m.hash("ip", typ+"/"+name) % (1 << 24)
	return m.unique(fmt.Sprintf("11.%d.%d.%d", v>>16&255, v>>8&255, v&255), typ+"/"+name)
}

func str(pm resource.PropertyMap, k string) string {
	v, ok := pm[resource.PropertyKey(k)]
	if !ok {
		return ""
	}
	if v.IsSecret() {
		v = v.SecretValue().Element
	}
	if v.IsString() {
		return v.StringValue()
	}
	if v.IsNumber() {
		return fmt.Sprint(int64(v.NumberValue()))
	}
	return ""
}

func (m *mocks) NewResource(args pulumi.MockResourceArgs) (string, resource.PropertyMap, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := args.Inputs.Copy()
	id := ""
	set := func(k, v string) { out[resource.PropertyKey(k)] = resource.NewStringProperty(v) }
	if args.Custom {
		id = m.numericID(args.TypeToken, args.Name)
		switch args.TypeToken {
		case "digitalocean:index/vpc:Vpc", "digitalocean:index/firewall:Firewall":
			h := m.hash("uuid", args.Name)
			id = fmt.Sprintf("%08x-0000-4000-8000-%012x", uint32(h), h&0xffffffffffff)
		case "digitalocean:index/tag:Tag":
			id = str(args.Inputs, "name")
		case "digitalocean:index/droplet:Droplet":
			set("ipv4Address", m.publicIP(args.TypeToken, args.Name))
			priv := m.private(str(args.Inputs, "name"))
			set("ipv4AddressPrivate", m.unique(priv, args.Name+"/private"))
			set("status", "active")
		case "digitalocean:index/reservedIp:ReservedIp":
			ip := m.publicIP(args.TypeToken, args.Name)
			set("ipAddress", ip)
			id = ip // a DO reserved IP's ID is its address
		case "digitalocean:index/reservedIpAssignment:ReservedIpAssignment":
			id = str(args.Inputs, "ipAddress") + "-" + str(args.Inputs, "dropletId")
		case "hcloud:index/primaryIp:PrimaryIp":
			ip := m.publicIP(args.TypeToken, args.Name)
			set("ipAddress", ip)
			m.primaryIPs[id] = ip
		case "hcloud:index/floatingIp:FloatingIp":
			set("ipAddress", m.publicIP(args.TypeToken, args.Name))
		case "hcloud:index/server:Server":
			ip := m.publicIP(args.TypeToken, args.Name)
			if nets, ok := args.Inputs["publicNets"]; ok && nets.IsArray() && len(nets.ArrayValue()) > 0 {
				if v4 := str(nets.ArrayValue()[0].ObjectValue(), "ipv4"); v4 != "" {
					ip = m.primaryIPs[v4]
				}
			}
			set("ipv4Address", ip)
			set("status", "running")
		}
	}
	r := registration{Type: args.TypeToken, Name: args.Name, Custom: args.Custom, ID: id, Inputs: args.Inputs, Outputs: out}
	if rpc := args.RegisterRPC; rpc != nil {
		r.Parent = rpc.GetParent()
		r.IgnoreChanges = rpc.GetIgnoreChanges()
		r.DeleteFirst = rpc.GetDeleteBeforeReplace()
		r.Protect = rpc.GetProtect()
		r.Retain = rpc.GetRetainOnDelete()
		r.Deps = rpc.GetDependencies()
	}
	m.regs = append(m.regs, r)
	return id, out, nil
}

func (m *mocks) Call(args pulumi.MockCallArgs) (resource.PropertyMap, error) {
	return args.Args, nil
}

func (m *mocks) all() []registration {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]registration{}, m.regs...)
}

// byType returns the registrations of one type token.
func (m *mocks) byType(typ string) []registration {
	var out []registration
	for _, r := range m.all() {
		if r.Type == typ {
			out = append(out, r)
		}
	}
	return out
}

// --- test configuration -----------------------------------------------------

const testSeed = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// adminKey is a fixed ed25519 public key in authorized_keys format.
func adminKey() string {
	priv := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	pub, err := ssh.NewPublicKey(priv.Public())
	if err != nil {
		panic(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub))) + " admin@test"
}

// site is one provider's test region and sizes.
type testSite struct{ provider, region, appSize, dbSize, smallSize string }

var testSites = map[config.Provider]testSite{
	config.Hetzner:      {"hetzner", "fsn1", "cx23", "cx33", "cx23"},
	config.DigitalOcean: {"digitalocean", "fra1", "s-2vcpu-4gb", "g-2vcpu-8gb", "s-1vcpu-2gb"},
}

// testDoc is a valid stack configuration with n apps, primary at p and standby at s.
func testDoc(p, s config.Provider, n int) map[string]any {
	ps, ss := testSites[p], testSites[s]
	var apps []any
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("shop%d", i)
		apps = append(apps, map[string]any{
			"name": name, "size": ps.appSize, "standbySize": ss.smallSize, "port": 3000 + 2*i,
			"domains": []any{name + ".example.com", "www." + name + ".example.com"},
			"tls":     map[string]any{"email": "ops@example.com"},
		})
	}
	return map[string]any{
		"sites": map[string]any{
			"primary": map[string]any{"provider": ps.provider, "region": ps.region},
			"standby": map[string]any{"provider": ss.provider, "region": ss.region},
		},
		"admin":         map[string]any{"sshKeys": []any{adminKey()}, "sshCidrs": []any{"203.0.113.0/28", "198.51.100.7/32"}},
		"apps":          apps,
		"database":      map[string]any{"size": ps.dbSize, "standbySize": ss.dbSize, "synchronous": true},
		"backups":       map[string]any{"fullEvery": "weekly", "retentionDays": 14, "repoSize": ss.smallSize},
		"dns":           map[string]any{"provider": "digitalocean", "zone": "example.com", "ttl": 60},
		"network":       map[string]any{"primaryCidr": "10.10.0.0/16", "standbyCidr": "10.20.0.0/16"},
		"hostApiTokens": map[string]any{"digitalocean": "dop_v1_testtoken", "hetzner": "hcloudtesttoken"},
		"agent":         map[string]any{"url": "https://github.com/belay-sh/belay/releases/download/v0.1.0/belay-linux-amd64", "sha256": "3f1c1a5e6b2d4c8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f"},
		"hostKeySeed":   testSeed,
	}
}

// values renders a config document as Pulumi passes it to the program.
func values(doc map[string]any) map[string]string {
	out := map[string]string{}
	for k, v := range doc {
		if s, ok := v.(string); ok {
			out["belay:"+k] = s
			continue
		}
		b, err := json.Marshal(v)
		if err != nil {
			panic(err)
		}
		out["belay:"+k] = string(b)
	}
	return out
}

// doPrivate is the DigitalOcean double's VPC address for a droplet: the
// host's planned address moved to another /24 of the /16, so a test can tell
// an assigned address from a planned one.
func doPrivate(plan map[string]netip.Addr) func(string) string {
	return func(dropletName string) string {
		host := strings.TrimPrefix(dropletName, "test-")
		a, ok := plan[host]
		if !ok {
			return "10.99.99.99"
		}
		b := a.As4()
		b[2] += 7
		return netip.AddrFrom4(b).String()
	}
}

// result is what one evaluation of the program produced.
type result struct {
	m         *mocks
	b         *Belay
	cfg       *config.Config
	inventory string
	err       error
}

// plannedAddresses are the planned private addresses of a valid config's hosts
// (none for an invalid one).
func plannedAddresses(vals map[string]string) map[string]netip.Addr {
	plan := map[string]netip.Addr{}
	if cfg, err := config.Parse(vals); err == nil {
		if t, err := topology.Plan(cfg); err == nil {
			for _, h := range t.Hosts {
				plan[h.Name] = h.PrivateAddress
			}
		}
	}
	return plan
}

// runProgram evaluates the Pulumi program (as main.go does, from config
// values) under the mocks.
func runProgram(tb testing.TB, vals map[string]string) result {
	tb.Helper()
	return runProgramWith(tb, vals, plannedAddresses(vals))
}

// runProgramWith is runProgram with the planned addresses computed by the caller.
func runProgramWith(tb testing.TB, vals map[string]string, plan map[string]netip.Addr) result {
	tb.Helper()
	var res result
	res.m = newMocks(doPrivate(plan))
	var wg sync.WaitGroup
	res.err = pulumi.RunErr(func(ctx *pulumi.Context) error {
		cfg, err := config.Parse(vals)
		if err != nil {
			return err
		}
		res.cfg = cfg
		b, err := NewBelay(ctx, ctx.Stack(), cfg)
		if err != nil {
			return err
		}
		res.b = b
		wg.Add(1)
		b.InventoryJSON.ApplyT(func(s string) string {
			res.inventory = s
			wg.Done()
			return s
		})
		return nil
	}, pulumi.WithMocks("belay", "test", res.m))
	if res.err == nil {
		wg.Wait()
	}
	if res.m.err != nil {
		tb.Fatal(res.m.err)
	}
	return res
}
