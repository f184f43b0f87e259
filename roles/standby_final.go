package roles

import (
	"fmt"
	"strings"
	"text/template"
)

// StandbyFinalArchiveScript closes the standby site's writes before the way
// back (`belay failover site --to primary`, after the apps stopped and the
// database went read-only): it ends every client session, marks the end of
// what the standby site wrote with a named restore point, pushes its
// timeline's history file to the repository synchronously, and waits until the
// archive holds the segment with the restore point (pgbackrest check).
//
// Why each part: the way back restores db-1 from the repository and must
// replay exactly to the end of the standby site's timeline. A history file
// the asynchronous archiver lost while the repository was unreachable (a
// partition is when the standby gets promoted) makes recovery follow the old
// primary's timeline instead, silently dropping the standby site's writes;
// the drill saw that. The named restore point turns any such gap into a loud
// failure: belay-db-reseed recovers to it and PostgreSQL refuses to finish
// recovery without reaching it.
const StandbyFinalArchiveScript = "/usr/local/sbin/belay-standby-final-archive"

// WayBackRestorePointPrefix names the restore point of the standby site's last
// write; the timeline number (decimal) follows, so a later way back never
// stops at an earlier one.
const WayBackRestorePointPrefix = "belay-way-back-tl"

var standbyFinalTmpl = template.Must(template.New("final").Parse(`#!/bin/sh
# Rendered by belay: ` + StandbyFinalArchiveScript + ` — the end of the standby site's writes,
# in the repository, before the way back (belay failover site --to primary runs it
# after making this database read-only; docs/runbook.md has the order).
set -eu
PATH=/usr/lib/postgresql/{{.Version}}/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
pgdata={{.PGData}}
die() { echo "belay-standby-final-archive: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root"
as_pg() { runuser -u postgres -- env HOME={{.Home}} PATH="$PATH" "$@"; }
q() { as_pg psql -X -A -t -q -v ON_ERROR_STOP=1 -h {{.Socket}} -p {{.Port}} -d postgres -c "$1"; }
[ "$(q 'SELECT pg_is_in_recovery()')" = f ] || die "the database is in recovery: it never took writes, there is nothing to close"
[ "$(q 'SHOW default_transaction_read_only')" = on ] || die "the database still takes writes: make it read-only first (the way back's readonly step)"
# A session that began a write before the read-only reload could still commit:
# end them all (an aborted write was never acknowledged).
q "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()" >/dev/null
tlhex=$(q 'SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)')
case "$tlhex" in
*[!0-9A-F]* | "") die "unexpected timeline '$tlhex'" ;;
esac
tl=$((0x$tlhex))
point={{.Prefix}}$tl
lsn=$(q "SELECT pg_create_restore_point('$point')")
if [ "$tl" -gt 1 ]; then
    [ -f "$pgdata/pg_wal/$tlhex.history" ] || die "timeline $tl has no history file in $pgdata/pg_wal"
    # Synchronously, whatever the asynchronous queue did with it: the way back
    # cannot follow this timeline without it. A different file of that name in
    # the repository (another site promoted to the same timeline) fails here.
    as_pg pgbackrest --stanza={{.Stanza}} --no-archive-async --log-level-console=warn archive-push "$pgdata/pg_wal/$tlhex.history"
fi
as_pg pgbackrest --stanza={{.Stanza}} --log-level-console=warn check
echo "timeline $tl, restore point $point at $lsn archived"
`))

// standbyFinalArchiveScript renders StandbyFinalArchiveScript.
func standbyFinalArchiveScript(s *Spec) (string, error) {
	d := s.StandbyDB
	var b strings.Builder
	err := standbyFinalTmpl.Execute(&b, map[string]any{
		"Version": d.PostgresVersion,
		"PGData":  PGDataPath(d.PostgresVersion),
		"Home":    pgHome,
		"Socket":  pgSocketDir,
		"Port":    d.Port,
		"Stanza":  d.Stanza,
		"Prefix":  WayBackRestorePointPrefix,
	})
	if err != nil {
		return "", fmt.Errorf("roles: render %s: %w", StandbyFinalArchiveScript, err)
	}
	return b.String(), nil
}
