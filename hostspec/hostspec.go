// Package hostspec turns a stack's config and topology, plus the provider
// specifics of where it runs, into one roles.Spec per server. It is pure: the
// Pulumi components and the lab call it with the same inputs and get the same
// Specs, so the user data a cloud boots is the user data the lab proved.
package hostspec

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/belay-sh/belay/config"
	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/roles"
	"github.com/belay-sh/belay/seedkeys"
	"github.com/belay-sh/belay/topology"
)

// Fixed names shared with the inventory and the deployer.
const (
	// Stanza is the pgBackRest stanza of every stack (one repository host per stack).
	Stanza = "belay"
	// DBUser is the application's PostgreSQL role.
	DBUser = "app"
	// DBPort is PostgreSQL's port on every database server.
	DBPort = 5432
	// AdvertInterval is the VRRP advert interval in seconds (VRRPv3: failover well under 1 s).
	AdvertInterval = 0.1
	// firstRouterID is the VRRP router ID of the first app; app i gets firstRouterID+i.
	firstRouterID = 51
	// topPriority is the VRRP priority of an app's first server; each next one gets 10 less.
	topPriority = 150
)

// Env is everything provider-specific Build needs, per site and per host.
type Env struct {
	// Sites holds the interface names and addressing facts of each site.
	Sites map[inventory.SiteName]SiteEnv
	// Addresses are the hosts' actual private addresses (host name -> IPv4).
	// For sites with PinnedAddresses a missing entry means the planned address;
	// elsewhere an address that is needed but missing is an error.
	Addresses map[string]string
	// CrossSiteAddresses are the addresses the other site's hosts use to reach a
	// host (its public address in a cloud). A missing entry means its private
	// address, which is right only where the two sites' networks are routed (the lab).
	CrossSiteAddresses map[string]string
	// VIPs is each app's floating address setup.
	VIPs map[string]VIP
	// Lab marks the local lab (systemd-nspawn machines on one bridge).
	Lab bool
	// DataVolumes are the hosts whose state lives on a separate block volume
	// (a cloud's stateful hosts); a host without an entry keeps it on its root disk.
	DataVolumes map[string]roles.DataVolume
}

// SiteEnv is one site's provider specifics.
type SiteEnv struct {
	Provider config.Provider
	// PrivateInterface carries server-to-server traffic; PublicInterface faces the internet.
	PrivateInterface string
	PublicInterface  string
	// PinnedAddresses is true where the planned private addresses are the real
	// ones (Hetzner, the lab). Where false (DigitalOcean), VRRP peers are found at
	// boot through the provider API and host firewalls allow the site network.
	PinnedAddresses bool
	// DiscoveryToken is the read-scoped API token for VRRP peer discovery
	// (needed when PinnedAddresses is false and the site has app servers; secret).
	DiscoveryToken string
	// ClaimToken is the API token the VRRP claim command uses to move a floating IP (secret; "" in the lab).
	ClaimToken string
	// InstallPackages installs the role packages at first boot (stock cloud images).
	InstallPackages bool
	// EgressSources are the addresses/CIDRs this site's hosts connect from when
	// they reach the other site (their public addresses in a cloud). Empty means
	// the site's private network, which is right only in the lab.
	EgressSources []string
}

// VIP is one app's floating address on the primary site.
type VIP struct {
	// Address is the IPv4 address keepalived adds to Interface on MASTER, or ""
	// when the provider routes the floating IP without an interface address (DO).
	Address   string
	Interface string
	// ClaimCommand moves the provider's floating IP to the new MASTER ("" in the lab).
	ClaimCommand string
	// Public is the floating address as other servers reach it (the routers
	// proxy to a cell's): the floating IP in a cloud, Address in the lab.
	Public string
}

// ClaimCommand is the notify_master command that moves floatingIP (a provider
// floating/reserved IP) to the server that runs it.
func ClaimCommand(p config.Provider, floatingIP string) string {
	return fmt.Sprintf("%s vip claim --provider %s --ip %s --token-file %s", roles.BelayBinary, p, floatingIP, roles.ClaimTokenFile)
}

// Interfaces returns the private and public interface names of a provider's
// Debian 12 servers (the lab's nspawn machines have one interface, host0).
func Interfaces(p config.Provider) (private, public string, err error) {
	switch p {
	case config.Hetzner:
		return "enp7s0", "eth0", nil
	case config.DigitalOcean:
		return "eth1", "eth0", nil
	case config.Lab:
		return "host0", "host0", nil
	}
	return "", "", fmt.Errorf("hostspec: provider %q: expected %s, %s or %s", p, config.Hetzner, config.DigitalOcean, config.Lab)
}

