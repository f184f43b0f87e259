package components

import (
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

// User data is rendered per group of hosts that depend on the same addresses,
// so every address a host's user data names exists before the host is created
// (no cycles, and a host never waits for itself):
//
//	first:        db-monitor, backup  — static IPs only (created before any server)
//	db:           db-1, db-2          — the monitor's and backup's addresses
//	standby-db:   db-standby          — the backup host's address
//	apps:         primary app servers — the DB nodes' addresses and the app VIPs
//	standby-apps: standby app servers — db-standby's and the backup host's addresses
//
// Cross-site references go to static IPs (Cloud.StaticIP): the backup host and
// the DB nodes keep their public address when replaced, so replacing one never
// changes (and so never replaces) a server on the other site.
type udGroup int

const (
	udFirst udGroup = iota
	udDB
	udStandbyDB
	udApps
	udStandbyApps
	udRouters
	udStandbyRouters
	numUDGroups
)

// udGroupOf is the group a host's user data is rendered in.
func udGroupOf(h topology.Host) udGroup {
	for _, r := range h.Roles {
		switch r {
		case inventory.RoleApp:
			return udApps
		case inventory.RoleStandbyApp:
			return udStandbyApps
		case inventory.RoleDB:
			return udDB
		case inventory.RoleStandbyDB:
			return udStandbyDB
		case inventory.RoleRouter:
			return udRouters
		case inventory.RoleStandbyRouter:
			return udStandbyRouters
		}
	}
	return udFirst
}

// udDeps are the hosts whose addresses group g's user data names.
func udDeps(g udGroup, t *topology.Topology) []string {
	switch g {
	case udDB:
		return []string{t.DBMonitor, t.BackupRepo}
	case udStandbyDB:
		return []string{t.BackupRepo}
	case udApps:
		return append([]string{}, t.DBNodes...)
	case udStandbyApps:
		return []string{t.StandbyDB, t.BackupRepo}
	case udRouters:
		// The sync service reads the mapping from the cluster.
		return append([]string{}, t.DBNodes...)
	case udStandbyRouters:
		// Standby routers proxy to the standby cells' servers.
		deps := []string{t.StandbyDB}
		for _, app := range sortedKeys(t.Cells) {
			for _, c := range t.Cells[app] {
				deps = append(deps, c.Standby)
			}
		}
		return deps
	}
	return nil
}

// staticHosts are the hosts other sites' user data names: they get static IPs.
func staticHosts(t *topology.Topology) []string {
	return append(append([]string{}, t.DBNodes...), t.BackupRepo)
}

// primaryEgress is what the standby site's host firewalls admit from the
// primary site on SSH. The primary's outbound addresses are not known before
// its servers exist (DigitalOcean cannot reserve them at all), so the host
// firewall admits any source there and the backup host's cloud firewall —
// created after the servers — admits exactly their /32s.
var primaryEgress = []string{"0.0.0.0/0"}

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
	groups [numUDGroups]*pulumi.StringMapOutput
}

// baseEnv is the Env of the stack's providers with tokens and everything known
// before any resource exists.
func (p *userDataPlan) baseEnv() (hostspec.Env, error) {
	env, err := hostspec.DefaultEnv(p.cfg, p.topo, false)
	if err != nil {
		return hostspec.Env{}, err
	}
	for name, se := range env.Sites {
		tok := p.cfg.HostAPITokens.Token(se.Provider)
		se.ClaimToken = tok
		if !se.PinnedAddresses {
			se.DiscoveryToken = tok
		}
		if name == inventory.Primary {
			se.EgressSources = primaryEgress
		}
		env.Sites[name] = se
	}
	env.DataVolumes = map[string]roles.DataVolume{}
	for h, m := range dataMounts(p.cfg, p.topo) {
		prov := p.cfg.Sites.Primary.Provider
		if p.topo.Host(h).Site == inventory.Standby {
			prov = p.cfg.Sites.Standby.Provider
		}
		env.DataVolumes[h] = dataVolumeSpec(prov, p.stack, h, m)
	}
	// Where the provider assigns private addresses, hosts a group does not
	// depend on get their planned address: it only fills specs that group
	// discards, and keeps hostspec.Build (which builds every host) satisfied.
	for _, h := range p.topo.Hosts {
		if _, ok := env.Addresses[h.Name]; !ok {
			env.Addresses[h.Name] = h.PrivateAddress.String()
		}
	}
	return env, nil
}

