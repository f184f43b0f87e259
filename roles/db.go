package roles

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/template"

	"github.com/belay-sh/belay/internal/shq"
	"github.com/belay-sh/belay/inventory"
)

// Names and paths of the PostgreSQL roles that the deployer, the drills and
// `belay failover` rely on. docs/ha-engine.md explains the choices.
const (
	// PGAutoFailoverUnit runs `pg_autoctl run` (keeper on data nodes, monitor on db-monitor).
	PGAutoFailoverUnit = "pgautofailover.service"
	// DBSetupScript creates the pg_auto_failover node at first boot (cloud-init runcmd).
	DBSetupScript = "/usr/local/sbin/belay-db-setup"
	// DefaultAppUser is the app's role when the Spec names none.
	DefaultAppUser = "app"
	// DefaultArchiveTimeout is archive_timeout in seconds when the Spec sets none.
	DefaultArchiveTimeout = 30

	// pgConfDir holds belay's PostgreSQL fragments, outside PGDATA so basebackup,
	// pg_rewind and pgBackRest restores never carry one host's file to another.
	pgConfDir = "/etc/belay/postgresql"
	// belayPGConf is included last from postgresql.conf (include_if_exists).
	belayPGConf = pgConfDir + "/belay.conf"
	// listenConf holds listen_addresses where it is known only at boot (standby DB).
	listenConf = pgConfDir + "/listen.conf"
	// hbaBlock is belay's part of pg_hba.conf, spliced in between markers.
	hbaBlock     = pgConfDir + "/pg_hba.belay.conf"
	bootstrapSQL = pgConfDir + "/bootstrap.sql"
	// dbRemoteWrapper is the forced command of the repository host's key on data nodes.
	dbRemoteWrapper = "/usr/local/bin/belay-db-remote"
	pgHome          = "/var/lib/postgresql"
	pgSocketDir     = "/var/run/postgresql"
	pgSpoolPath     = "/var/spool/pgbackrest"
	pgUnitPath      = "/etc/systemd/system/" + PGAutoFailoverUnit

	// The pg_auto_failover role names (fixed by pg_autoctl).
	pgafNodeUser       = "autoctl_node"
	pgafReplicatorUser = "pgautofailover_replicator"
	pgafMonitorDB      = "pg_auto_failover"
)

// Failover tuning (measured: see docs/ha-engine.md). The monitor declares a
// primary dead after unhealthyTimeoutMs without a keeper report and a failed
// health check; it then gives a possibly-alive, partitioned primary
// primaryDemoteTimeoutMs to fence itself before the standby takes writes.
//
// The keeper of a partitioned primary fences (stops PostgreSQL) once neither the
// monitor nor the standby was heard for networkPartitionTimeoutS. pg_auto_failover
// 2.0 only records "standby heard" while the monitor is unreachable and a
// walsender is still listed, so the walsender must outlive the first failed
// monitor call (2 s connect timeout): walSenderTimeout 4 s. Fencing then completes
// within walSenderTimeout + networkPartitionTimeoutS + one keeper loop (~3 s) +
// a fast shutdown ≈ 9-10 s, before unhealthyTimeoutMs + primaryDemoteTimeoutMs
// (11 s, plus the monitor's own ~2 s of state changes).
const (
	healthCheckPeriodMs      = 1000
	healthCheckTimeoutMs     = 1000
	healthCheckMaxRetries    = 1
	healthCheckRetryDelayMs  = 500
	unhealthyTimeoutMs       = 4000
	primaryDemoteTimeoutMs   = 7000
	networkPartitionTimeoutS = 1
	walSenderTimeout         = "4s"
	walReceiverTimeout       = "5s"
)

func init() {
	register(inventory.RoleDB, dbContributor)
	register(inventory.RoleDBMonitor, dbContributor)
}

// pgIdentRE is what belay accepts as a database or role name: no quoting needed anywhere.
var pgIdentRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// reservedRoles may not be the app's role: pg_auto_failover and PostgreSQL own them.
var reservedRoles = map[string]bool{"postgres": true, pgafNodeUser: true, pgafReplicatorUser: true, "pgautofailover_monitor": true, "autoctl": true}

func dbAppUser(u string) string {
	if u == "" {
		return DefaultAppUser
	}
	return u
}

func dbArchiveTimeout(t int) int {
	if t == 0 {
		return DefaultArchiveTimeout
	}
	return t
}

