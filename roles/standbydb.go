package roles

import (
	"errors"
	"fmt"
	"strings"
	"text/template"

	"github.com/belay-sh/belay/inventory"
)

// Units and paths of the standby-site database that `belay failover site` uses.
const (
	// StandbyDBUnit runs the standby PostgreSQL (hot standby replaying the archive).
	StandbyDBUnit = "belay-standby-db.service"
	// StandbyRestoreUnit restores PGDATA from the repository before StandbyDBUnit starts.
	StandbyRestoreUnit = "belay-standby-restore.service"
	// StandbyRestoreScript waits for the first backup and restores it (--resync: delta re-restore).
	StandbyRestoreScript = "/usr/local/sbin/belay-standby-restore"
	// standbyHBA is the standby's whole pg_hba.conf (hba_file): the restored one
	// belongs to the primary site.
	standbyHBA = pgConfDir + "/pg_hba.conf"
)

func init() {
	register(inventory.RoleStandbyDB, standbyDBContributor)
}

func validateStandbyDB(s *Spec) error {
	d := s.StandbyDB
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf("roles: "+format, a...)) }
	if d.PostgresVersion < 13 || d.PostgresVersion > 99 {
		bad("Spec.StandbyDB.PostgresVersion: %d, expected the data nodes' PostgreSQL major version (13 or later, e.g. 15)", d.PostgresVersion)
	}
	if !pgIdentRE.MatchString(d.Name) || d.Name == "postgres" || d.Name == pgafMonitorDB || strings.HasPrefix(d.Name, "template") {
		bad("Spec.StandbyDB.Name: %q, expected a database name (a-z, 0-9, _; not postgres, template*, %s)", d.Name, pgafMonitorDB)
	}
	if u := dbAppUser(d.AppUser); !pgIdentRE.MatchString(u) || reservedRoles[u] || strings.HasPrefix(u, "pg_") {
		bad("Spec.StandbyDB.AppUser: %q, expected a role name (a-z, 0-9, _; not postgres, pg_*, or a pg_auto_failover role)", d.AppUser)
	}
	if d.Port < 1 || d.Port > 65535 {
		bad("Spec.StandbyDB.Port: %d, expected 1-65535", d.Port)
	}
	if !stanzaRE.MatchString(d.Stanza) {
		bad("Spec.StandbyDB.Stanza: %q, expected a pgBackRest stanza name (A-Z, a-z, 0-9, _, -)", d.Stanza)
	}
	checkRepoHost(bad, "Spec.StandbyDB", d.RepoHost, d.RepoHostKey)
	if err := checkPrivateKey(d.ClientKey.PrivatePEM, d.ClientKey.Public); err != nil {
		bad("Spec.StandbyDB.ClientKey: %v", err)
	}
	checkAllowFrom(bad, "Spec.StandbyDB.AllowFrom", d.AllowFrom)
	validateTenants(&DB{Name: d.Name, AppUser: d.AppUser, Tenants: d.Tenants}, "Spec.StandbyDB", bad)
	checkSecret(bad, "Spec.StandbyDB.AppPassword", d.AppPassword)
	return errors.Join(errs...)
}

// standbyDBContributor renders the standby-site PostgreSQL: restored by
// pgBackRest from the repository once a backup exists, then a hot standby
// replaying the WAL archive (restore_command). Nothing connects to the primary
// site's 5432; a site switch promotes it (docs/ha-engine.md).
func standbyDBContributor(s *Spec, c *CloudConfig) error {
	if s.StandbyDB == nil {
		return errors.New("roles: Spec.StandbyDB: nil, expected it for role standby-db")
	}
	if err := validateStandbyDB(s); err != nil {
		return err
	}
	d := s.StandbyDB
	restore, err := standbyRestoreScript(s)
	if err != nil {
		return err
	}
	final, err := standbyFinalArchiveScript(s)
	if err != nil {
		return err
	}
	c.WriteFiles = append(c.WriteFiles,
		File{Path: belayPGConf, Content: standbyPostgresConf(s), Owner: "root:root", Permissions: "0644"},
		File{Path: standbyHBA, Content: standbyHBAConf(d), Owner: "root:root", Permissions: "0644"},
		File{Path: "/etc/pgbackrest/pgbackrest.conf", Content: pgBackRestClientConf(d.Stanza, d.RepoHost, PGDataPath(d.PostgresVersion), d.Port), Owner: "root:postgres", Permissions: "0640", Defer: true},
		File{Path: StandbyRestoreScript, Content: restore, Owner: "root:root", Permissions: "0755"},
		File{Path: StandbyFinalArchiveScript, Content: final, Owner: "root:root", Permissions: "0755"},
		File{Path: "/etc/systemd/system/" + StandbyRestoreUnit, Content: standbyRestoreUnit(), Owner: "root:root", Permissions: "0644"},
		File{Path: "/etc/systemd/system/" + StandbyDBUnit, Content: standbyDBUnit(d.PostgresVersion), Owner: "root:root", Permissions: "0644"},
	)
	c.WriteFiles = append(c.WriteFiles, pgSSHClientFiles(d.RepoHost, d.RepoHostKey, d.ClientKey.PrivatePEM)...)
	pgdir := func(path, mode string) []string {
		return []string{"install", "-d", "-m", mode, "-o", "postgres", "-g", "postgres", path}
	}
	c.Runcmd = append(c.Runcmd,
		pgdir(pgHome+"/.ssh", "0700"),
		pgdir(pgSpoolPath, "0750"),
		pgdir("/var/log/pgbackrest", "0770"),
		[]string{"systemctl", "daemon-reload"},
		[]string{"systemctl", "enable", StandbyRestoreUnit, StandbyDBUnit},
		// The restore waits (short polls) for the first backup, which the
		// repository host takes once the primary accepts writes: never block
		// cloud-init or boot on it.
		[]string{"systemctl", "start", "--no-block", StandbyRestoreUnit},
	)
	return nil
}

