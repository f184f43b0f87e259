package roles

// Creating the pg_auto_failover node: the first-boot setup script and the
// pgautofailover.service unit that runs it before each start.

import (
	"fmt"
	"strconv"
	"strings"
	"text/template"

	"github.com/belay-sh/belay/internal/shq"
)

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
{{- if .Formation}}
{{.EnsureFormation}}
{{- end}}
if [ ! -f $created ]; then
    i=0
    until {{if .Formation}}ensure_formation && {{end}}as_pg pg_autoctl create {{.CreateArgs}}; do
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
# up, on a node that is not a standby (the monitor; the first data node), once
# per data directory. The marker is in the data directory itself: a replaced
# server that re-attaches a former primary's volume must not write there (the
# formation has moved on without it, and with synchronous_standby_names set
# the write would wait for a standby that cannot connect, listen_addresses is
# empty, for ever), while a data directory made anew (belay-db-reseed empties
# the monitor's) must get its passwords again. synchronous_commit=local for
# the same reason on a data directory from before the marker.
bootstrapped="$pgdata/belay-bootstrapped"
if [ ! -f "$pgdata/standby.signal" ] && [ ! -f "$bootstrapped" ]; then
    started=no
    if ! as_pg pg_ctl status -D "$pgdata" >/dev/null 2>&1; then
        as_pg pg_ctl start -w -t 300 -D "$pgdata" -l {{.Home}}/belay-bootstrap.log -o "-c listen_addresses='' -c port=$port"
        started=yes
    fi
    if [ "$(as_pg psql -X -A -t -h {{.Socket}} -p "$port" -d postgres -c 'SELECT pg_is_in_recovery()')" = f ]; then
        as_pg env PGOPTIONS='-c synchronous_commit=local' psql -X -q -h {{.Socket}} -p "$port" -d postgres -f {{.SQL}}
        as_pg touch "$bootstrapped"
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
		"Kind":            kind,
		"Unit":            PGAutoFailoverUnit,
		"Version":         d.PostgresVersion,
		"PGData":          PGDataPath(d.PostgresVersion),
		"Port":            d.Port,
		"Conf":            belayPGConf,
		"HBABlock":        hbaBlock,
		"Monitor":         d.Monitor,
		"NodeUser":        pgafNodeUser,
		"Home":            pgHome,
		"Spool":           pgSpoolPath,
		"Socket":          pgSocketDir,
		"SQL":             bootstrapSQL,
		"Self":            DBSetupScript,
		"Created":         belayStateDir + "/pgautofailover-created",
		"AddrSnippet":     addrSnippet(s.Net),
		"CreateArgs":      strings.Join(quoted, " "),
		"ConfigSet":       configSet,
		"Formation":       d.Formation,
		"EnsureFormation": ensureFormationFunc(d),
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
	monitorURI := pgafMonitorURI(d)
	if d.Formation != "" {
		common = append(common, "--formation", d.Formation)
	}
	return append([]string{"postgres"}, append(common,
		"--listen", "$addr,127.0.0.1",
		"--name", s.Hostname,
		"--monitor", monitorURI,
		"--replication-quorum", quorum,
		"--candidate-priority", "50",
	)...)
}

// pgafMonitorURI is the monitor's URI for a data node (password in ~/.pgpass).
func pgafMonitorURI(d *DB) string {
	return fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=require", pgafNodeUser, d.MonitorAddress, d.Port, pgafMonitorDB)
}

// ensureFormationFunc is the shell function a dedicated cell's data node runs
// before `pg_autoctl create postgres --formation`: the monitor refuses a node
// of a formation it does not have ("Use pg_autoctl create formation ...
// first"), and `create formation` fails when it exists (a duplicate key). Both
// nodes of the pair run it at once on first boot: whichever loses the race
// sees the formation on the re-check. Secondary enabled, as in the default
// formation: the pair's second node is its failover target.
func ensureFormationFunc(d *DB) string {
	if d.Formation == "" {
		return ""
	}
	uri := shq.Quote(pgafMonitorURI(d))
	query := shq.Quote("SELECT count(*) FROM pgautofailover.formation WHERE formationid = '" + d.Formation + "'")
	return `# This node's pg_auto_failover formation (a dedicated cell's pair) on the stack's monitor.
formation_exists() {
    [ "$(as_pg psql -X -A -t -d ` + uri + ` -c ` + query + `)" = 1 ]
}
ensure_formation() {
    formation_exists && return 0
    as_pg pg_autoctl create formation --monitor ` + uri + ` --formation ` + shq.Quote(d.Formation) + ` --kind pgsql --dbname postgres --enable-secondary ||
        formation_exists
}`
}