// validateDB checks the DB section of a data node or the monitor.
func validateDB(s *Spec) error {
	d := s.DB
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf("roles: "+format, a...)) }
	isDB, isMon := hasRole(s, inventory.RoleDB), hasRole(s, inventory.RoleDBMonitor)
	switch {
	case isDB && isMon:
		bad("Spec.Roles: db and db-monitor on one host, expected one of them (each runs its own PostgreSQL on Spec.DB.Port)")
	case isMon && !d.Monitor:
		bad("Spec.DB.Monitor: false, expected true for role db-monitor")
	case isDB && d.Monitor:
		bad("Spec.DB.Monitor: true, expected false for role db")
	}
	if hasRole(s, inventory.RoleStandbyDB) {
		bad("Spec.Roles: %s with standby-db on one host, expected one PostgreSQL role per host", map[bool]string{true: "db-monitor", false: "db"}[d.Monitor])
	}
	if d.PostgresVersion < 13 || d.PostgresVersion > 99 {
		bad("Spec.DB.PostgresVersion: %d, expected a PostgreSQL major version supported by pg_auto_failover 2.0 (13 or later, e.g. 15)", d.PostgresVersion)
	}
	if d.Port < 1 || d.Port > 65535 {
		bad("Spec.DB.Port: %d, expected 1-65535", d.Port)
	}
	checkAllowFrom(bad, "Spec.DB.AllowFrom", d.AllowFrom)
	checkSecret(bad, "Spec.DB.MonitorPassword", d.MonitorPassword)
	if d.ArchiveTimeout != 0 && (d.ArchiveTimeout < 10 || d.ArchiveTimeout > 3600) {
		bad("Spec.DB.ArchiveTimeout: %d, expected 10-3600 seconds (0 = %d)", d.ArchiveTimeout, DefaultArchiveTimeout)
	}
	if d.Monitor {
		if d.Backup != nil {
			bad("Spec.DB.Backup: set on the monitor, expected nil (the monitor holds no application data)")
		}
		return errors.Join(errs...)
	}
	if !pgIdentRE.MatchString(d.Name) || d.Name == "postgres" || d.Name == pgafMonitorDB || strings.HasPrefix(d.Name, "template") {
		bad("Spec.DB.Name: %q, expected a database name (a-z, 0-9, _; not postgres, template*, %s)", d.Name, pgafMonitorDB)
	}
	if u := dbAppUser(d.AppUser); !pgIdentRE.MatchString(u) || reservedRoles[u] || strings.HasPrefix(u, "pg_") {
		bad("Spec.DB.AppUser: %q, expected a role name (a-z, 0-9, _; not postgres, pg_*, or a pg_auto_failover role)", d.AppUser)
	}
	if a, err := netip.ParseAddr(d.MonitorAddress); err != nil || !a.Is4() {
		bad("Spec.DB.MonitorAddress: %q, expected the monitor's private IPv4 address", d.MonitorAddress)
	} else if a.String() == s.Net.PrivateAddress {
		bad("Spec.DB.MonitorAddress: %s is this host's own address, expected the monitor's", a)
	}
	checkSecret(bad, "Spec.DB.AppPassword", d.AppPassword)
	checkSecret(bad, "Spec.DB.ReplicationPassword", d.ReplicationPassword)
	validateTenants(d, "Spec.DB", bad)
	if d.Backup == nil {
		bad("Spec.DB.Backup: nil, expected the pgBackRest client settings (WAL archiving) on a data node")
	} else {
		b := d.Backup
		checkRepoHost(bad, "Spec.DB.Backup", b.RepoHost, b.RepoHostKey)
		if !stanzaRE.MatchString(b.Stanza) {
			bad("Spec.DB.Backup.Stanza: %q, expected a pgBackRest stanza name (A-Z, a-z, 0-9, _, -)", b.Stanza)
		}
		if err := checkPrivateKey(b.ClientKey.PrivatePEM, b.ClientKey.Public); err != nil {
			bad("Spec.DB.Backup.ClientKey: %v", err)
		}
		if err := checkPublicKey(b.RepoKey); err != nil {
			bad("Spec.DB.Backup.RepoKey: %v", err)
		}
	}
	return errors.Join(errs...)
}

// checkAllowFrom refuses what would put PostgreSQL on a public network: every
// source must be a private (RFC 1918) IPv4 address or network.
func checkAllowFrom(bad func(string, ...any), field string, allow []string) {
	if len(allow) == 0 {
		bad("%s: empty, expected the private addresses/CIDRs of PostgreSQL's clients", field)
	}
	for i, a := range allow {
		p, err := parseSource(a)
		switch {
		case err != nil:
			bad("%s[%d]: %v", field, i, err)
		case p.Bits() < 8 || !p.Addr().IsPrivate():
			bad("%s[%d]: %q, expected a private (RFC 1918) address or network: PostgreSQL never faces a public network", field, i, a)
		}
	}
}

