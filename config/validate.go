package config

import (
	"crypto/rsa"
	"fmt"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/belay-sh/belay/internal/safe"
)

// MinHostKeySeedLen is the shortest belay:hostKeySeed accepted: every host key
// and internal password derives from it.
const MinHostKeySeedLen = 32

// Checks owned by package topology, which imports config and so cannot be
// imported here; it registers them from its init (see RegisterPlanner).
var (
	planCheck     func(*Config) error
	plannerNames  []string
	builtinNames  = []string{"db", "backup", "db-monitor", "db-standby"}
	maxAppNameLen = 63 - len("-standby")
)

// RegisterPlanner makes the address plan (topology.Plan) and the host names the
// topology reserves part of validation, so a plan that does not fit is refused
// as a config error before any resource is registered. Package topology calls it.
func RegisterPlanner(reserved []string, plan func(*Config) error) {
	plannerNames = slices.Clone(reserved)
	planCheck = plan
}

var (
	dnsLabel     = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	linuxUser    = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
	pgIdent      = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)
	nginxVarName = regexp.MustCompile(`^[A-Za-z0-9_]{1,64}$`)
	headerName   = regexp.MustCompile(`^[A-Za-z0-9-]{1,64}$`)
)

// systemUsers are accounts Debian or belay's roles already own; the deploy user
// must be a fresh one so its sudo rules and keys are belay's alone.
var systemUsers = []string{
	"root", "daemon", "bin", "sys", "sync", "games", "man", "lp", "mail", "news", "uucp", "proxy", "www-data",
	"backup", "list", "irc", "gnats", "nobody", "_apt", "sshd", "messagebus", "systemd-network", "systemd-resolve",
	"systemd-timesync", "postgres", "pgbackrest", "keepalived_script", "belay-app", "admin",
}

// validate records every problem with cfg into e. It skips checks whose input
// already failed to decode so one mistake is reported once.
func validate(e *errs, c *Config, o *options) {
	v := &validator{e: e, c: c, o: o}
	v.sites()
	v.admin()
	v.apps()
	v.database()
	v.backups()
	v.dns()
	v.network()
	v.deploy()
	v.agent()
	v.secrets()
	v.plan()
}

type validator struct {
	e *errs
	c *Config
	o *options
}

// add records an error unless the path (or a parent of it) already has one.
func (v *validator) add(path, format string, args ...any) {
	if v.e.covered(path) {
		return
	}
	v.e.add(path, format, args...)
}

func (v *validator) providers() string {
	if v.o.lab {
		return "digitalocean, hetzner or lab"
	}
	return "digitalocean or hetzner"
}

func (v *validator) provider(path string, p Provider) bool {
	switch {
	case p == "":
		v.add(path, "missing, expected %s", v.providers())
	case p == DigitalOcean || p == Hetzner:
		return true
	case p == Lab && v.o.lab:
		return true
	case p == Lab:
		v.add(path, `"lab" is only valid for the local lab (belay lab), expected digitalocean or hetzner`)
	default:
		v.add(path, "got %q, expected %s", string(p), v.providers())
	}
	return false
}

func (v *validator) sites() {
	s := v.c.Sites
	const pk, sk = KeySites + ".primary", KeySites + ".standby"
	pOK := v.provider(pk+".provider", s.Primary.Provider)
	sOK := v.provider(sk+".provider", s.Standby.Provider)
	if pOK {
		v.region(pk+".region", s.Primary)
	}
	if sOK {
		v.region(sk+".region", s.Standby)
	}
	if !pOK || !sOK {
		return
	}
	switch {
	case (s.Primary.Provider == Lab) != (s.Standby.Provider == Lab):
		if s.Standby.Provider == Lab {
			v.add(pk+".provider", "got %q, expected \"lab\" like the standby (the lab runs both sites locally)", string(s.Primary.Provider))
		} else {
			v.add(sk+".provider", "got %q, expected \"lab\" like the primary (the lab runs both sites locally)", string(s.Standby.Provider))
		}
	case s.Primary.Provider == s.Standby.Provider && s.Primary.Provider != Lab:
		other := DigitalOcean
		if s.Primary.Provider == DigitalOcean {
			other = Hetzner
		}
		v.add(sk+".provider", "got %q, the primary's provider too, expected %s: the standby must survive an outage of the primary's provider", string(s.Standby.Provider), other)
	}
}

