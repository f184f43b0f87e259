package components

import (
	"errors"
	"fmt"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/belay-sh/belay/config"
	"github.com/belay-sh/belay/hostspec"
	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/topology"
)

// InventoryOutput is the name of the stack output the deployer reads.
const InventoryOutput = "inventory"

// AddressesOutput is the name of the stack output `belay converge` renders
// hosts' files from (hostspec.Addresses).
const AddressesOutput = "addresses"

// maxSpread is the most servers a Hetzner spread placement group takes.
const maxSpread = 10

// Belay is a whole stack (belay:index:Belay): both sites, every app's HA pair,
// the database, the standby site, firewalls, DNS and the inventory output.
type Belay struct {
	pulumi.ResourceState

	PrimarySite *Site
	StandbySite *Site
	Apps        []*AppPair
	Database    *Database
	// CellDatabases are the dedicated cells' own pairs (celldb.go).
	CellDatabases []*CellDatabase
	Standby       *Standby
	Firewalls     []*Firewalls
	DNS           []*AppDNS
	// Inventory is the `inventory` stack output: the inventory document as an object.
	Inventory pulumi.MapOutput
	// InventoryJSON is the same document as JSON text (what inventory.Parse reads).
	InventoryJSON pulumi.StringOutput
	// Addresses is the `addresses` stack output (hostspec.Addresses).
	Addresses pulumi.MapOutput
}

// plan is everything checked before the first resource is registered.
type plan struct {
	cfg      *config.Config
	stack    string
	topo     *topology.Topology
	policies []firewallPolicy
	userData *userDataPlan
	primary  Cloud
	standby  Cloud
	dns      DNS
}

// cloudOf is the adapter of a site.
func (p *plan) cloudOf(s inventory.SiteName) Cloud {
	if s == inventory.Primary {
		return p.primary
	}
	return p.standby
}

// skipUserDataLimits turns the user-data size check off; only the benchmarks
// set it, to measure the program at app counts the backup host's user data
// does not fit yet (see checkUserDataSizes).
var skipUserDataLimits = false

// newCloud returns the adapter of a site's provider.
func newCloud(key string, p config.Provider, root pulumi.Resource) (Cloud, error) {
	switch p {
	case config.DigitalOcean:
		return NewDigitalOcean(root), nil
	case config.Hetzner:
		return NewHetzner(), nil
	case config.Lab:
		return nil, fmt.Errorf("%s.provider: %q is the local lab (`belay lab up`), not something `pulumi up` provisions", key, p)
	}
	return nil, fmt.Errorf("%s.provider: %q, expected %s or %s", key, p, config.DigitalOcean, config.Hetzner)
}

// newDNS returns the adapter of the DNS provider.
func newDNS(p config.Provider) (DNS, error) {
	switch p {
	case config.DigitalOcean:
		return NewDigitalOceanDNS(), nil
	case config.Hetzner:
		return NewHetznerDNS(), nil
	}
	return nil, fmt.Errorf("%s.provider: %q, expected %q or %q", config.KeyDNS, p, config.DigitalOcean, config.Hetzner)
}