func checkSecret(bad func(string, ...any), field, v string) {
	if len(v) < 16 || strings.ContainsAny(v, "\n\r\x00") {
		bad("%s: expected a single-line password of at least 16 characters (seed-derived)", field)
	}
}

func checkRepoHost(bad func(string, ...any), field, host, key string) {
	if a, err := netip.ParseAddr(host); err != nil || !a.Is4() {
		if !hostnameRE.MatchString(host) && !domainRE.MatchString(host) {
			bad("%s.RepoHost: %q, expected the repository host's IPv4 address or host name", field, host)
		}
	}
	if err := checkPublicKey(key); err != nil {
		bad("%s.RepoHostKey: %v", field, err)
	}
}

// dbContributor renders a pg_auto_failover data node or the monitor.
func dbContributor(s *Spec, c *CloudConfig) error {
	if s.DB == nil {
		return errors.New("roles: Spec.DB: nil, expected it for roles db and db-monitor")
	}
	if err := validateDB(s); err != nil {
		return err
	}
	d := s.DB
	setup, err := dbSetupScript(s)
	if err != nil {
		return err
	}
	reseed, err := dbReseedScript(s)
	if err != nil {
		return err
	}
	c.WriteFiles = append(c.WriteFiles,
		File{Path: belayPGConf, Content: dbPostgresConf(s), Owner: "root:root", Permissions: "0644"},
		File{Path: hbaBlock, Content: dbHBABlock(s), Owner: "root:root", Permissions: "0644"},
		File{Path: bootstrapSQL, Content: dbBootstrapSQL(d), Owner: "postgres:postgres", Permissions: "0600", Defer: true},
		File{Path: DBSetupScript, Content: setup, Owner: "root:root", Permissions: "0755"},
		File{Path: DBReseedScript, Content: reseed, Owner: "root:root", Permissions: "0755"},
		File{Path: pgUnitPath, Content: pgAutoFailoverUnit(s), Owner: "root:root", Permissions: "0644"},
	)
	if !d.Monitor {
		b := d.Backup
		c.WriteFiles = append(c.WriteFiles,
			// libpq reads passwords from here: none on a command line, in the
			// environment or in pg_autoctl.cfg.
			File{Path: pgHome + "/.pgpass", Content: dbPgpass(d), Owner: "postgres:postgres", Permissions: "0600", Defer: true},
			File{Path: "/etc/pgbackrest/pgbackrest.conf", Content: pgBackRestClientConf(b.Stanza, b.RepoHost, PGDataPath(d.PostgresVersion), d.Port), Owner: "root:postgres", Permissions: "0640", Defer: true},
			File{Path: dbRemoteWrapper, Content: dbRemoteWrapperScript(b.Stanza, PGDataPath(d.PostgresVersion)), Owner: "root:root", Permissions: "0755"},
			// Root-owned: the postgres user cannot widen who may log in as it.
			File{Path: pgHome + "/.ssh/authorized_keys", Content: dbAuthorizedKeys(b.RepoKey), Owner: "root:root", Permissions: "0644"},
		)
		c.WriteFiles = append(c.WriteFiles, pgSSHClientFiles(b.RepoHost, b.RepoHostKey, b.ClientKey.PrivatePEM)...)
	}
	c.Runcmd = append(c.Runcmd, []string{DBSetupScript})
	return nil
}

// pgSSHClientFiles is the postgres user's SSH client setup for reaching the
// repository host: its seed-derived key and the pinned host key, nothing else.
func pgSSHClientFiles(repoHost, repoHostKey, clientKeyPEM string) []File {
	return []File{
		File{Path: pgHome + "/.ssh/id_ed25519", Content: clientKeyPEM, Owner: "postgres:postgres", Permissions: "0600", Defer: true},
		File{Path: pgHome + "/.ssh/known_hosts", Content: repoHost + " " + strings.TrimSpace(repoHostKey) + "\n", Owner: "root:root", Permissions: "0644"},
		File{Path: pgHome + "/.ssh/config", Content: pgSSHConfig, Owner: "root:root", Permissions: "0644"},
	}
}