func (v *validator) region(path string, s Site) {
	if s.Provider == Lab {
		return
	}
	regions := Regions(s.Provider)
	switch {
	case s.Region == "":
		v.add(path, "missing, expected a %s region: %s", s.Provider.Title(), strings.Join(regions, ", "))
	case !slices.Contains(regions, s.Region):
		v.add(path, "got %q, expected a %s region: %s", s.Region, s.Provider.Title(), strings.Join(regions, ", "))
	}
}

// size checks a server size against the site's provider and region. Sizes are
// ignored in the lab and when the site itself is already refused.
func (v *validator) size(path, size, site string, app bool) {
	s := v.c.Sites.Primary
	if site == "standby" {
		s = v.c.Sites.Standby
	}
	if s.Provider == Lab || (s.Provider != DigitalOcean && s.Provider != Hetzner) {
		return
	}
	// A refused site would make the size's error misleading (the user may have
	// meant the other provider); fix the site first.
	if v.e.under(KeySites + "." + site) {
		return
	}
	if !slices.Contains(Regions(s.Provider), s.Region) {
		s.Region = ""
	}
	if size == "" {
		v.add(path, "missing, expected %s", sizeHint(s.Provider, s.Region))
		return
	}
	if repl := Deprecated(s.Provider, size); repl != "" {
		v.add(path, "got %q, a server type Hetzner has deprecated, expected its replacement %q (changing the type resizes the server in place)", size, repl)
		return
	}
	if !slices.Contains(Sizes(s.Provider, s.Region), size) {
		if s.Provider == Hetzner && slices.Contains(Sizes(Hetzner, ""), size) {
			v.add(path, "got %q, not orderable in %s (EU-only type), expected %s", size, s.Region, sizeHint(s.Provider, s.Region))
			return
		}
		v.add(path, "got %q, expected %s", size, sizeHint(s.Provider, s.Region))
		return
	}
	if app && IsARM(s.Provider, size) {
		v.add(path, "got %q, an arm64 type, expected an x86-64 type: one release artifact runs on every app server of both sites", size)
	}
}