// standbyPostgresConf is included last from the restored postgresql.conf and
// wins over what came with the backup from the primary site (except
// postgresql.auto.conf, which the restore script cleans).
func standbyPostgresConf(s *Spec) string {
	d := s.StandbyDB
	return `# Rendered by belay for ` + s.Hostname + `: standby-site PostgreSQL, included last from postgresql.conf.
cluster_name = 'belay standby'
port = ` + fmt.Sprint(d.Port) + `
# This host's private address and 127.0.0.1 only, written at boot by
# ` + StandbyRestoreScript + ` into the included file; without it, localhost alone
# (never the '*' that came with the backup).
listen_addresses = 'localhost'
include_if_exists = '` + listenConf + `'
hba_file = '` + standbyHBA + `'
hot_standby = on
# Replays the archive only (restore_command, set by pgBackRest's restore): the
# primary site's PostgreSQL is never contacted.
primary_conninfo = ''
primary_slot_name = ''
synchronous_standby_names = ''
password_encryption = 'scram-sha-256'
ssl_min_protocol_version = 'TLSv1.2'
# After a promotion this server archives to the same repository.
archive_mode = on
archive_command = 'pgbackrest --stanza=` + d.Stanza + ` archive-push %p'
archive_timeout = '` + fmt.Sprint(DefaultArchiveTimeout) + `s'
`
}

func standbyHBAConf(d *StandbyDB) string {
	var b strings.Builder
	b.WriteString(`# Rendered by belay: the standby's pg_hba.conf (hba_file); the restored one is the primary site's.
local   all           postgres  peer
local   replication   postgres  peer
host    all           all       127.0.0.1/32  scram-sha-256
# The standby site's apps (read-only until a site switch promotes this server).
`)
	for _, src := range hbaSources(d.AllowFrom) {
		fmt.Fprintf(&b, "hostssl %s %s %s scram-sha-256\n", d.Name, dbAppUser(d.AppUser), src)
	}
	// The cells' roles and databases arrive with the restored backup; each
	// standby cell server reaches its own only.
	tenantHBA(&b, &DB{Tenants: d.Tenants})
	return b.String()
}

// standbyRestoreUnit waits (short polls) for the first backup, minutes away on
// a new stack. Type=exec, not oneshot: a oneshot would hold the boot
// transaction until then, leaving the machine "starting". The script starts
// the PostgreSQL unit itself once PGDATA is restored; a failed restore fails
// this unit, so `systemctl --failed` shows it.
func standbyRestoreUnit() string {
	return `# Rendered by belay: restore the standby from the pgBackRest repository (waits for the first backup).
[Unit]
Description=belay: restore the standby database from the backup repository
Wants=network-online.target
After=network-online.target

[Service]
Type=exec
RemainAfterExit=yes
ExecStart=` + StandbyRestoreScript + `
TimeoutStartSec=infinity

[Install]
WantedBy=multi-user.target
`
}

func standbyDBUnit(version int) string {
	return fmt.Sprintf(`# Rendered by belay: the standby-site PostgreSQL (PostgreSQL's documented systemd unit).
[Unit]
Description=belay: standby PostgreSQL replaying the pgBackRest archive
# Started by %[1]s once PGDATA is restored; at later boots it starts on its own.
ConditionPathExists=%[4]s
After=network-online.target

[Service]
Type=notify
User=postgres
ExecStart=/usr/lib/postgresql/%[2]d/bin/postgres -D %[3]s
ExecReload=/bin/kill -HUP $MAINPID
KillMode=mixed
KillSignal=SIGINT
TimeoutSec=infinity
Restart=on-failure
RestartSec=5

[Install]
WantedBy=multi-user.target
`, StandbyRestoreUnit, version, PGDataPath(version), standbyRestoredMarker)
}

