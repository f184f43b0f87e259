// Package roles renders the cloud-init user data of every belay server role.
// It is pure Go with no Pulumi types: the Pulumi components and the lab feed it the
// same Spec and get the same bytes, so what the lab proves is what a cloud boots.
// Everything provider-specific (interface names, how the VIP moves, addresses)
// arrives as a parameter; nothing here assumes a cloud.
package roles

import (
	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/seedkeys"
)

// Spec is everything one server's user data depends on.
type Spec struct {
	Stack    string
	Hostname string
	Site     inventory.SiteName
	Roles    []inventory.Role

	// DeployUser is the non-root login for deploys; AdminKeys are its authorized keys.
	DeployUser string
	AdminKeys  []string
	// HostKey is the pinned SSH host key (its private half makes this user data secret).
	HostKey seedkeys.Key
	// ConvergeKey is the public converge key ("ed25519 <base64>", see
	// seedkeys.ConvergePublic) that `belay host converge` verifies bundles
	// with; "" renders no converge helper access.
	ConvergeKey string
	// SSHFrom are the CIDRs allowed to reach port 22 (admin CIDRs plus the peer site's hosts).
	SSHFrom []string

	Net Net

	// InstallPackages installs the role packages at first boot (a cloud's stock
	// Debian image); false where the image already carries them (the lab image).
	InstallPackages bool
	// Agent is where to download the belay binary at first boot (nil where the image carries it).
	Agent *Agent
	// DataVolume is the block device holding the host's state; nil keeps it on
	// the root disk (the lab). See datavolume.go.
	DataVolume *DataVolume

	// Exactly the parts for this host's roles are set.
	App       *App
	DB        *DB
	Backup    *Backup
	StandbyDB *StandbyDB
	Router    *Router
}

// Agent is a download of the belay binary, refused unless SHA256 matches.
type Agent struct {
	URL    string
	SHA256 string
}

// Net is the provider-specific network layout, passed in by the caller.
type Net struct {
	// PrivateInterface carries server-to-server traffic ("eth1" on DO, "enp7s0" on Hetzner, "host0" in the lab).
	PrivateInterface string
	// PublicInterface faces the internet ("eth0"; equal to PrivateInterface in the lab).
	PublicInterface string
	// PrivateAddress is this host's planned private address, or "" where the provider assigns it (DO).
	PrivateAddress string
	// SiteCIDR is this site's private network; PeerSiteCIDR the other site's (for host firewalls).
	SiteCIDR     string
	PeerSiteCIDR string
}

// App configures an app server: nginx in front of the app, systemd units for
// releases, and keepalived for the VRRP group (primary site only).
type App struct {
	Name       string
	Port       int
	HealthPath string
	Domains    []string
	// Standby marks a standby-site app server: no keepalived, app not started until a site switch.
	Standby bool
	// Cell is the cell this server belongs to when the app has cells ("" otherwise):
	// its deploy user may run the app's shop move hooks (MoveHookCommands).
	Cell string
	// VRRP is nil on standby servers.
	VRRP *VRRP
	// DatabaseURL is the app's libpq URL (multi-host, target_session_attrs=read-write); secret.
	DatabaseURL string
	// ResticRepo and ResticPassword back up /srv/<app>/shared to the repository host (sftp); secret.
	ResticRepo     string
	ResticPassword string
	// BackupKey is the SSH client key used to reach the repository host (secret).
	BackupKey seedkeys.Key
	// BackupCert is BackupKey's user certificate from the restic CA, valid for
	// the app's restic user only (ResticUser); the repository host trusts the CA.
	BackupCert string
	// RepoHostKey pins the repository host's key for that connection.
	RepoHostKey string
	// TLS serves HTTPS for Domains (nil: plain HTTP on port 80 only). See tls.go.
	TLS *TLS
}

// VRRP is one app group's keepalived setup (VRRPv3, unicast, no preemption).
type VRRP struct {
	RouterID int
	Priority int
	// Peers are the other group members' private addresses. Empty with PeerDiscovery.
	Peers []string
	// PeerDiscovery asks the provider API at boot for the group's members (DO cannot pin private addresses).
	PeerDiscovery *PeerDiscovery
	// VIP is the address keepalived itself adds to VIPInterface on MASTER ("" when the
	// provider routes the floating IP without an interface address, e.g. DO's anchor IP).
	VIP          string
	VIPInterface string
	// ClaimCommand runs on becoming MASTER to move the provider's floating IP ("" in the lab).
	ClaimCommand string
	// ClaimToken is the provider API token ClaimCommand uses, written to ClaimTokenFile (secret; "" in the lab).
	ClaimToken string
	// AuthPass authenticates adverts (secret). VRRPv3 has no authentication
	// (keepalived ignores it), so it is not rendered; adverts are limited to the
	// unicast peers (check_unicast_src) and the host firewall instead.
	AuthPass string
	// AdvertInterval in seconds; sub-second needs VRRPv3 (default 0.1 → failover well under 1 s).
	AdvertInterval float64
}