// LabVIP is the address keepalived moves for the i-th app in the lab.
func LabVIP(i int) string { return fmt.Sprintf("10.213.0.%d", 100+i) }

// DefaultEnv returns the Env of cfg's providers with the planned addresses
// where the provider pins them. With lab, both sites are lab machines (host0,
// pinned addresses, VIPs 10.213.0.100+i moved by keepalived, no claim command,
// stateful hosts' data on the machine's second disk, LabDataDevice).
// Callers add tokens, cloud VIPs and the addresses a provider assigned.
func DefaultEnv(cfg *config.Config, topo *topology.Topology, lab bool) (Env, error) {
	env := Env{
		Sites:              map[inventory.SiteName]SiteEnv{},
		Addresses:          map[string]string{},
		CrossSiteAddresses: map[string]string{},
		VIPs:               map[string]VIP{},
		Lab:                lab,
	}
	for _, site := range []struct {
		name inventory.SiteName
		p    config.Provider
	}{{inventory.Primary, cfg.Sites.Primary.Provider}, {inventory.Standby, cfg.Sites.Standby.Provider}} {
		p := site.p
		if lab {
			p = config.Lab
		}
		priv, pub, err := Interfaces(p)
		if err != nil {
			return Env{}, fmt.Errorf("belay:sites.%s.provider: %w", site.name, err)
		}
		env.Sites[site.name] = SiteEnv{Provider: p, PrivateInterface: priv, PublicInterface: pub, PinnedAddresses: p != config.DigitalOcean, InstallPackages: p != config.Lab}
	}
	for _, h := range topo.Hosts {
		if env.Sites[h.Site].PinnedAddresses {
			env.Addresses[h.Name] = h.PrivateAddress.String()
		}
	}
	if lab {
		env.DataVolumes = labDataVolumes(cfg, topo)
		for i, a := range cfg.Apps {
			if !a.HasCells() {
				env.VIPs[a.Name] = VIP{Address: LabVIP(i), Interface: "host0", Public: LabVIP(i)}
				continue
			}
			env.VIPs[topology.RouterGroup(a.Name)] = VIP{Address: LabVIP(i), Interface: "host0", Public: LabVIP(i)}
			for _, c := range topo.Cells[a.Name] {
				if 125-c.Slot < 100+len(cfg.Apps) {
					return Env{}, fmt.Errorf("belay:apps[%d].cells: the lab has floating addresses for %d apps and cells, expected fewer", i, 26)
				}
				env.VIPs[c.Group] = VIP{Address: LabCellVIP(c.Slot), Interface: "host0", Public: LabCellVIP(c.Slot)}
			}
		}
	}
	return env, nil
}

// Build returns the roles.Spec of every server in topo, keyed by host name.
func Build(cfg *config.Config, topo *topology.Topology, stack string, env Env) (map[string]*roles.Spec, error) {
	if cfg == nil || topo == nil {
		return nil, errors.New("hostspec: config and topology are required")
	}
	if stack == "" {
		return nil, errors.New("hostspec: stack name is empty")
	}
	b := &builder{cfg: cfg, topo: topo, stack: stack, env: env}
	if err := b.checkEnv(); err != nil {
		return nil, err
	}
	out := map[string]*roles.Spec{}
	for _, h := range topo.Hosts {
		s, err := b.host(h)
		if err != nil {
			return nil, fmt.Errorf("hostspec: %s: %w", h.Name, err)
		}
		out[h.Name] = s
	}
	return out, nil
}

type builder struct {
	cfg   *config.Config
	topo  *topology.Topology
	stack string
	env   Env
}

