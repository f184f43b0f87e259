package roles

import (
	"fmt"
	"strings"
	"text/template"
)

// DBReseedScript rebuilds this host's part of the pg_auto_failover formation
// when the stack comes back from the standby site (`belay failover site --to
// primary`): the formation is re-created around the data the standby site
// wrote, restored from the pgBackRest repository.
const DBReseedScript = "/usr/local/sbin/belay-db-reseed"

// The reseed modes: what the host becomes in the re-created formation.
const (
	ReseedMonitor = "monitor" // an empty monitor (its old formation knew the fenced nodes)
	ReseedPrimary = "primary" // restored from the repository to the standby site's final restore point, registered first
	ReseedReplica = "replica" // emptied, re-cloned from the new primary by pg_autoctl
)

// reseedAsideSuffix names where `primary` keeps the data directory it replaces:
// writes the primary site took after it was cut off (a partition) are in there.
const reseedAsideSuffix = ".before-failback"

var dbReseedTmpl = template.Must(template.New("reseed").Parse(`#!/bin/sh
# Rendered by belay: belay-db-reseed {{.Modes}} — re-creates this host's part of
# the pg_auto_failover formation when the stack switches back from the standby site
# (belay failover site --to primary runs it; docs/runbook.md has the order).
#   monitor  empty monitor: the old formation's state is dropped
#   primary  PGDATA restored from the repository (stanza {{.Stanza}}) and recovered to the
#            restore point belay-standby-final-archive wrote after the standby site's last
#            write, on the newest timeline (the standby site's); the old
#            PGDATA is kept as {{.PGData}}{{.Aside}}; then registered first (primary)
#   replica  PGDATA emptied; pg_autoctl re-clones it from the new primary
# Safe to run again: a finished restore is not repeated (marker {{.Marker}}).
set -eu
PATH=/usr/lib/postgresql/{{.Version}}/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
pgdata={{.PGData}}
marker={{.Marker}}
die() { echo "belay-db-reseed: $*" >&2; exit 1; }
log() { echo "belay-db-reseed: $*"; }
[ "$(id -u)" = 0 ] || die "run as root"
as_pg() { runuser -u postgres -- env HOME={{.Home}} PATH="$PATH" "$@"; }
mode=${1:-}
case "$mode" in
{{.Allowed}}) ;;
*) die "mode '$mode': expected {{.Modes}} (this host is a {{.Kind}})" ;;
esac

stop_all() {
    systemctl stop '{{.UnitGlob}}' 'postgresql*'
    if [ -f "$pgdata/postmaster.pid" ] && as_pg pg_ctl status -D "$pgdata" >/dev/null 2>&1; then
        as_pg pg_ctl stop -w -m fast -D "$pgdata"
    fi
}
# forget_formation drops this node's pg_autoctl configuration and state: the
# node registers again with the re-created formation.
forget_formation() {
    rm -rf {{.Home}}/.config/pg_autoctl {{.Home}}/.local/share/pg_autoctl {{.Created}}
}

if [ ! -f "$marker" ]; then
    stop_all
    case "$mode" in
    monitor | replica)
        log "$mode: emptying $pgdata"
        rm -rf "$pgdata"
        ;;
    primary)
        # Once the old data directory is aside, an interrupted restore is
        # thrown away, never the aside copy.
        if [ ! -f "$marker.aside" ]; then
            rm -rf "$pgdata{{.Aside}}"
            if [ -d "$pgdata" ]; then
                log "keeping the old data directory as $pgdata{{.Aside}}"
                mv "$pgdata" "$pgdata{{.Aside}}"
            fi
            date -u +%Y-%m-%dT%H:%M:%SZ >"$marker.aside"
        else
            log "an earlier run stopped mid-restore: restoring again (the old data stays in $pgdata{{.Aside}})"
            rm -rf "$pgdata"
        fi
        install -d -o postgres -g postgres -m 0700 "$pgdata"
        # The standby site's timeline is the newest in the repository (its
        # final-archive step pushed the history file synchronously); recovery
        # stops at the restore point that step wrote after the standby's last
        # write. Without it PostgreSQL refuses to finish recovery: a gap in
        # the archive fails here instead of dropping the standby's writes.
        histories=$(as_pg pgbackrest --stanza={{.Stanza}} --log-level-console=warn repo-ls --recurse '--filter=\.history$' archive/{{.Stanza}})
        newest=$(printf '%s\n' "$histories" | sed -n 's|^[0-9][0-9]*-\([0-9][0-9]*\)/\([0-9A-F]\{8\}\)\.history$|\1 \2|p' | sort -k1,1n -k2,2 | tail -n 1)
        tl=1
        if [ -n "$newest" ]; then
            tl=$((0x${newest#* }))
        fi
        point={{.Point}}$tl
        log "restoring the latest backup of {{.Stanza}}; recovery replays the archive on timeline $tl up to restore point $point (the standby site's last write)"
        as_pg pgbackrest --stanza={{.Stanza}} --type=name "--target=$point" "--target-timeline=$tl" --target-action=promote --log-level-console=warn restore
        # pg_auto_failover's settings from the old formation: a synchronous
        # standby name no node answers to would block every commit.
        sed -i -E '/^[[:space:]]*(synchronous_standby_names|primary_conninfo|primary_slot_name)[[:space:]]*=/d' "$pgdata/postgresql.auto.conf"
        if [ -f "$pgdata/postgresql-auto-failover-standby.conf" ]; then
            : >"$pgdata/postgresql-auto-failover-standby.conf"
        fi
        as_pg pg_ctl start -w -t 600 -D "$pgdata" -l {{.Home}}/belay-reseed.log -o "-c listen_addresses='' -c port={{.Port}}" ||
            die "PostgreSQL did not start on the restored data (see {{.Home}}/belay-reseed.log): if it says the recovery target was not reached, the repository lacks part of the standby site's WAL; the standby database still has it (start it again and serve from the standby site)"
        i=0
        until [ "$(as_pg psql -X -A -t -h {{.Socket}} -p {{.Port}} -d postgres -c 'SELECT pg_is_in_recovery()')" = f ]; do
            i=$((i + 1))
            [ $i -lt {{.RecoverySeconds}} ] || die "still recovering after {{.RecoverySeconds}} s; see {{.Home}}/belay-reseed.log"
            sleep 1
        done
        log "recovered to $point: $(as_pg psql -X -A -t -h {{.Socket}} -p {{.Port}} -d postgres -c 'SELECT timeline_id FROM pg_control_checkpoint()' | sed 's/^/timeline /')"
        as_pg pg_ctl stop -w -m fast -D "$pgdata"
        # The recovery target stays in postgresql.auto.conf after promotion;
        # pg_basebackup copies it to the replica, which would then refuse to
        # follow this node's new timeline.
        sed -i -E '/^[[:space:]]*recovery_target[a-z_]*[[:space:]]*=/d' "$pgdata/postgresql.auto.conf"
        ;;
    esac
    forget_formation
    date -u +%Y-%m-%dT%H:%M:%SZ >"$marker"
fi
log "$mode: registering with the formation ({{.Setup}})"
{{.Setup}}
rm -f "$marker" "$marker.aside"
log "$mode: done"
`))