var standbyRestoreTmpl = template.Must(template.New("restore").Parse(`#!/bin/sh
# Rendered by belay: belay-standby-restore [--resync] — restores this standby from
# the pgBackRest repository (stanza {{.Stanza}}) once a backup exists, as a standby
# that replays the archive. Without --resync an already restored PGDATA is kept
# (a reboot resumes replay); --resync re-restores in delta mode (PostgreSQL stopped).
set -eu
PATH=/usr/lib/postgresql/{{.Version}}/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
pgdata={{.PGData}}
stanza={{.Stanza}}
marker={{.Marker}}
die() { echo "belay-standby-restore: $*" >&2; exit 1; }
log() { echo "belay-standby-restore: $*"; }
[ "$(id -u)" = 0 ] || die "run as root"
as_pg() { runuser -u postgres -- env HOME={{.Home}} PATH="$PATH" "$@"; }
resync=no
case "${1:-}" in
"") ;;
--resync) resync=yes ;;
*) die "unknown argument $1, expected --resync or nothing" ;;
esac

{{.AddrSnippet -}}
umask 022
printf "listen_addresses = '%s,127.0.0.1'\n" "$addr" >{{.ListenConf}}.tmp
mv {{.ListenConf}}.tmp {{.ListenConf}}

if [ $resync = no ] && [ -f "$marker" ] && [ -f "$pgdata/PG_VERSION" ]; then
    log "PGDATA restored $(cat "$marker"); replay continues"
    systemctl start --no-block {{.Unit}}
    exit 0
fi
if [ -f "$pgdata/postmaster.pid" ] && as_pg pg_ctl status -D "$pgdata" >/dev/null 2>&1; then
    die "PostgreSQL is running on $pgdata: systemctl stop {{.Unit}} first"
fi
# Debian's packaged cluster would hold this data directory.
if [ -f /etc/postgresql/{{.Version}}/main/postgresql.conf ]; then
    log "dropping the package's empty {{.Version}}/main cluster"
    pg_dropcluster --stop {{.Version}} main
fi

# A new stack's repository host takes the first full backup as soon as the
# primary accepts writes (belay-backup-first): poll the repository every
# {{.Poll}} s so the standby restores it within seconds; after {{.FastFor}} s (past
# the first backup's own bounded wait) every {{.SlowPoll}} s.
waited=0
until as_pg pgbackrest --stanza="$stanza" --output=json info 2>/dev/null | grep -q '"label"'; do
    delay={{.Poll}}
    [ $waited -lt {{.FastFor}} ] || delay={{.SlowPoll}}
    log "no backup of stanza $stanza in the repository yet (waited ${waited}s); next check in ${delay}s"
    sleep $delay
    waited=$((waited + delay))
done

install -d -o postgres -g postgres -m 0700 "$pgdata"
log "restoring the latest backup of $stanza into $pgdata (standby, delta)"
as_pg pgbackrest --stanza="$stanza" --type=standby --delta --log-level-console=info restore

# What came from the primary site and must not act here: pg_auto_failover's
# synchronous_standby_names (ALTER SYSTEM) would block every commit after a
# promotion; its primary_conninfo points across sites.
sed -i -E '/^[[:space:]]*(synchronous_standby_names|primary_conninfo|primary_slot_name)[[:space:]]*=/d' "$pgdata/postgresql.auto.conf"
if [ -f "$pgdata/postgresql-auto-failover-standby.conf" ]; then
    : >"$pgdata/postgresql-auto-failover-standby.conf"
fi
line="include_if_exists = '{{.Conf}}'"
grep -qxF "$line" "$pgdata/postgresql.conf" || printf '%s\n' "$line" >>"$pgdata/postgresql.conf"
[ -f "$pgdata/standby.signal" ] || die "restore left no standby.signal"
date -u +%Y-%m-%dT%H:%M:%SZ >"$marker"
log "restored; starting {{.Unit}}, which replays the archive"
systemctl start --no-block {{.Unit}}
`))

// How often the standby restore looks for the first backup (seconds): short
// polls, not a back-off, so a new stack's standby restores the first backup
// seconds after it completes (one pgbackrest info over SSH per poll).
const (
	standbyPoll     = 5
	standbySlowPoll = 60
)

// standbyRestoredMarker exists once PGDATA holds a restored standby.
const standbyRestoredMarker = belayStateDir + "/standby-restored"

func standbyRestoreScript(s *Spec) (string, error) {
	d := s.StandbyDB
	var b strings.Builder
	err := standbyRestoreTmpl.Execute(&b, map[string]any{
		"Stanza":      d.Stanza,
		"Version":     d.PostgresVersion,
		"PGData":      PGDataPath(d.PostgresVersion),
		"Marker":      standbyRestoredMarker,
		"Home":        pgHome,
		"AddrSnippet": addrSnippet(s.Net),
		"ListenConf":  listenConf,
		"Conf":        belayPGConf,
		"Unit":        StandbyDBUnit,
		"Poll":        standbyPoll,
		"SlowPoll":    standbySlowPoll,
		"FastFor":     firstBackupWait + 30*60,
	})
	if err != nil {
		return "", fmt.Errorf("roles: render %s: %w", StandbyRestoreScript, err)
	}
	return b.String(), nil
}