func (v *validator) admin() {
	a := v.c.Admin
	const k = KeyAdmin
	if len(a.SSHKeys) == 0 {
		v.add(k+".sshKeys", "missing, expected at least one SSH public key (an authorized_keys line such as \"ssh-ed25519 AAAA... you@laptop\")")
	}
	seen := map[string]int{}
	for i, line := range a.SSHKeys {
		path := fmt.Sprintf("%s.sshKeys[%d]", k, i)
		pub, _, options, rest, err := ssh.ParseAuthorizedKey([]byte(line))
		switch {
		case err != nil:
			v.add(path, "not an SSH public key (%v), expected an authorized_keys line such as \"ssh-ed25519 AAAA... you@laptop\"", err)
			continue
		case len(options) > 0:
			v.add(path, "has authorized_keys options %q, expected a plain public key (belay writes the options itself)", strings.Join(options, ","))
			continue
		case len(strings.TrimSpace(string(rest))) > 0:
			v.add(path, "holds more than one key, expected one key per list entry")
			continue
		}
		if pub.Type() == ssh.KeyAlgoDSA {
			v.add(path, "is an ssh-dss key, which OpenSSH refuses, expected an ed25519, ecdsa or RSA (>= 3072 bits) key")
			continue
		}
		if ck, ok := pub.(ssh.CryptoPublicKey); ok {
			if rk, ok := ck.CryptoPublicKey().(*rsa.PublicKey); ok && rk.N.BitLen() < 2048 {
				v.add(path, "is a %d-bit RSA key, expected at least 2048 bits (ed25519 is preferred)", rk.N.BitLen())
				continue
			}
		}
		fp := ssh.FingerprintSHA256(pub)
		if j, dup := seen[fp]; dup {
			v.add(path, "is the same key as %s.sshKeys[%d], expected each key once", k, j)
			continue
		}
		seen[fp] = i
	}
	const wideSSHBits = 8
	if len(a.SSHCidrs) == 0 {
		v.add(k+".sshCidrs", "missing, expected at least one network allowed to reach port 22, e.g. \"203.0.113.7/32\" (port 22 is closed to everyone else)")
	}
	for i, c := range a.SSHCidrs {
		path := fmt.Sprintf("%s.sshCidrs[%d]", k, i)
		p, err := netip.ParsePrefix(c)
		if err != nil {
			v.add(path, "got %q, expected a network in CIDR notation such as \"203.0.113.7/32\"", c)
			continue
		}
		if !p.Addr().Is4() {
			// The host firewalls and provider rules belay renders are IPv4; accepting
			// an IPv6 network here would only fail later, inside the renderer.
			v.add(path, "got %q, expected an IPv4 network (admin access over IPv6 is not supported yet)", c)
			continue
		}
		if p.Masked() != p {
			v.add(path, "got %q, expected the network address %q (host bits must be zero)", c, p.Masked().String())
			continue
		}
		// A typo such as /0 for /32 opens port 22 to the internet; wider than a
		// /8 must be meant, and said so.
		if p.Bits() < wideSSHBits && !a.AllowWideSSHCidrs {
			v.add(path, "got %q, wider than a /%d: expected a narrower network, or set %s.allowWideSshCidrs: true to open port 22 that widely", c, wideSSHBits, k)
		}
	}
	switch {
	case a.DeployUser == "":
		v.add(k+".deployUser", "empty, expected a Linux user name (default %q)", DefaultDeployUser)
	case !linuxUser.MatchString(a.DeployUser):
		v.add(k+".deployUser", "got %q, expected a Linux user name: lowercase letters, digits, '_' or '-', starting with a letter or '_', at most 32 characters", a.DeployUser)
	case slices.Contains(systemUsers, a.DeployUser):
		v.add(k+".deployUser", "got %q, a system account, expected a dedicated user such as %q", a.DeployUser, DefaultDeployUser)
	}
}