func (b *builder) checkEnv() error {
	var errs []error
	for _, site := range []inventory.SiteName{inventory.Primary, inventory.Standby} {
		se, ok := b.env.Sites[site]
		if !ok {
			errs = append(errs, fmt.Errorf("hostspec: Env.Sites[%s]: missing", site))
			continue
		}
		if se.PrivateInterface == "" || se.PublicInterface == "" {
			errs = append(errs, fmt.Errorf("hostspec: Env.Sites[%s]: interface names are empty", site))
		}
		if !se.PinnedAddresses && site == inventory.Primary && len(b.cfg.Apps) > 0 && se.DiscoveryToken == "" {
			errs = append(errs, fmt.Errorf("hostspec: Env.Sites[%s].DiscoveryToken: empty, expected a read-scoped %s API token (the VRRP peers are found at boot)", site, se.Provider))
		}
	}
	if len(b.cfg.Apps) > 255-firstRouterID+1 {
		errs = append(errs, fmt.Errorf("belay:apps: %d apps, at most %d fit the VRRP router ID range", len(b.cfg.Apps), 255-firstRouterID+1))
	}
	if err := b.checkCellIDs(); err != nil {
		errs = append(errs, err)
	}
	groups := groupNames(b.cfg, b.topo)
	for name, v := range b.env.VIPs {
		if !groups[name] {
			errs = append(errs, fmt.Errorf("hostspec: Env.VIPs[%s]: no such app, router tier or cell", name))
		}
		if v.Public != "" && !validIPv4(v.Public) {
			errs = append(errs, fmt.Errorf("hostspec: Env.VIPs[%s].Public: %q, expected an IPv4 address", name, v.Public))
		}
		if v.Address != "" {
			if a, err := netip.ParseAddr(v.Address); err != nil || !a.Is4() {
				errs = append(errs, fmt.Errorf("hostspec: Env.VIPs[%s].Address: %q, expected an IPv4 address", name, v.Address))
			}
		}
	}
	return errors.Join(errs...)
}

func (b *builder) appConfig(name string) *config.App {
	for i := range b.cfg.Apps {
		if b.cfg.Apps[i].Name == name {
			return &b.cfg.Apps[i]
		}
	}
	return nil
}

func (b *builder) appIndex(name string) int {
	for i := range b.cfg.Apps {
		if b.cfg.Apps[i].Name == name {
			return i
		}
	}
	return -1
}

func (b *builder) site(h topology.Host) SiteEnv { return b.env.Sites[h.Site] }

// addr is a host's private address: the actual one, else the planned one where
// the provider pins it.
func (b *builder) addr(name string) (string, error) {
	h := b.topo.Host(name)
	if h == nil {
		return "", fmt.Errorf("unknown host %q", name)
	}
	if a, ok := b.env.Addresses[name]; ok && a != "" {
		if p, err := netip.ParseAddr(a); err != nil || !p.Is4() {
			return "", fmt.Errorf("Env.Addresses[%s]: %q, expected an IPv4 address", name, a)
		}
		return a, nil
	}
	if b.site(*h).PinnedAddresses {
		return h.PrivateAddress.String(), nil
	}
	return "", fmt.Errorf("Env.Addresses[%s]: missing; %s assigns private addresses, pass the created server's", name, b.site(*h).Provider)
}

// reach is the address a host of site from uses to reach host name.
func (b *builder) reach(from inventory.SiteName, name string) (string, error) {
	h := b.topo.Host(name)
	if h == nil {
		return "", fmt.Errorf("unknown host %q", name)
	}
	if h.Site != from {
		if a, ok := b.env.CrossSiteAddresses[name]; ok && a != "" {
			return a, nil
		}
	}
	return b.addr(name)
}

// egress are the sources the hosts of site use toward the other site.
func (b *builder) egress(site inventory.SiteName) []string {
	if src := b.env.Sites[site].EgressSources; len(src) > 0 {
		return src
	}
	return []string{b.cidr(site)}
}

func (b *builder) cidr(site inventory.SiteName) string {
	if site == inventory.Primary {
		return b.cfg.Network.PrimaryCIDR
	}
	return b.cfg.Network.StandbyCIDR
}

func other(site inventory.SiteName) inventory.SiteName {
	if site == inventory.Primary {
		return inventory.Standby
	}
	return inventory.Primary
}

func (b *builder) key(name string) (seedkeys.Key, error) {
	return seedkeys.Derive(b.cfg.HostKeySeed, b.stack, name, 0)
}

func (b *builder) password(purpose string) (string, error) {
	return seedkeys.Password(b.cfg.HostKeySeed, b.stack, purpose)
}

// Key names of the non-host keys. They contain ':' so they can never equal a host name.
func pgClientKeyName(host string) string { return "pgbackrest-client:" + host }
func resticKeyName(host string) string   { return "restic-client:" + host }

const pgRepoKeyName = "pgbackrest-repo"

// resticCAKeyName is the restic user CA: it certifies each app server's
// restic key for its app's chrooted user on the backup host.
const resticCAKeyName = "restic:user-ca"

// HostKey returns the pinned host key of a server (what the inventory lists).
func HostKey(cfg *config.Config, stack, host string) (seedkeys.Key, error) {
	return seedkeys.Derive(cfg.HostKeySeed, stack, host, 0)
}