// newPlan checks cfg and lays out the stack without registering anything.
// Every error names the config key to change.
func newPlan(stack string, cfg *config.Config) (*plan, error) {
	if cfg == nil {
		return nil, errors.New("belay: no configuration")
	}
	if stack == "" {
		return nil, errors.New("belay: empty stack name")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := &plan{cfg: cfg, stack: stack}
	var errs []error
	var err error
	// The adapters get their root parent later; checks need none.
	if p.primary, err = newCloud("belay:sites.primary", cfg.Sites.Primary.Provider, nil); err != nil {
		errs = append(errs, err)
	} else if err := p.primary.CheckSite("belay:sites.primary", cfg.Sites.Primary); err != nil {
		errs = append(errs, err)
	}
	if p.standby, err = newCloud("belay:sites.standby", cfg.Sites.Standby.Provider, nil); err != nil {
		errs = append(errs, err)
	} else if err := p.standby.CheckSite("belay:sites.standby", cfg.Sites.Standby); err != nil {
		errs = append(errs, err)
	}
	if cfg.Sites.Primary.Provider == cfg.Sites.Standby.Provider {
		errs = append(errs, fmt.Errorf("belay:sites.standby.provider: %q is also the primary's; the standby site must be at the other provider", cfg.Sites.Standby.Provider))
	}
	if p.dns, err = newDNS(cfg.DNS.Provider); err != nil {
		errs = append(errs, err)
	}
	// keepalived's notify_master moves the floating IP through the provider
	// API (and on DigitalOcean finds its peers with it): without a token on
	// the app servers a failover would never move the address.
	if key := config.KeyHostAPITokens + "." + string(cfg.Sites.Primary.Provider); len(cfg.Apps) > 0 && cfg.HostAPITokens.Token(cfg.Sites.Primary.Provider) == "" {
		errs = append(errs, fmt.Errorf("%s: empty, expected an API token for the app servers (`pulumi config set --secret --path %s <token>`): keepalived moves the floating IP with it", key, key))
	}
	for _, g := range []string{groupApp, groupDB, groupDBMonitor, groupStandbyApp, groupStandbyDB, groupBackup} {
		if err := checkGroupName(groupName(stack, g), "stack name"); err != nil {
			errs = append(errs, err)
		}
	}
	for i, a := range cfg.Apps {
		key := fmt.Sprintf("%s[%d]", config.KeyApps, i)
		if err := checkGroupName(appGroup(stack, a.Name), key+".name"); err != nil {
			errs = append(errs, err)
		}
		errs = append(errs, checkCellGroups(cfg, stack, i)...)
		if a.Replicas < 2 {
			errs = append(errs, fmt.Errorf("%s.replicas: %d, expected at least 2 (an HA pair)", key, a.Replicas))
		}
		if cfg.Sites.Primary.Provider == config.Hetzner && a.Replicas > maxSpread {
			errs = append(errs, fmt.Errorf("%s.replicas: %d, a Hetzner spread placement group holds at most %d servers", key, a.Replicas, maxSpread))
		}
		for _, d := range a.Domains {
			if _, err := recordName(cfg.DNS.Zone, d); err != nil {
				errs = append(errs, fmt.Errorf("%s.domains: %w", key, err))
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if p.topo, err = topology.Plan(cfg); err != nil {
		return nil, err
	}
	if p.policies, err = firewallPolicies(cfg, p.topo, p.primary.FirewallPassesVRRP()); err != nil {
		return nil, err
	}
	p.userData = &userDataPlan{cfg: cfg, topo: p.topo, stack: stack, book: newAddressBook()}
	texts, err := p.userData.preflight()
	if err != nil {
		return nil, err
	}
	if err := checkUserDataSizes(p.topo, texts, p.cloudOf); err != nil && !skipUserDataLimits {
		return nil, err
	}
	return p, nil
}

// NewBelay provisions the stack cfg describes and exports the `inventory`
// output. A bad configuration fails before any resource is registered.
func NewBelay(ctx *pulumi.Context, name string, cfg *config.Config, opts ...pulumi.ResourceOption) (*Belay, error) {
	p, err := newPlan(ctx.Stack(), cfg)
	if err != nil {
		return nil, err
	}
	b := &Belay{}
	if err := ctx.RegisterComponentResource("belay:index:Belay", name, b, opts...); err != nil {
		return nil, err
	}
	if p.primary, err = newCloud("belay:sites.primary", cfg.Sites.Primary.Provider, b); err != nil {
		return nil, err
	}
	if p.standby, err = newCloud("belay:sites.standby", cfg.Sites.Standby.Provider, b); err != nil {
		return nil, err
	}
	if err := b.build(ctx, p); err != nil {
		return nil, err
	}
	ctx.Export(InventoryOutput, b.Inventory)
	ctx.Export(AddressesOutput, b.Addresses)
	return b, nil
}

// build creates the resources in the order user data needs (see userdata.go):
// static IPs with the sites, the standby site (backup first), the database
// (monitor first), every app's floating IP, then the app servers.
func (b *Belay) build(ctx *pulumi.Context, p *plan) error {
	cfg, t, book := p.cfg, p.topo, p.userData.book
	labels := Labels{"belay-stack": slug(p.stack)}
	parent := pulumi.Parent(b)
	var primaryStatic, standbyStatic []string
	for _, h := range hostspec.StaticHosts(t) {
		if t.Host(h).Site == inventory.Primary {
			primaryStatic = append(primaryStatic, h)
		} else {
			standbyStatic = append(standbyStatic, h)
		}
	}
	var err error
	if b.PrimarySite, err = NewSite(ctx, "primary", SiteArgs{Cloud: p.primary, Site: inventory.Primary, Region: cfg.Sites.Primary.Region, CIDR: cfg.Network.PrimaryCIDR, Labels: labels, StaticHosts: primaryStatic}, parent); err != nil {
		return err
	}
	if b.StandbySite, err = NewSite(ctx, "standby", SiteArgs{Cloud: p.standby, Site: inventory.Standby, Region: cfg.Sites.Standby.Region, CIDR: cfg.Network.StandbyCIDR, Labels: labels, StaticHosts: standbyStatic}, parent); err != nil {
		return err
	}
	for _, s := range []*Site{b.PrimarySite, b.StandbySite} {
		for h, ip := range s.StaticIPs {
			book.static[h] = ip
		}
	}
	// Firewalls whose rules need no server address exist before any server,
	// so no server boots without its cloud firewall; the rules that admit
	// other servers' public /32s follow in separate firewalls once those exist.
	pre, post := splitPolicies(p.policies)
	var before []pulumi.Resource
	for _, site := range []*Site{b.PrimarySite, b.StandbySite} {
		fw, err := NewFirewalls(ctx, string(site.Name)+"-firewalls", FirewallsArgs{
			Stack: p.stack, Site: site, Policies: sitePolicies(pre, site.Name), Labels: labels,
			PublicAddress: func(h string) (pulumi.StringOutput, error) {
				return pulumi.StringOutput{}, fmt.Errorf("firewall rule names %s before servers exist", h)
			},
		}, parent)
		if err != nil {
			return err
		}
		b.Firewalls = append(b.Firewalls, fw)
		before = append(before, fw.Resources...)
	}
	mounts, stateful := hostspec.DataMounts(cfg, t), statefulHosts(t)
	host := func(site *Site) hostArgs {
		return hostArgs{Stack: p.stack, Site: site, UserData: p.userData.userData, Labels: labels,
			Created: func(s *Server) { book.servers[s.Host] = s },
			Mounts:  mounts, Stateful: stateful, After: before}
	}
	hosts := func(names []string) []topology.Host {
		out := make([]topology.Host, 0, len(names))
		for _, n := range names {
			out = append(out, *t.Host(n))
		}
		return out
	}

	standbyApps := standbyHostsInOrder(cfg, t)
	if b.Standby, err = NewStandby(ctx, "standby", StandbyArgs{
		Backup: *t.Host(t.BackupRepo), StandbyDB: *t.Host(t.StandbyDB), CellDBs: hosts(t.CellStandbyDBs()), Apps: hosts(standbyApps), Host: host(b.StandbySite),
	}, parent); err != nil {
		return err
	}
	if b.Database, err = NewDatabase(ctx, "database", DatabaseArgs{
		Monitor: *t.Host(t.DBMonitor), Nodes: hosts(t.DBNodes), Host: host(b.PrimarySite),
	}, parent); err != nil {
		return err
	}
	// Dedicated cells' pairs: after the monitor, before the cells' servers
	// (whose DATABASE_URL names them).
	for _, a := range cfg.Apps {
		for _, c := range t.Cells[a.Name] {
			if len(c.DBNodes) == 0 {
				continue
			}
			cd, err := NewCellDatabase(ctx, c.Group+"-db", CellDatabaseArgs{Cell: c, Nodes: hosts(c.DBNodes), Host: host(b.PrimarySite)}, parent)
			if err != nil {
				return err
			}
			b.CellDatabases = append(b.CellDatabases, cd)
		}
	}
	for _, a := range cfg.Apps {
		for _, g := range vrrpGroups(a, t) {
			ha := host(b.PrimarySite)
			ha.Groups = []string{groupApp}
			ha.Tags = []string{appGroup(p.stack, g.name)}
			pair, err := NewAppPair(ctx, g.name, AppPairArgs{App: a, Hosts: hosts(g.hosts), Host: ha}, parent)
			if err != nil {
				return err
			}
			book.vips[g.name] = pair.FloatingIP
			b.Apps = append(b.Apps, pair)
		}
	}
	for _, pair := range b.Apps {
		if err := pair.Provision(ctx); err != nil {
			return err
		}
	}

	public := func(h string) (pulumi.StringOutput, error) {
		s, ok := book.servers[h]
		if !ok {
			return pulumi.StringOutput{}, fmt.Errorf("firewall rule names %s, which was not created", h)
		}
		return s.PublicAddress, nil
	}
	for _, site := range []*Site{b.PrimarySite, b.StandbySite} {
		pol := sitePolicies(post, site.Name)
		if len(pol) == 0 {
			continue
		}
		fw, err := NewFirewalls(ctx, string(site.Name)+"-firewalls-hosts", FirewallsArgs{
			Stack: p.stack, Site: site, Policies: pol, PublicAddress: public, Labels: labels,
		}, parent)
		if err != nil {
			return err
		}
		b.Firewalls = append(b.Firewalls, fw)
	}
	for _, a := range cfg.Apps {
		if len(a.Domains) == 0 {
			continue
		}
		// An app with cells is reached through its router tier.
		vip := entryGroup(a)
		d, err := NewAppDNS(ctx, a.Name+"-dns", AppDNSArgs{
			DNS: p.dns, Zone: cfg.DNS.Zone, TTL: cfg.DNS.TTL, Domains: a.Domains, VIP: book.vips[vip].Address,
		}, parent)
		if err != nil {
			return err
		}
		b.DNS = append(b.DNS, d)
	}

	b.InventoryJSON, b.Inventory = inventoryOutput(p, book)
	if b.Addresses, err = addressesOutput(p, book); err != nil {
		return err
	}
	return ctx.RegisterResourceOutputs(b, pulumi.Map{InventoryOutput: b.Inventory, AddressesOutput: b.Addresses})
}