func (v *validator) reserved() []string {
	names := slices.Clone(builtinNames)
	for _, n := range plannerNames {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	return names
}

func (v *validator) apps() {
	c := v.c
	if len(c.Apps) == 0 {
		v.add(KeyApps, "empty, expected at least one app")
		return
	}
	names := map[string]int{}
	domains := map[string]string{}
	reserved := v.reserved()
	for i, a := range c.Apps {
		p := fmt.Sprintf("%s[%d]", KeyApps, i)
		switch {
		case a.Name == "":
			v.add(p+".name", "missing, expected a DNS label such as \"web\"")
		case len(a.Name) > maxAppNameLen || safe.Name(a.Name) != nil:
			v.add(p+".name", "got %q, expected a DNS label: lowercase letters, digits and '-', starting with a letter, at most %d characters (so %q fits 63)", a.Name, maxAppNameLen, "<name>-standby")
		case slices.Contains(reserved, a.Name):
			v.add(p+".name", "got %q, a name belay uses for its own servers (%s), expected another name", a.Name, strings.Join(reserved, ", "))
		default:
			if j, dup := names[a.Name]; dup {
				v.add(p+".name", "got %q, already the name of %s[%d], expected unique app names", a.Name, KeyApps, j)
			} else {
				names[a.Name] = i
			}
		}
		v.size(p+".size", a.Size, "primary", true)
		v.size(p+".standbySize", a.StandbySize, "standby", true)
		if a.Replicas < DefaultReplicas {
			v.add(p+".replicas", "%d, expected at least %d (an HA pair; omit it for %d)", a.Replicas, DefaultReplicas, DefaultReplicas)
		}
		switch {
		case a.Port < 1024 || a.Port > 65534:
			v.add(p+".port", "%d, expected 1024..65534 (port+1 is the canary's; ports below 1024 need root)", a.Port)
		}
		switch {
		case a.HealthPath == "":
			v.add(p+".healthPath", "empty, expected a path starting with \"/\" (default %q)", DefaultHealthPath)
		default:
			// The rule every entrance shares (inventory, roles): the path
			// reaches curl in shell commands on the hosts and keepalived's check.
			if err := safe.HealthPath(a.HealthPath); err != nil {
				v.add(p+".healthPath", "got %v", err)
			}
		}
		if len(a.Domains) == 0 {
			v.add(p+".domains", "missing, expected at least one host name inside belay:dns.zone, e.g. \"www.%s\"", zoneOr(c.DNS.Zone))
		}
		for j, d := range a.Domains {
			dp := fmt.Sprintf("%s.domains[%d]", p, j)
			if err := checkHostname(d, true); err != "" {
				v.add(dp, "got %q, expected a host name (%s)", d, err)
				continue
			}
			if z := c.DNS.Zone; z != "" && checkHostname(z, false) == "" && !inZone(d, z) {
				v.add(dp, "got %q, expected a host name inside belay:dns.zone %q", d, z)
				continue
			}
			if other, dup := domains[d]; dup {
				v.add(dp, "got %q, already used by %s, expected each domain once", d, other)
				continue
			}
			domains[d] = dp
		}
		v.tls(p, a)
		v.cells(p, a)
	}
	v.tlsCertificatesApps()
	v.cellDatabases()
}

func zoneOr(z string) string {
	if z == "" {
		return "example.com"
	}
	return z
}

// inZone reports whether host is zone itself or a name below it.
func inZone(host, zone string) bool {
	host = strings.TrimPrefix(host, "*.")
	return host == zone || strings.HasSuffix(host, "."+zone)
}

// checkHostname returns why name is not a valid lowercase host name ("" if it is).
// A leading "*." wildcard label is allowed when wildcard is set.
func checkHostname(name string, wildcard bool) string {
	if wildcard {
		name = strings.TrimPrefix(name, "*.")
	}
	if name == "" {
		return "empty"
	}
	if len(name) > 253 {
		return "longer than 253 characters"
	}
	labels := strings.Split(name, ".")
	if len(labels) < 2 {
		return "at least two labels such as example.com"
	}
	for _, l := range labels {
		if !dnsLabel.MatchString(l) {
			return fmt.Sprintf("label %q must be 1-63 lowercase letters, digits or '-', not starting or ending with '-'", l)
		}
	}
	return ""
}

func (v *validator) database() {
	db := v.c.Database
	const k = KeyDatabase
	v.size(k+".size", db.Size, "primary", false)
	v.size(k+".standbySize", db.StandbySize, "standby", false)
	v.size(k+".monitorSize", db.MonitorSize, "primary", false)
	if db.PostgresVersion != DefaultPostgresVersion {
		v.add(k+".postgresVersion", "%d, expected %d: the servers run Debian 12, which ships PostgreSQL %d (and pg_auto_failover and pgBackRest built for it)", db.PostgresVersion, DefaultPostgresVersion, DefaultPostgresVersion)
	}
	volumeSize(v, k+".volumeGb", db.VolumeGB)
	switch {
	case db.Name == "":
		v.add(k+".name", "empty, expected a database name (default %q)", DefaultDatabaseName)
	case !pgIdent.MatchString(db.Name):
		v.add(k+".name", "got %q, expected a lowercase PostgreSQL identifier: letters, digits and '_', starting with a letter or '_', at most 63 characters", db.Name)
	case slices.Contains([]string{"postgres", "template0", "template1", "pg_auto_failover"}, db.Name):
		v.add(k+".name", "got %q, a database PostgreSQL or pg_auto_failover uses itself, expected another name", db.Name)
	}
}

func (v *validator) backups() {
	b := v.c.Backups
	const k = KeyBackups
	switch b.FullEvery {
	case "daily", "weekly":
	case "":
		v.add(k+".fullEvery", "missing, expected daily or weekly")
	default:
		v.add(k+".fullEvery", "got %q, expected daily or weekly", b.FullEvery)
	}
	if b.RetentionDays < 1 {
		v.add(k+".retentionDays", "%d, expected a number of days to keep backups, at least 1", b.RetentionDays)
	}
	v.size(k+".repoSize", b.RepoSize, "standby", false)
	volumeSize(v, k+".volumeGb", b.VolumeGB)
	if b.ArchiveTimeoutSeconds < 10 || b.ArchiveTimeoutSeconds > 3600 {
		v.add(k+".archiveTimeoutSeconds", "%d, expected 10..3600 seconds (the most WAL the standby site may lag; each timeout ships a WAL segment)", b.ArchiveTimeoutSeconds)
	}
}

func (v *validator) dns() {
	d := v.c.DNS
	const k = KeyDNS
	v.provider(k+".provider", d.Provider)
	switch {
	case d.Zone == "":
		v.add(k+".zone", "missing, expected the DNS zone the apps' domains live in, e.g. \"example.com\"")
	default:
		if why := checkHostname(d.Zone, false); why != "" {
			v.add(k+".zone", "got %q, expected a domain name (%s)", d.Zone, why)
		}
	}
	if d.TTL < 30 || d.TTL > 86400 {
		v.add(k+".ttl", "%d, expected 30..86400 seconds", d.TTL)
	}
}

// doReserved are ranges DigitalOcean refuses for VPCs (used by its own services).
var doReserved = []netip.Prefix{
	netip.MustParsePrefix("10.244.0.0/16"),
	netip.MustParsePrefix("10.245.0.0/16"),
	netip.MustParsePrefix("10.246.0.0/24"),
}

var rfc1918 = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
}