// dbReseedScript renders DBReseedScript for a data node or the monitor.
func dbReseedScript(s *Spec) (string, error) {
	d := s.DB
	modes := []string{ReseedPrimary, ReseedReplica}
	kind := "data node"
	stanza := ""
	if d.Monitor {
		modes, kind = []string{ReseedMonitor}, "monitor"
	} else {
		stanza = d.Backup.Stanza
	}
	var b strings.Builder
	err := dbReseedTmpl.Execute(&b, map[string]any{
		"Modes":           strings.Join(modes, "|"),
		"Allowed":         strings.Join(modes, " | "),
		"Kind":            kind,
		"Version":         d.PostgresVersion,
		"PGData":          PGDataPath(d.PostgresVersion),
		"Port":            d.Port,
		"Home":            pgHome,
		"Socket":          pgSocketDir,
		"Stanza":          stanza,
		"Aside":           reseedAsideSuffix,
		"Marker":          belayStateDir + "/reseed-in-progress",
		"Created":         belayStateDir + "/pgautofailover-created",
		"UnitGlob":        strings.TrimSuffix(PGAutoFailoverUnit, ".service") + "*",
		"Setup":           DBSetupScript,
		"RecoverySeconds": 3600,
		"Point":           WayBackRestorePointPrefix,
	})
	if err != nil {
		return "", fmt.Errorf("roles: render %s: %w", DBReseedScript, err)
	}
	return b.String(), nil
}