// resolved is one group's known addresses, keyed "priv/<host>", "pub/<host>",
// "static/<host>" and "vip/<app>".
type resolved map[string]string

// env is base plus the resolved addresses.
func (p *userDataPlan) env(r resolved) (hostspec.Env, error) {
	env, err := p.baseEnv()
	if err != nil {
		return env, err
	}
	for k, v := range r {
		kind, name, _ := strings.Cut(k, "/")
		switch kind {
		case "priv":
			env.Addresses[name] = v
		case "static":
			env.CrossSiteAddresses[name] = v
		case "pub":
			if name == p.topo.BackupRepo {
				se := env.Sites[inventory.Standby]
				se.EgressSources = []string{v + "/32"}
				env.Sites[inventory.Standby] = se
			}
		case "vip":
			prov := p.cfg.Sites.Primary.Provider
			vip := hostspec.VIP{ClaimCommand: hostspec.ClaimCommand(prov, v)}
			if prov == config.Hetzner {
				// Hetzner routes a floating IP to the server but the server must
				// also hold it on its interface; DO's anchor IP needs no address.
				_, pub, err := hostspec.Interfaces(prov)
				if err != nil {
					return env, err
				}
				vip.Address, vip.Interface = v, pub
			}
			vip.Public = v
			env.VIPs[name] = vip
		}
	}
	return env, nil
}

// render builds the specs with the resolved addresses and renders hosts.
func (p *userDataPlan) render(r resolved, hosts []string) (map[string]string, error) {
	env, err := p.env(r)
	if err != nil {
		return nil, err
	}
	specs, err := hostspec.Build(p.cfg, p.topo, p.stack, env)
	if err != nil {
		return nil, err
	}
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
// ranges) for what only exists after creation, so configuration errors stop
// the program before any resource is registered.
func (p *userDataPlan) preflight() (map[string]string, error) {
	r := resolved{}
	for i, h := range staticHosts(p.topo) {
		r["static/"+h] = fmt.Sprintf("192.0.2.%d", 10+i)
	}
	r["pub/"+p.topo.BackupRepo] = "192.0.2.250"
	for i, g := range allGroups(p.cfg, p.topo) {
		r["vip/"+g] = fmt.Sprintf("198.51.%d.%d", 100+i/250, 1+i%250)
	}
	var all []string
	for _, h := range p.topo.Hosts {
		all = append(all, h.Name)
	}
	return p.render(r, all)
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
	g := udGroupOf(h)
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

// group renders every host of group g once, from the addresses of its
// dependencies, which must have been created already.
func (p *userDataPlan) group(g udGroup) (pulumi.StringMapOutput, error) {
	var hosts []string
	for _, h := range p.topo.Hosts {
		if udGroupOf(h) == g {
			hosts = append(hosts, h.Name)
		}
	}
	keys := []string{}
	vals := []interface{}{}
	add := func(k string, v pulumi.StringOutput) { keys = append(keys, k); vals = append(vals, v) }
	for _, h := range staticHosts(p.topo) {
		ip, ok := p.book.static[h]
		if !ok {
			return pulumi.StringMapOutput{}, fmt.Errorf("user data: no static IP for %s", h)
		}
		add("static/"+h, ip.Address)
	}
	for _, n := range udDeps(g, p.topo) {
		s, ok := p.book.servers[n]
		if !ok {
			return pulumi.StringMapOutput{}, fmt.Errorf("user data of %s needs %s created first", strings.Join(hosts, ", "), n)
		}
		add("priv/"+n, s.PrivateAddress)
		add("pub/"+n, s.PublicAddress)
	}
	if g == udApps || g == udRouters {
		for _, name := range allGroups(p.cfg, p.topo) {
			ip, ok := p.book.vips[name]
			if !ok {
				return pulumi.StringMapOutput{}, fmt.Errorf("user data of %s's servers needs its floating IP created first", name)
			}
			add("vip/"+name, ip.Address)
		}
	}
	out := pulumi.All(vals...).ApplyT(func(xs []interface{}) (map[string]string, error) {
		r := resolved{}
		for i, x := range xs {
			s, _ := x.(string)
			if s == "" {
				return nil, fmt.Errorf("user data: %s is empty (the provider returned no address)", keys[i])
			}
			r[keys[i]] = s
		}
		return p.render(r, hosts)
	}).(pulumi.StringMapOutput)
	return out, nil
}