func (v *validator) network() {
	n, s := v.c.Network, v.c.Sites
	const k = KeyNetwork
	check := func(field, cidr string, site Site) (netip.Prefix, bool) {
		path := k + "." + field
		p, err := netip.ParsePrefix(cidr)
		switch {
		case cidr == "":
			v.add(path, "empty, expected a private IPv4 network such as %q", DefaultPrimaryCIDR)
			return p, false
		case err != nil || !p.Addr().Is4():
			v.add(path, "got %q, expected a private IPv4 network in CIDR notation such as %q", cidr, DefaultPrimaryCIDR)
			return p, false
		case p.Masked() != p:
			v.add(path, "got %q, expected the network address %q (host bits must be zero)", cidr, p.Masked().String())
			return p, false
		case p.Bits() < 16 || p.Bits() > 28:
			v.add(path, "got %q, expected a prefix length between /16 and /28 (the providers' limits)", cidr)
			return p, false
		}
		private := false
		for _, r := range rfc1918 {
			if r.Overlaps(p) && r.Bits() <= p.Bits() {
				private = true
			}
		}
		if !private {
			v.add(path, "got %q, expected a private (RFC 1918) network inside 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16", cidr)
			return p, false
		}
		if site.Provider == DigitalOcean && p.Bits() > 24 {
			v.add(path, "got %q, expected a prefix length between /16 and /24 (DigitalOcean VPC ranges)", cidr)
			return p, false
		}
		if site.Provider == DigitalOcean {
			for _, r := range doReserved {
				if r.Overlaps(p) {
					v.add(path, "got %q, which overlaps %s that DigitalOcean reserves, expected another private network", cidr, r)
					return p, false
				}
			}
		}
		return p, true
	}
	p, pOK := check("primaryCidr", n.PrimaryCIDR, s.Primary)
	q, sOK := check("standbyCidr", n.StandbyCIDR, s.Standby)
	if pOK && sOK && p.Overlaps(q) {
		v.add(k+".standbyCidr", "got %q, which overlaps primaryCidr %q, expected a separate network (the sites are joined by a tunnel)", n.StandbyCIDR, n.PrimaryCIDR)
	}
}