func (b *builder) host(h topology.Host) (*roles.Spec, error) {
	se := b.site(h)
	hk, err := b.key(h.Name)
	if err != nil {
		return nil, err
	}
	ck, err := seedkeys.ConvergeKey(b.cfg.HostKeySeed, b.stack)
	if err != nil {
		return nil, err
	}
	s := &roles.Spec{
		ConvergeKey: seedkeys.ConvergePublic(ck),
		Stack:       b.stack,
		Hostname:    h.Name,
		Site:        h.Site,
		Roles:       append([]inventory.Role(nil), h.Roles...),
		DeployUser:  b.cfg.Admin.DeployUser,
		AdminKeys:   append([]string(nil), b.cfg.Admin.SSHKeys...),
		HostKey:     hk,
		SSHFrom:     append([]string(nil), b.cfg.Admin.SSHCidrs...),
		Net: roles.Net{
			PrivateInterface: se.PrivateInterface,
			PublicInterface:  se.PublicInterface,
			SiteCIDR:         b.cidr(h.Site),
			PeerSiteCIDR:     b.cidr(other(h.Site)),
		},
		InstallPackages: se.InstallPackages,
	}
	if v, ok := b.env.DataVolumes[h.Name]; ok {
		s.DataVolume = &v
	}
	if a := b.cfg.Agent; a.URL != "" && !b.env.Lab {
		s.Agent = &roles.Agent{URL: a.URL, SHA256: a.SHA256}
	}
	if s.DeployUser == "" {
		s.DeployUser = config.DefaultDeployUser
	}
	if se.PinnedAddresses {
		if s.Net.PrivateAddress, err = b.addr(h.Name); err != nil {
			return nil, err
		}
	}
	for _, r := range h.Roles {
		switch r {
		case inventory.RoleApp, inventory.RoleStandbyApp:
			err = b.app(h, s)
		case inventory.RoleDB, inventory.RoleDBMonitor:
			if h.Cell != "" {
				err = b.cellDB(h, s) // a dedicated cell's own pair (dedicated.go)
			} else {
				err = b.db(h, s)
			}
		case inventory.RoleStandbyDB:
			if h.Cell != "" {
				err = b.cellStandbyDB(h, s) // a dedicated cell's standby (dedicated.go)
			} else {
				err = b.standbyDB(h, s)
			}
		case inventory.RoleBackupRepo:
			err = b.backup(h, s)
		case inventory.RoleRouter, inventory.RoleStandbyRouter:
			err = b.router(h, s)
		default:
			err = fmt.Errorf("role %q: not built by hostspec", r)
		}
		if err != nil {
			return nil, err
		}
	}
	s.SSHFrom = dedupe(s.SSHFrom)
	return s, nil
}