const pgSSHConfig = `# Rendered by belay: pgBackRest reaches the repository host with the pinned host key only.
Host *
    IdentityFile ~/.ssh/id_ed25519
    IdentitiesOnly yes
    StrictHostKeyChecking yes
    UserKnownHostsFile ~/.ssh/known_hosts
    GlobalKnownHostsFile /dev/null
    BatchMode yes
    ServerAliveInterval 15
    ServerAliveCountMax 4
    ConnectTimeout 10
`

// pgBackRestClientConf is a PostgreSQL host's pgBackRest config: the repository
// is remote (repo1-host), WAL is pushed asynchronously from a local spool.
func pgBackRestClientConf(stanza, repoHost, pgdata string, port int) string {
	return `# Rendered by belay: this host's pgBackRest client; the repository is ` + repoHost + `.
[global]
repo1-host=` + repoHost + `
repo1-host-user=` + PgBackRestUser + `
# archive_command returns as soon as the segment is in the local spool; a
# background process ships the queue in parallel, so a slow cross-site link
# never stalls commits.
archive-async=y
spool-path=` + pgSpoolPath + `
# A repository outage may not fill the disk: past this size WAL is dropped
# from the queue (PostgreSQL keeps running; the archive gets a gap and the next
# backup closes it).
archive-push-queue-max=8GiB
archive-get-queue-max=1GiB
process-max=2
compress-type=zst
log-level-console=warn
log-level-file=info
log-path=/var/log/pgbackrest

[` + stanza + `]
pg1-path=` + pgdata + `
pg1-port=` + strconv.Itoa(port) + `
pg1-socket-path=` + pgSocketDir + `
`
}

// dbPostgresConf is belay's postgresql.conf fragment, included last so it wins
// over pg_auto_failover's postgresql-auto-failover.conf (included first). It
// never sets what pg_auto_failover manages: synchronous_standby_names and
// primary_conninfo (ALTER SYSTEM / its standby file), and listen_addresses and
// port, which pg_autoctl passes on postgres' command line (-h, -p).
func dbPostgresConf(s *Spec) string {
	d := s.DB
	var b strings.Builder
	fmt.Fprintf(&b, "# Rendered by belay for %s: included last from postgresql.conf.\n", s.Hostname)
	b.WriteString("# listen_addresses is pg_autoctl's (postgres -h): this host's private address and 127.0.0.1 only.\n")
	b.WriteString("password_encryption = 'scram-sha-256'\n")
	b.WriteString("ssl_min_protocol_version = 'TLSv1.2'\n")
	if d.Monitor {
		b.WriteString("cluster_name = 'belay monitor'\n")
		b.WriteString("# Failover tuning (docs/ha-engine.md): a dead primary is detected in ~4 s and a\n")
		b.WriteString("# partitioned one gets 7 s more to fence itself before the standby takes writes.\n")
		fmt.Fprintf(&b, "pgautofailover.health_check_period = %d\n", healthCheckPeriodMs)
		fmt.Fprintf(&b, "pgautofailover.health_check_timeout = %d\n", healthCheckTimeoutMs)
		fmt.Fprintf(&b, "pgautofailover.health_check_max_retries = %d\n", healthCheckMaxRetries)
		fmt.Fprintf(&b, "pgautofailover.health_check_retry_delay = %d\n", healthCheckRetryDelayMs)
		fmt.Fprintf(&b, "pgautofailover.node_considered_unhealthy_timeout = %d\n", unhealthyTimeoutMs)
		fmt.Fprintf(&b, "pgautofailover.primary_demote_timeout = %d\n", primaryDemoteTimeoutMs)
		return b.String()
	}
	b.WriteString("cluster_name = 'belay'\n")
	b.WriteString("# Fencing of a partitioned primary (docs/ha-engine.md): its keeper fences once no\n")
	b.WriteString("# walsender is left, and needs one still listed at the first failed monitor call.\n")
	fmt.Fprintf(&b, "wal_sender_timeout = '%s'\n", walSenderTimeout)
	fmt.Fprintf(&b, "wal_receiver_timeout = '%s'\n", walReceiverTimeout)
	b.WriteString("# WAL archiving to the repository host (pgBackRest, asynchronous). Only the\n")
	b.WriteString("# primary archives: archive_mode = on is inert while in recovery.\n")
	b.WriteString("archive_mode = on\n")
	fmt.Fprintf(&b, "archive_command = 'pgbackrest --stanza=%s archive-push %%p'\n", d.Backup.Stanza)
	fmt.Fprintf(&b, "archive_timeout = '%ds'\n", dbArchiveTimeout(d.ArchiveTimeout))
	return b.String()
}

