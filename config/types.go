// Package config is belay's typed stack configuration: the `belay:*` keys a user
// writes in stacks/Pulumi.<stack>.yaml, parsed and validated before any resource
// is registered. It has no Pulumi types so the lab and the CLI can use it too.
package config

// Namespace is the Pulumi config namespace of every belay key.
const Namespace = "belay"

// Provider names a cloud belay can provision on.
type Provider string

// The providers belay supports.
const (
	DigitalOcean Provider = "digitalocean"
	Hetzner      Provider = "hetzner"
	// Lab is the local systemd-nspawn lab; valid only for the lab, never for `pulumi up`.
	Lab Provider = "lab"
)

// Config is the whole validated `belay:*` configuration of one stack.
type Config struct {
	Sites    Sites    `json:"sites"`
	Admin    Admin    `json:"admin"`
	Apps     []App    `json:"apps"`
	Database Database `json:"database"`
	Backups  Backups  `json:"backups"`
	DNS      DNS      `json:"dns"`
	Network  Network  `json:"network"`
	Deploy   Deploy   `json:"deploy"`
	Agent    Agent    `json:"agent"`
	// HostKeySeed derives every server's pinned SSH host key (belay:hostKeySeed, a secret).
	HostKeySeed string `json:"-"`
	// HostAPITokens are the optional provider tokens for app servers (belay:hostApiTokens, a secret).
	HostAPITokens HostAPITokens `json:"-"`
	// TLSCertificates are the custom certificates of apps with tls.mode custom, by app (belay:tlsCertificates, a secret).
	TLSCertificates map[string]TLSCertificate `json:"-"`
}

// Sites holds the two sites: the live one and the standby at another provider.
type Sites struct {
	Primary Site `json:"primary"`
	Standby Site `json:"standby"`
}

// Site is one provider region.
type Site struct {
	Provider Provider `json:"provider"`
	Region   string   `json:"region"`
}

// Admin says who may log in over SSH and from where.
type Admin struct {
	SSHKeys  []string `json:"sshKeys"`
	SSHCidrs []string `json:"sshCidrs"`
	// AllowWideSSHCidrs acknowledges sshCidrs wider than a /8 (0.0.0.0/0
	// included): port 22 then faces a large part of the internet.
	AllowWideSSHCidrs bool `json:"allowWideSshCidrs,omitempty"`
	// DeployUser is the non-root user deploys log in as (default "deploy").
	DeployUser string `json:"deployUser"`
}

// App is one web app: an HA pair (or larger VRRP group) on the primary site and
// one standby server on the standby site.
type App struct {
	Name        string   `json:"name"`
	Size        string   `json:"size"`
	StandbySize string   `json:"standbySize"`
	Replicas    int      `json:"replicas"`
	Port        int      `json:"port"`
	HealthPath  string   `json:"healthPath"`
	Domains     []string `json:"domains"`
	// TLS is how nginx serves HTTPS for Domains (default: ACME, Let's Encrypt).
	TLS TLS `json:"tls"`
	// Cells, when set, split the app into independent cells behind a router
	// tier (see cells.go): the app then has no servers of its own.
	Cells []Cell `json:"cells,omitempty"`
	// Router is the router tier of an app with cells (defaults applied when
	// the app declares cells and leaves it out); nil for an app without cells.
	Router *Router `json:"router,omitempty"`
}

// Database is the dedicated PostgreSQL pair (primary + replica + monitor).
type Database struct {
	Size            string `json:"size"`
	StandbySize     string `json:"standbySize"`
	MonitorSize     string `json:"monitorSize"`
	PostgresVersion int    `json:"postgresVersion"`
	Synchronous     bool   `json:"synchronous"`
	// Name is the application database created on the primary (default "app").
	Name string `json:"name"`
	// VolumeGB is the size of the data volume of each PostgreSQL data node and
	// of the standby (default 20). Growing it resizes the volume in place.
	VolumeGB int `json:"volumeGb"`
}

// Backups is the pgBackRest/restic schedule and retention.
type Backups struct {
	// FullEvery is how often a full backup runs: "daily" or "weekly" (diffs daily in between).
	FullEvery     string `json:"fullEvery"`
	RetentionDays int    `json:"retentionDays"`
	// RepoSize is the size of the backup repository server on the standby site.
	RepoSize string `json:"repoSize"`
	// ArchiveTimeoutSeconds bounds WAL archive lag, and so the cross-site RPO (default 30).
	ArchiveTimeoutSeconds int `json:"archiveTimeoutSeconds"`
	// VolumeGB is the size of the backup host's data volume holding the
	// pgBackRest and restic repositories (default 100).
	VolumeGB int `json:"volumeGb"`
}

// DNS is where the apps' domains live.
type DNS struct {
	Provider Provider `json:"provider"`
	Zone     string   `json:"zone"`
	TTL      int      `json:"ttl"`
}

// Network is the private address plan of the two sites.
type Network struct {
	PrimaryCIDR string `json:"primaryCidr"`
	StandbyCIDR string `json:"standbyCidr"`
}

// Agent is where cloud servers fetch the belay binary at first boot: keepalived's
// notify runs `belay vip claim` and DigitalOcean app servers run `belay vip peers`.
// The lab copies the running binary into its image instead.
type Agent struct {
	// URL is an https URL of the linux/amd64 belay binary (e.g. a release asset).
	URL string `json:"url"`
	// SHA256 is its hex checksum; the download is refused unless it matches.
	SHA256 string `json:"sha256"`
}

// Deploy holds the deployer's defaults for this stack.
type Deploy struct {
	// KeepReleases is how many releases stay on disk per app (default 5).
	KeepReleases int `json:"keepReleases"`
	// ShopParam is the query parameter naming a shop for the whitelist canary (default "shop").
	ShopParam string `json:"shopParam"`
	// ShopHeader is the header naming a shop (default "X-Shop-Domain").
	ShopHeader string `json:"shopHeader"`
	// ShopCookie is the cookie naming a shop (default "shop").
	ShopCookie string `json:"shopCookie"`
}

// HostAPITokens are provider API tokens placed on app servers (belay:hostApiTokens, a
// secret) so keepalived's notify can move the floating IP and, on DigitalOcean, find
// VRRP peers. Scope them to the least the host needs: they sit on internet-facing servers.
type HostAPITokens struct {
	DigitalOcean string `json:"digitalocean"`
	Hetzner      string `json:"hetzner"`
}

// Token returns the token for provider p ("" if none was configured).
func (t HostAPITokens) Token(p Provider) string {
	switch p {
	case DigitalOcean:
		return t.DigitalOcean
	case Hetzner:
		return t.Hetzner
	}
	return ""
}