func dedupe(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range in {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

// databaseURL is the app's multi-host libpq URL: libpq tries the data nodes in
// order and keeps the one that accepts writes, so a failover needs no change.
func (b *builder) databaseURL(from inventory.SiteName) (string, error) {
	pw, err := b.password("postgres/app")
	if err != nil {
		return "", err
	}
	hosts, err := b.dbHosts(from)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("postgresql://%s:%s@%s/%s?target_session_attrs=read-write&connect_timeout=3", DBUser, pw, hosts, b.cfg.Database.Name), nil
}

// dbHosts is the host list of a libpq URL used from site from.
func (b *builder) dbHosts(from inventory.SiteName) (string, error) {
	nodes := b.topo.DBNodes
	if from == inventory.Standby {
		// The standby site's apps only ever talk to the standby DB (no cross-site 5432).
		nodes = []string{b.topo.StandbyDB}
	}
	return b.hostList(nodes)
}

// hostList is nodes as a libpq multi-host list (ADDRESS:PORT,...).
func (b *builder) hostList(nodes []string) (string, error) {
	var hosts []string
	for _, n := range nodes {
		a, err := b.addr(n)
		if err != nil {
			return "", err
		}
		hosts = append(hosts, fmt.Sprintf("%s:%d", a, DBPort))
	}
	return strings.Join(hosts, ","), nil
}

func (b *builder) app(h topology.Host, s *roles.Spec) error {
	ac := b.appConfig(h.App)
	if ac == nil {
		return fmt.Errorf("app %q is not in the config", h.App)
	}
	standby := h.Site == inventory.Standby
	dbURL, err := b.databaseURL(h.Site)
	if h.Cell != "" {
		dbURL, err = b.cellDatabaseURL(h.Site, h.App, h.Cell)
	}
	if err != nil {
		return err
	}
	repoAddr, err := b.reach(h.Site, b.topo.BackupRepo)
	if err != nil {
		return err
	}
	repoKey, err := b.key(b.topo.BackupRepo)
	if err != nil {
		return err
	}
	clientKey, err := b.key(resticKeyName(h.Name))
	if err != nil {
		return err
	}
	ca, err := b.key(resticCAKeyName)
	if err != nil {
		return err
	}
	cert, err := seedkeys.UserCert(ca, clientKey.Public, roles.ResticUser(ac.Name))
	if err != nil {
		return fmt.Errorf("%s: restic certificate: %w", h.Name, err)
	}
	resticPW, err := b.password("restic")
	if err != nil {
		return err
	}
	s.App = &roles.App{
		Name:           ac.Name,
		Port:           ac.Port,
		HealthPath:     ac.HealthPath,
		Domains:        append([]string(nil), ac.Domains...),
		Standby:        standby,
		Cell:           h.Cell,
		DatabaseURL:    dbURL,
		ResticRepo:     ResticRepo(ac.Name, repoAddr),
		ResticPassword: resticPW,
		BackupKey:      clientKey,
		BackupCert:     cert,
		RepoHostKey:    repoKey.Public,
		TLS:            b.tls(ac),
	}
	if h.Cell != "" {
		// A cell is reached through the router tier, which terminates HTTPS
		// for the app's domains: the cell's own pair serves plain HTTP to the
		// routers (an HTTP-01 validation of a domain pointing at the routers
		// never reaches it, and a redirect would loop through the router).
		s.App.TLS = nil
	}
	if standby {
		return nil
	}
	se := b.site(h)
	idx := b.appIndex(ac.Name)
	prio := topPriority - 10*h.Index
	if prio < 1 {
		prio = 1
	}
	auth, err := b.password("vrrp/" + ac.Name)
	if err != nil {
		return err
	}
	v := &roles.VRRP{
		RouterID:       firstRouterID + idx,
		Priority:       prio,
		ClaimToken:     se.ClaimToken,
		AuthPass:       auth[:8],
		AdvertInterval: AdvertInterval,
	}
	if h.Cell != "" {
		if err := b.cellVRRP(h, v); err != nil {
			return err
		}
		s.App.VRRP = v
		return nil
	}
	if vip, ok := b.env.VIPs[ac.Name]; ok {
		v.VIP, v.VIPInterface, v.ClaimCommand = vip.Address, vip.Interface, vip.ClaimCommand
		if v.VIP != "" && v.VIPInterface == "" {
			v.VIPInterface = se.PublicInterface
		}
	}
	if se.PinnedAddresses {
		for _, peer := range b.topo.AppHosts[ac.Name] {
			if peer == h.Name {
				continue
			}
			a, err := b.addr(peer)
			if err != nil {
				return err
			}
			v.Peers = append(v.Peers, a)
		}
	} else {
		v.PeerDiscovery = &roles.PeerDiscovery{Provider: string(se.Provider), Selector: GroupTag(b.stack, ac.Name), Token: se.DiscoveryToken}
	}
	s.App.VRRP = v
	return nil
}

// ResticRepo is the restic repository URL of app on the repository host addr:
// a per-app sftp user chrooted to /srv/restic/<app>, whose repository is /repo.
func ResticRepo(app, addr string) string {
	return fmt.Sprintf("sftp:%s@%s:/repo", roles.ResticUser(app), addr)
}

// GroupTag names an app's VRRP group at the provider (DO tag / Hetzner label
// value) so `belay vip peers` can find the members.
func GroupTag(stack, app string) string { return "belay-" + stack + "-" + app }

// tls maps an app's belay:apps[i].tls (and its belay:tlsCertificates entry) to
// what the roles render; nil for mode off.
func (b *builder) tls(ac *config.App) *roles.TLS {
	t := ac.TLS
	switch t.Mode {
	case config.TLSACME:
		out := &roles.TLS{Mode: roles.TLSModeACME, ACMEDirectory: t.ACMEDirectory, Email: t.Email, ACMECACertificate: t.ACMECACertificate}
		b.hsts(out, t.HSTS)
		return out
	case config.TLSCustom:
		c := b.cfg.TLSCertificates[ac.Name]
		out := &roles.TLS{Mode: roles.TLSModeCustom, Certificate: c.Certificate, Key: c.Key}
		b.hsts(out, t.HSTS)
		return out
	}
	return nil
}

func (b *builder) hsts(out *roles.TLS, h config.HSTS) {
	if h.Enabled {
		out.HSTSMaxAge, out.HSTSIncludeSubdomains = h.MaxAge, h.IncludeSubdomains
	}
}