// PeerDiscovery names the provider API lookup that finds the VRRP group at boot.
type PeerDiscovery struct {
	Provider string
	// Tag (DO) or label selector (Hetzner) naming the group.
	Selector string
	// TokenFile holds a read-scoped API token on the host (written from secret user data).
	Token string
}

// DB configures a PostgreSQL data node or the HA monitor (pg_auto_failover).
type DB struct {
	// Monitor is true on the pg_auto_failover monitor, false on data nodes.
	Monitor         bool
	PostgresVersion int
	Name            string // application database
	Port            int
	// MonitorAddress is the monitor's private address (data nodes register there).
	MonitorAddress string
	// AllowFrom are the addresses/CIDRs allowed to reach 5432 (app servers, peer DB node, monitor).
	AllowFrom   []string
	Synchronous bool
	// AppUser is the app's PostgreSQL role, owner of database Name ("" = "app").
	AppUser string
	// ArchiveTimeout is archive_timeout in seconds: the most WAL the archive (and so
	// the standby site) lags behind an idle primary (0 = 30).
	ArchiveTimeout int
	// Passwords (secret): the app's role, pg_auto_failover's replication and monitor users.
	AppPassword         string
	ReplicationPassword string
	MonitorPassword     string
	// Backup is how this node archives WAL to the repository host (nil on the monitor).
	Backup *BackupClient
	// Tenants are the cells' own databases and roles (dbtenants.go).
	Tenants []DBTenant
	// Formation is the pg_auto_failover formation of a dedicated cell's data
	// node ("" for the stack's pair, in formation "default"): the setup
	// creates it on the monitor before registering the node.
	Formation string // Formations are, on the monitor, the dedicated cells' formations: its
	// sudoers allow belay's formation queries for each (hostcmd.FormationCommands).
	Formations []string
	// MovedCells are, on the stack's data nodes, the databases of cells that
	// have their own pair now (config.CellDatabase): belay db copy reads and
	// dumps them here (hostcmd.CellDBSourceVerbs in the ops sudoers).
	MovedCells []string
}

// BackupClient is a DB node's side of pgBackRest: archive-push to the repo host over SSH.
type BackupClient struct {
	RepoHost    string // repository host's address
	RepoHostKey string // pinned host key of the repository host
	Stanza      string
	// ClientKey is the postgres user's SSH key to the repo host (secret); the repo host
	// uses RepoKey's public half to reach back for backups.
	ClientKey seedkeys.Key
	RepoKey   string // public key the repository host connects with
}

// Backup configures the repository host: pgBackRest repo, restic (sftp) repo,
// scheduled backups, and the restore-verification job.
type Backup struct {
	Stanza string
	// DBHosts are the data nodes' addresses with their pinned host keys.
	DBHosts []KnownHost
	// ClientKeys are the pgBackRest clients' public keys (data nodes, standby DB):
	// allowed to run the pgBackRest remote only.
	ClientKeys []string
	// ResticApps are the apps with a restic repository here: one chrooted sftp
	// user each, created by belay-restic-maintain from a one-line-per-app list,
	// so the user data grows by one short line per app.
	ResticApps []string
	// ResticCA is the public key of the stack's restic user CA: an app server
	// logs in with a certificate whose only principal is its app's user.
	ResticCA string
	// RepoKey is the repository's SSH key to reach the DB nodes (secret).
	RepoKey       seedkeys.Key
	FullEvery     string // daily | weekly
	RetentionDays int
	// ResticPassword encrypts the restic repositories (secret).
	ResticPassword  string
	PostgresVersion int
	// Cells are the dedicated cells' PostgreSQL pairs, one stanza each in
	// the same repository (backup_stanzas.go). Per cell the user data grows
	// by its stanza's config section, list line, pinned host keys and client
	// keys only: the scripts and units are shared by every stanza.
	Cells []BackupStanza
}

// BackupStanza is one more PostgreSQL pair backed up to the repository: a
// dedicated cell's, in its own stanza.
type BackupStanza struct {
	Stanza string
	// DBHosts are the pair's data nodes with their pinned host keys.
	DBHosts []KnownHost
	// ClientKeys are the pair's pgBackRest client keys: each may start the
	// repository's remote for this stanza only.
	ClientKeys []string
}

// KnownHost is a host address with its pinned SSH host key.
type KnownHost struct {
	Name    string
	Address string
	HostKey string
}

// StandbyDB configures the standby-site PostgreSQL: restored from the pgBackRest
// archive and kept replaying it (restore_command), promoted by a site switch.
type StandbyDB struct {
	PostgresVersion int
	Name            string
	Port            int
	Stanza          string
	RepoHost        string
	RepoHostKey     string
	ClientKey       seedkeys.Key
	AllowFrom       []string
	AppPassword     string
	// AppUser is the app's PostgreSQL role ("" = "app"); it arrives with the restored backup.
	AppUser string
	// Tenants are the cells' databases, open to the standby cells' servers
	// (their passwords are not needed here: the roles arrive with the backup).
	Tenants []DBTenant
}