// dbHBABlock is belay's pg_hba.conf block. pg_autoctl adds its own lines for
// the replication and monitor users of each registered node on data nodes; on
// the monitor (created with --skip-pg-hba) this block is the whole remote access.
func dbHBABlock(s *Spec) string {
	d := s.DB
	var b strings.Builder
	b.WriteString("# BEGIN belay (" + hbaBlock + ")\n")
	if d.Monitor {
		b.WriteString("# Data nodes register and report here.\n")
		for _, src := range hbaSources(d.AllowFrom) {
			fmt.Fprintf(&b, "hostssl %s %s %s scram-sha-256\n", pgafMonitorDB, pgafNodeUser, src)
		}
	} else {
		b.WriteString("# The app reaches its database over TLS with its password.\n")
		for _, src := range hbaSources(d.AllowFrom) {
			fmt.Fprintf(&b, "hostssl %s %s %s scram-sha-256\n", d.Name, dbAppUser(d.AppUser), src)
		}
		tenantHBA(&b, d)
	}
	b.WriteString("# END belay\n")
	return b.String()
}

// hbaSources renders AllowFrom as sorted, de-duplicated CIDRs.
func hbaSources(allow []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, a := range allow {
		p, err := parseSource(a)
		if err != nil || seen[p.String()] {
			continue
		}
		seen[p.String()] = true
		out = append(out, p.String())
	}
	sort.Strings(out)
	return out
}

// dbPgpass is the postgres user's ~/.pgpass: the monitor URI and the
// replication connections carry no password.
func dbPgpass(d *DB) string {
	return fmt.Sprintf("%s:%d:%s:%s:%s\n*:%d:*:%s:%s\n",
		d.MonitorAddress, d.Port, pgafMonitorDB, pgafNodeUser, pgpassEscape(d.MonitorPassword),
		d.Port, pgafReplicatorUser, pgpassEscape(d.ReplicationPassword))
}

func pgpassEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `:`, `\:`).Replace(s)
}

// dbBootstrapSQL sets the passwords and creates the app's role and database.
// It runs over the unix socket while no TCP listener is up: on the monitor at
// every setup, on a data node only where it initialised the cluster (the first
// primary; the standby gets everything by replication). Passwords go in as
// SCRAM verifiers, so the clear text never reaches the server, its logs
// (the monitor logs DDL) or pg_stat_statements.
func dbBootstrapSQL(d *DB) string {
	var b strings.Builder
	b.WriteString("-- Rendered by belay: run by " + DBSetupScript + " over the unix socket (idempotent).\n")
	b.WriteString("\\set ON_ERROR_STOP on\n")
	if d.Monitor {
		fmt.Fprintf(&b, "ALTER ROLE %s PASSWORD '%s';\n", pgafNodeUser, scramVerifier(pgafNodeUser, d.MonitorPassword))
		return b.String()
	}
	user := dbAppUser(d.AppUser)
	fmt.Fprintf(&b, "ALTER ROLE %s PASSWORD '%s';\n", pgafReplicatorUser, scramVerifier(pgafReplicatorUser, d.ReplicationPassword))
	fmt.Fprintf(&b, "SELECT 'CREATE ROLE %[1]s' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '%[1]s')\n\\gexec\n", user)
	fmt.Fprintf(&b, "ALTER ROLE %s LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD '%s';\n", user, scramVerifier(user, d.AppPassword))
	fmt.Fprintf(&b, "SELECT 'CREATE DATABASE %[1]s OWNER %[2]s' WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '%[1]s')\n\\gexec\n", d.Name, user)
	fmt.Fprintf(&b, "ALTER DATABASE %s OWNER TO %s;\n", d.Name, user)
	fmt.Fprintf(&b, "REVOKE ALL ON DATABASE %s FROM PUBLIC;\n", d.Name)
	tenantSQL(&b, d)
	return b.String()
}

