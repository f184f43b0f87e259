package components

import (
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/belay-sh/belay/config"
	"github.com/belay-sh/belay/hostspec"
	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/roles"
	"github.com/belay-sh/belay/topology"
)

// User data is rendered per group of hosts that depend on the same addresses
// (hostspec.UserDataGroup): every address a host's user data names exists
// before the host is created. Which addresses a group needs, and how they
// become Specs, is hostspec's (CloudEnv, GroupSpecs), shared with `belay
// converge`, which reads the same addresses from the `addresses` output.

// addressBook collects the addresses of what has been created so far.
type addressBook struct {
	servers map[string]*Server
	static  map[string]*FloatingIP
	vips    map[string]*FloatingIP
}

func newAddressBook() *addressBook {
	return &addressBook{servers: map[string]*Server{}, static: map[string]*FloatingIP{}, vips: map[string]*FloatingIP{}}
}

// userDataPlan renders hosts' user data with hostspec and roles.
type userDataPlan struct {
	cfg   *config.Config
	topo  *topology.Topology
	stack string
	book  *addressBook
	// groups holds each group's rendered user data by host, computed on first use.
	groups [hostspec.NumUserDataGroups]*pulumi.StringMapOutput
}

// render builds group g's specs from the resolved addresses and renders its hosts.
func (p *userDataPlan) render(g hostspec.UserDataGroup, r hostspec.Resolved) (map[string]string, error) {
	specs, err := hostspec.GroupSpecs(p.cfg, p.topo, p.stack, g, r)
	if err != nil {
		return nil, err
	}
	hosts := hostspec.GroupHosts(g, p.topo)
	// Rendering is pure and dominates the program's run time (YAML), so the
	// hosts are rendered in parallel; results and the reported error do not
	// depend on the order they finish in.
	texts := make([]string, len(hosts))
	errs := make([]error, len(hosts))
	jobs := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				s, ok := specs[hosts[i]]
				if !ok {
					errs[i] = fmt.Errorf("hostspec built no spec for %s", hosts[i])
					continue
				}
				b, err := roles.Render(s)
				if err != nil {
					errs[i] = fmt.Errorf("%s: %w", hosts[i], err)
					continue
				}
				texts[i] = string(b)
			}
		}()
	}
	for i := range hosts {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	out := make(map[string]string, len(hosts))
	for i, h := range hosts {
		if errs[i] != nil {
			return nil, errs[i]
		}
		out[h] = texts[i]
	}
	return out, nil
}

// preflight renders every host with placeholder addresses (documentation
// ranges; planned private addresses) for what only exists after creation, so
// configuration errors stop the program before any resource is registered.
func (p *userDataPlan) preflight() (map[string]string, error) {
	r := hostspec.Resolved{}
	for i, h := range p.topo.Hosts {
		r["priv/"+h.Name] = h.PrivateAddress.String()
		r["pub/"+h.Name] = fmt.Sprintf("192.0.%d.%d", 2+i/250, 1+i%250)
	}
	for i, h := range hostspec.StaticHosts(p.topo) {
		r["static/"+h] = fmt.Sprintf("198.18.0.%d", 10+i)
	}
	for i, g := range hostspec.VRRPGroups(p.cfg, p.topo) {
		r["vip/"+g] = fmt.Sprintf("198.51.%d.%d", 100+i/250, 1+i%250)
	}
	out := map[string]string{}
	for g := hostspec.UDFirst; g < hostspec.NumUserDataGroups; g++ {
		if len(hostspec.GroupHosts(g, p.topo)) == 0 {
			continue
		}
		texts, err := p.render(g, r)
		if err != nil {
			return nil, err
		}
		for h, t := range texts {
			out[h] = t
		}
	}
	return out, nil
}

// checkUserDataSizes refuses, at preview time, user data a provider would
// reject at create time (half-way through an up). Preflight's placeholder
// addresses are at most a few bytes shorter than real ones, hence the margin.
func checkUserDataSizes(t *topology.Topology, texts map[string]string, cloudOf func(inventory.SiteName) Cloud) error {
	const margin = 256
	var errs []error
	for _, h := range t.Hosts {
		c := cloudOf(h.Site)
		if c == nil {
			continue
		}
		if n, limit := len(texts[h.Name]), c.UserDataLimit(); n+margin > limit {
			errs = append(errs, fmt.Errorf("%s: user data is %d bytes, %s accepts at most %d (with %d bytes kept for real addresses); fewer apps per stack or a converge-delivered file would shrink it", h.Name, n, c.Provider().Title(), limit, margin))
		}
	}
	return errors.Join(errs...)
}