func (v *validator) deploy() {
	d := v.c.Deploy
	const k = KeyDeploy
	if d.KeepReleases < 2 || d.KeepReleases > 100 {
		v.add(k+".keepReleases", "%d, expected 2..100 (at least the current release and one to roll back to)", d.KeepReleases)
	}
	if !nginxVarName.MatchString(d.ShopParam) {
		v.add(k+".shopParam", "got %q, expected 1-64 letters, digits or '_' (nginx reads it as $arg_<name>)", d.ShopParam)
	}
	if !headerName.MatchString(d.ShopHeader) {
		v.add(k+".shopHeader", "got %q, expected an HTTP header name of 1-64 letters, digits or '-' (nginx drops headers with '_')", d.ShopHeader)
	}
	if !nginxVarName.MatchString(d.ShopCookie) {
		v.add(k+".shopCookie", "got %q, expected 1-64 letters, digits or '_' (nginx reads it as $cookie_<name>)", d.ShopCookie)
	}
}

var sha256Hex = regexp.MustCompile(`^[0-9a-f]{64}$`)

// agent checks belay:agent. Cloud servers cannot move their floating IP without
// the belay binary, so a cloud stack must say where to get it; the lab copies it.
func (v *validator) agent() {
	a := v.c.Agent
	const k = KeyAgent
	lab := v.c.Sites.Primary.Provider == Lab
	if lab && a.URL == "" && a.SHA256 == "" {
		return
	}
	if a.URL == "" {
		v.add(k+".url", "missing, expected the https URL of the linux/amd64 belay binary servers download at first boot (keepalived runs `belay vip claim` on failover)")
	} else if u, err := url.Parse(a.URL); err != nil || u.Scheme != "https" || u.Host == "" {
		v.add(k+".url", "got %q, expected an https URL", a.URL)
	}
	if !sha256Hex.MatchString(a.SHA256) {
		v.add(k+".sha256", "got %q, expected the binary's SHA-256 as 64 lowercase hex digits (sha256sum belay)", a.SHA256)
	}
}

func (v *validator) secrets() {
	seed := v.c.HostKeySeed
	switch {
	case seed == "":
		v.add(KeyHostKeySeed, "missing, expected %s", keyHelp[KeyHostKeySeed])
	case len(strings.TrimSpace(seed)) < MinHostKeySeedLen:
		// Never echo the secret itself.
		v.add(KeyHostKeySeed, "%d characters, expected at least %d (pulumi config set --secret belay:hostKeySeed \"$(openssl rand -hex 32)\")", len(strings.TrimSpace(seed)), MinHostKeySeedLen)
	}
	t := v.c.HostAPITokens
	for _, f := range []struct{ name, tok string }{{"digitalocean", t.DigitalOcean}, {"hetzner", t.Hetzner}} {
		if f.tok != "" && strings.ContainsAny(f.tok, " \t\r\n\"'") {
			v.add(KeyHostAPITokens+"."+f.name, "contains whitespace or quotes, expected the API token alone")
		}
	}
}

// plan runs the topology's address plan once the inputs it reads are valid, so an
// overflow ("use a larger network") is a config error, not a failed `pulumi up`.
func (v *validator) plan() {
	if planCheck == nil {
		return
	}
	for _, p := range []string{KeyNetwork, KeyApps, KeyDatabase, KeyBackups, KeySites} {
		if v.e.under(p) {
			return
		}
	}
	if err := planCheck(v.c); err != nil {
		v.e.list = append(v.e.list, fmt.Errorf("%w; expected every server to fit the address plan", err))
	}
}

// volumeSize checks a data volume size: both providers take 10 GB .. 10 TB
// (Hetzner's minimum is 10 GB, DigitalOcean's maximum 16 TiB).
func volumeSize(v *validator, path string, gb int) {
	if gb < 10 || gb > 10240 {
		v.add(path, "%d, expected a data volume size in GB between 10 and 10240", gb)
	}
}