// scramVerifier computes PostgreSQL's SCRAM-SHA-256 secret for password (RFC 5802,
// 4096 iterations as PostgreSQL uses). The salt is derived from the password and
// role instead of drawn at random so the user data, and with it the server, stays
// the same across runs; passwords are 192-bit seed-derived values, so a
// deterministic salt gives a precomputation attack nothing to work with.
func scramVerifier(role, password string) string {
	mac := hmac.New(sha256.New, []byte(password))
	mac.Write([]byte("belay scram salt v1\x00" + role))
	salt := mac.Sum(nil)[:16]
	const iterations = 4096
	salted, err := pbkdf2.Key(sha256.New, password, salt, iterations, sha256.Size)
	if err != nil {
		// Only FIPS-mode key length checks fail, and 32 bytes of SHA-256 passes them.
		panic(fmt.Sprintf("roles: pbkdf2: %v", err))
	}
	hm := func(key []byte, msg string) []byte {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(msg))
		return m.Sum(nil)
	}
	stored := sha256.Sum256(hm(salted, "Client Key"))
	server := hm(salted, "Server Key")
	enc := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", iterations, enc(salt), enc(stored[:]), enc(server))
}

// dbAuthorizedKeys lets the repository host in as postgres, for the pgBackRest
// remote and the backup job's canary stamp only (the forced command checks).
func dbAuthorizedKeys(repoKey string) string {
	return "# Rendered by belay: the repository host may only run the pgBackRest remote and the backup canary.\n" +
		"restrict,command=\"" + dbRemoteWrapper + "\" " + strings.TrimSpace(repoKey) + "\n"
}

// dbCanaryCommand is exactly what the backup job (backup role) runs over SSH on
// the data nodes, with its SQL on standard input.
const dbCanaryCommand = "psql -X -q -t -A -v ON_ERROR_STOP=1 -d postgres"

// dbRemoteWrapperScript is the forced command of the repository host's key.
// pgBackRest on the repository host starts its PostgreSQL-side remote as one
// string of space-separated options ending in "<command>:remote"
// (--remote-type=pg); the backup job's canary is one fixed psql invocation.
func dbRemoteWrapperScript(stanza, pgdata string) string {
	return forcedRemote{
		Comment: "the repository host's key",
		Tag:     "belay-db-remote",
		Pre: "if [ \"$cmd\" = \"" + dbCanaryCommand + "\" ]; then\n" +
			"    exec /usr/bin/psql -X -q -t -A -v ON_ERROR_STOP=1 -d postgres\nfi\n",
		Var:        "pg",
		RemoteType: "pg",
		Allowed: []string{
			"--stanza=" + stanza + ") ;;",
			"--stanza=*) refuse \"$arg\" ;;",
			"--pg[0-9]-path=" + pgdata + " | --pg[0-9][0-9]-path=" + pgdata + ") ;;",
		},
		DeniedComment: []string{"Options that would point the remote at another config, cluster or host."},
		Denied:        "--config=* | --config-path=* | --config-include-path=* | --pg*-path=* | --pg*-host* | --repo*-host* | --cmd-ssh=* | --lock-path=* | --spool-path=*",
		Who:           "the repository host",
		Kind:          "PostgreSQL",
	}.script()
}

// pgAutoFailoverUnit is `pg_autoctl show systemd`'s unit, plus belay's config
// re-check before each start (pg_rewind and pg_basebackup copy pg_hba.conf and
// postgresql.conf from the peer).
func pgAutoFailoverUnit(s *Spec) string {
	kind := "keeper (data node)"
	if s.DB.Monitor {
		kind = "monitor"
	}
	return `# Rendered by belay: pg_auto_failover ` + kind + `, as pg_autoctl show systemd has it.
[Unit]
Description=pg_auto_failover ` + kind + `
Wants=network-online.target
After=network-online.target
StartLimitIntervalSec=0

[Service]
Type=simple
User=postgres
WorkingDirectory=` + pgHome + `
Environment=PGDATA=` + PGDataPath(s.DB.PostgresVersion) + `
ExecStartPre=` + DBSetupScript + ` config
ExecStart=/usr/bin/pg_autoctl run
ExecReload=/usr/bin/pg_autoctl reload
Restart=always
RestartSec=2
# pg_autoctl stops PostgreSQL itself (fast mode) on SIGTERM; its children are
# only killed if it has not finished by the timeout.
KillMode=mixed
TimeoutStopSec=120

[Install]
WantedBy=multi-user.target
`
}

// addrSnippet sets $addr to this host's private address: the planned one, or
// where the provider assigns it at boot (DigitalOcean) the interface's.
func addrSnippet(n Net) string {
	if n.PrivateAddress != "" {
		return "addr=" + n.PrivateAddress + "\n"
	}
	return `# The provider assigns the private address (no planned one): read it from ` + n.PrivateInterface + `.
addr=
i=0
while :; do
    addr=$(ip -4 -o addr show dev ` + n.PrivateInterface + ` scope global 2>/dev/null | awk '{ split($4, a, "/"); print a[1]; exit }')
    [ -z "$addr" ] || break
    i=$((i + 1))
    [ $i -le 300 ] || die "no IPv4 address on ` + n.PrivateInterface + ` after 300 s"
    sleep 1
done
`
}