// userData returns host h's user data as a secret: it carries the host's
// private SSH key, derived passwords and API tokens.
func (p *userDataPlan) userData(h topology.Host) (pulumi.StringOutput, error) {
	g := hostspec.UserDataGroupOf(h)
	if p.groups[g] == nil {
		out, err := p.group(g)
		if err != nil {
			return pulumi.StringOutput{}, err
		}
		p.groups[g] = &out
	}
	ud := p.groups[g].MapIndex(pulumi.String(h.Name))
	return pulumi.ToSecret(ud).(pulumi.StringOutput), nil
}

// output is the address a hostspec.Resolved key names, from what has been
// created so far.
func (b *addressBook) output(key string) (pulumi.StringOutput, error) {
	kind, name, _ := strings.Cut(key, "/")
	switch kind {
	case "static":
		if ip, ok := b.static[name]; ok {
			return ip.Address, nil
		}
		return pulumi.StringOutput{}, fmt.Errorf("no static IP for %s", name)
	case "priv", "pub":
		s, ok := b.servers[name]
		if !ok {
			return pulumi.StringOutput{}, fmt.Errorf("needs %s created first", name)
		}
		if kind == "priv" {
			return s.PrivateAddress, nil
		}
		return s.PublicAddress, nil
	case "vip":
		if ip, ok := b.vips[name]; ok {
			return ip.Address, nil
		}
		return pulumi.StringOutput{}, fmt.Errorf("needs %s's floating IP created first", name)
	}
	return pulumi.StringOutput{}, fmt.Errorf("address key %q: expected static/, priv/, pub/ or vip/", key)
}

// resolve waits for the addresses keys name and returns them as hostspec.Resolved.
func (b *addressBook) resolve(keys []string) (pulumi.StringMapOutput, error) {
	vals := make([]interface{}, 0, len(keys))
	for _, k := range keys {
		v, err := b.output(k)
		if err != nil {
			return pulumi.StringMapOutput{}, err
		}
		vals = append(vals, v)
	}
	return pulumi.All(vals...).ApplyT(func(xs []interface{}) (map[string]string, error) {
		r := map[string]string{}
		for i, x := range xs {
			s, _ := x.(string)
			if s == "" {
				return nil, fmt.Errorf("%s is empty (the provider returned no address)", keys[i])
			}
			r[keys[i]] = s
		}
		return r, nil
	}).(pulumi.StringMapOutput), nil
}

// group renders every host of group g once, from the addresses of its
// dependencies (hostspec.UserDataKeys), which must have been created already.
func (p *userDataPlan) group(g hostspec.UserDataGroup) (pulumi.StringMapOutput, error) {
	hosts := hostspec.GroupHosts(g, p.topo)
	r, err := p.book.resolve(hostspec.UserDataKeys(g, p.cfg, p.topo))
	if err != nil {
		return pulumi.StringMapOutput{}, fmt.Errorf("user data of %s: %w", strings.Join(hosts, ", "), err)
	}
	return r.ApplyT(func(r map[string]string) (map[string]string, error) {
		out, err := p.render(g, r)
		if err != nil {
			return nil, fmt.Errorf("user data: %w", err)
		}
		return out, nil
	}).(pulumi.StringMapOutput), nil
}

// addressesOutput is the `addresses` stack output (hostspec.Addresses): every
// server's private and public address, the static and floating IPs — what
// `belay converge` renders the hosts' files from. Nothing in it is secret.
func addressesOutput(p *plan, book *addressBook) (pulumi.MapOutput, error) {
	var keys []string
	for _, h := range p.topo.Hosts {
		keys = append(keys, "priv/"+h.Name, "pub/"+h.Name)
	}
	for _, h := range hostspec.StaticHosts(p.topo) {
		keys = append(keys, "static/"+h)
	}
	for _, g := range hostspec.VRRPGroups(p.cfg, p.topo) {
		keys = append(keys, "vip/"+g)
	}
	r, err := book.resolve(keys)
	if err != nil {
		return pulumi.MapOutput{}, fmt.Errorf("addresses output: %w", err)
	}
	return r.ApplyT(func(r map[string]string) (map[string]interface{}, error) {
		a, err := hostspec.AddressesFrom(p.stack, r)
		if err != nil {
			return nil, err
		}
		b, err := json.Marshal(a)
		if err != nil {
			return nil, err
		}
		var m map[string]interface{}
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, err
		}
		return m, nil
	}).(pulumi.MapOutput), nil
}