var dbSetupTmpl = template.Must(template.New("setup").Parse(`#!/bin/sh
# Rendered by belay: belay-db-setup [config] — creates this host's pg_auto_failover
# {{.Kind}} (first boot, from cloud-init runcmd; safe to run again), or with
# "config" (as postgres, before every start of {{.Unit}}) re-applies belay's
# postgresql.conf include and pg_hba.conf block to PGDATA.
set -eu
PATH=/usr/lib/postgresql/{{.Version}}/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
pgdata={{.PGData}}
port={{.Port}}
die() { echo "belay-db-setup: $*" >&2; exit 1; }
log() { echo "belay-db-setup: $*"; }

# apply_config runs as postgres. pg_autoctl's initdb trusts every local
# connection; belay allows the postgres OS user (peer) over the socket and
# passwords over loopback TCP only.
apply_config() {
    [ -f "$pgdata/PG_VERSION" ] || return 0
    line="include_if_exists = '{{.Conf}}'"
    grep -qxF "$line" "$pgdata/postgresql.conf" || printf '%s\n' "$line" >>"$pgdata/postgresql.conf"
    hba=$pgdata/pg_hba.conf
    sed -i -E \
        -e '/^# BEGIN belay/,/^# END belay/d' \
        -e 's/^(local +(all|replication) +all +)trust *$/\1peer map=belay/' \
        -e 's/^(host +(all|replication) +all +(127\.0\.0\.1\/32|::1\/128) +)trust *$/\1scram-sha-256/' \
        "$hba"
    cat {{.HBABlock}} >>"$hba"
    ident=$pgdata/pg_ident.conf
    sed -i -e '/^# BEGIN belay/,/^# END belay/d' "$ident"
    {
        echo "# BEGIN belay: OS user postgres may connect as these roles over the socket"
        echo "belay postgres postgres"
{{- if .Monitor}}
        echo "belay postgres {{.NodeUser}}"
{{- end}}
        echo "# END belay"
    } >>"$ident"
}

if [ "${1:-}" = config ]; then
    apply_config
    exit 0
fi
[ "$(id -u)" = 0 ] || die "run as root (or with the argument config, as postgres)"
as_pg() { runuser -u postgres -- env HOME={{.Home}} PATH="$PATH" "$@"; }

{{.AddrSnippet -}}
log "address $addr"

# Debian's packaged cluster would hold the port and this data directory; belay's
# cluster is pg_autoctl's and has no /etc/postgresql entry.
if [ -f /etc/postgresql/{{.Version}}/main/postgresql.conf ]; then
    log "dropping the package's empty {{.Version}}/main cluster"
    pg_dropcluster --stop {{.Version}} main
fi
install -d -o postgres -g postgres -m 0700 {{.Home}}/.ssh
{{- if not .Monitor}}
install -d -o postgres -g postgres -m 0750 {{.Spool}}
install -d -o postgres -g postgres -m 0770 /var/log/pgbackrest
{{- end}}
cd {{.Home}}

# pg_autoctl create is resumable: rerun it until the node is registered and
# initialised (the monitor may still be booting; a second data node waits for
# the primary before its pg_basebackup).
created={{.Created}}
if [ ! -f $created ]; then
    i=0
    until as_pg pg_autoctl create {{.CreateArgs}}; do
        i=$((i + 1))
        [ $i -lt 90 ] || die "pg_autoctl create failed 90 times, giving up"
        log "pg_autoctl create failed (attempt $i), retrying in 10 s"
        sleep 10
    done
    date -u +%Y-%m-%dT%H:%M:%SZ >$created
fi
{{range .ConfigSet}}as_pg pg_autoctl config set --pgdata "$pgdata" {{.}}
{{end -}}
as_pg {{.Self}} config

# Passwords and the app's database: over the unix socket while no TCP listener is
# up, on a node that is not a standby (the monitor; the first data node).
if [ ! -f "$pgdata/standby.signal" ]; then
    started=no
    if ! as_pg pg_ctl status -D "$pgdata" >/dev/null 2>&1; then
        as_pg pg_ctl start -w -t 300 -D "$pgdata" -l {{.Home}}/belay-bootstrap.log -o "-c listen_addresses='' -c port=$port"
        started=yes
    fi
    if [ "$(as_pg psql -X -A -t -h {{.Socket}} -p "$port" -d postgres -c 'SELECT pg_is_in_recovery()')" = f ]; then
        as_pg psql -X -q -h {{.Socket}} -p "$port" -d postgres -f {{.SQL}}
        log "roles and database in place"
    fi
    if [ $started = yes ]; then
        as_pg pg_ctl stop -w -m fast -D "$pgdata"
    fi
fi

systemctl daemon-reload
systemctl enable --now {{.Unit}}
log "{{.Unit}} started"
`))

// dbSetupScript renders DBSetupScript for a data node or the monitor.
func dbSetupScript(s *Spec) (string, error) {
	d := s.DB
	args := pgAutoctlCreateArgs(s)
	var quoted []string
	for _, a := range args {
		if strings.Contains(a, "$addr") {
			quoted = append(quoted, `"`+a+`"`) // expanded by the shell; addresses need no quoting
		} else {
			quoted = append(quoted, shq.Quote(a))
		}
	}
	configSet := []string{
		// listen_addresses as pg_autoctl passes it to postgres (-h): never '*'.
		`postgresql.listen_addresses "$addr,127.0.0.1"`,
	}
	if !d.Monitor {
		configSet = append(configSet,
			"timeout.network_partition_timeout "+strconv.Itoa(networkPartitionTimeoutS),
			"timeout.prepare_promotion_walreceiver 2",
			"timeout.postgresql_restart_failure_timeout 5",
			"timeout.postgresql_restart_failure_max_retries 1",
		)
	}
	kind := "data node"
	if d.Monitor {
		kind = "monitor"
	}
	var b strings.Builder
	err := dbSetupTmpl.Execute(&b, map[string]any{
		"Kind":        kind,
		"Unit":        PGAutoFailoverUnit,
		"Version":     d.PostgresVersion,
		"PGData":      PGDataPath(d.PostgresVersion),
		"Port":        d.Port,
		"Conf":        belayPGConf,
		"HBABlock":    hbaBlock,
		"Monitor":     d.Monitor,
		"NodeUser":    pgafNodeUser,
		"Home":        pgHome,
		"Spool":       pgSpoolPath,
		"Socket":      pgSocketDir,
		"SQL":         bootstrapSQL,
		"Self":        DBSetupScript,
		"Created":     belayStateDir + "/pgautofailover-created",
		"AddrSnippet": addrSnippet(s.Net),
		"CreateArgs":  strings.Join(quoted, " "),
		"ConfigSet":   configSet,
	})
	if err != nil {
		return "", fmt.Errorf("roles: render %s: %w", DBSetupScript, err)
	}
	return b.String(), nil
}

// pgAutoctlCreateArgs are the arguments of `pg_autoctl create monitor|postgres`.
// "$addr" is this host's private address, set by the script.
func pgAutoctlCreateArgs(s *Spec) []string {
	d := s.DB
	common := []string{
		"--pgdata", PGDataPath(d.PostgresVersion),
		"--pgctl", fmt.Sprintf("/usr/lib/postgresql/%d/bin/pg_ctl", d.PostgresVersion),
		"--pgport", strconv.Itoa(d.Port),
		"--hostname", "$addr",
		// Encrypted node-to-node traffic with pg_autoctl's self-signed certificates.
		"--ssl-self-signed", "--ssl-mode", "require",
	}
	if d.Monitor {
		// --skip-pg-hba: belay's block allows exactly the data nodes (AllowFrom,
		// scram-sha-256), not the whole LAN pg_autoctl would open. pg_autoctl
		// refuses --auth together with it ("Please use either --auth or
		// --skip-pg-hba"): --auth only names the method of the lines it writes.
		return append([]string{"monitor"}, append(common, "--skip-pg-hba")...)
	}
	common = append(common, "--auth", "scram-sha-256")
	quorum := "false"
	if d.Synchronous {
		// A quorum standby makes pg_auto_failover set synchronous_standby_names
		// = 'ANY 1 (...)' while it is healthy: no acknowledged commit is lost on failover.
		quorum = "true"
	}
	monitorURI := fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=require", pgafNodeUser, d.MonitorAddress, d.Port, pgafMonitorDB)
	return append([]string{"postgres"}, append(common,
		"--listen", "$addr,127.0.0.1",
		"--name", s.Hostname,
		"--monitor", monitorURI,
		"--replication-quorum", quorum,
		"--candidate-priority", "50",
	)...)
}
