package roles

// The scheduled jobs of the repository host: a backup (with its canary stamp)
// and the daily restore verification.

import (
	"strconv"
	"strings"

	"github.com/belay-sh/belay/hostcmd"
)

// backupScript runs one backup (full or diff). Before it, it stamps the canary:
// one row into belay.belay_canary on the primary, whose row count and checksum
// go into the backup's annotations, so a later restore can be checked against
// what the backup held.
//
// Without a stanza it backs up every stanza of PgBackRestStanzasFile in turn
// (the stack's, then the dedicated cells'), fails when any failed, and one
// stanza's failure does not skip the others. "stanza-create" creates every
// listed stanza (the boot-time stanza service).
func backupScript(bk *Backup) string {
	return `#!/bin/sh
# Rendered by belay: belay-backup full|diff|stanza-create [STANZA] (runs as ` + PgBackRestUser + `).
# Without STANZA: every stanza of ` + PgBackRestStanzasFile + `, in turn.
set -eu
type=${1:?usage: belay-backup full|diff|stanza-create [STANZA]}
case $type in full | diff | stanza-create) ;; *) echo "belay-backup: $type: expected full, diff or stanza-create" >&2; exit 2 ;; esac
` + stanzaHostsShell + `if [ $# -lt 2 ]; then
    rc=0
    for s in $(cut -d' ' -f1 "$list"); do
        if [ "$type" = stanza-create ]; then
            pgbackrest --stanza="$s" stanza-create || rc=1
        else
            "$0" "$type" "$s" || { echo "belay-backup: the $type backup of stanza $s failed" >&2; rc=1; }
        fi
    done
    exit $rc
fi
[ "$type" != stanza-create ] || { echo "belay-backup: stanza-create takes no stanza" >&2; exit 2; }
stanza=$2
hosts=$(hosts_of "$stanza") || { echo "belay-backup: $stanza: not a stanza of $list" >&2; exit 2; }
# Idempotent: succeeds when the stanza exists and matches the cluster. Another
# pgBackRest command holding the stanza's lock (the boot-time stanza service
# retrying, an expire) fails it with code 50: wait that out, up to a minute.
i=0
until pgbackrest --stanza="$stanza" stanza-create; do
    rc=$?
    i=$((i + 1))
    if [ $rc -ne 50 ] || [ $i -ge 30 ]; then exit $rc; fi
    echo "belay-backup: stanza $stanza is locked by another pgBackRest command; retrying in 2 s" >&2
    sleep 2
done
canary=""
# shellcheck disable=SC2086 # addresses, space separated
for host in $hosts; do
    # Only the primary accepts the write; a replica fails and the next host is tried.
    if out=$(ssh postgres@"$host" psql -X -q -t -A -v ON_ERROR_STOP=1 -d postgres <<'SQL'
SELECT 'CREATE DATABASE ` + CanaryDatabase + `' WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '` + CanaryDatabase + `')
\gexec
\connect ` + CanaryDatabase + `
CREATE TABLE IF NOT EXISTS belay_canary (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now(), note text NOT NULL);
INSERT INTO belay_canary (note) VALUES ('before backup on ' || now()::text);
SELECT count(*) || ' ' || md5(string_agg(id::text || '|' || note, ',' ORDER BY id)) FROM belay_canary;
SQL
    ); then
        canary=$(printf '%s\n' "$out" | tail -n 1)
        break
    fi
done
set -- --stanza="$stanza" --type="$type"
if [ -n "$canary" ]; then
    set -- "$@" --annotation=belay-canary-rows="${canary% *}" --annotation=belay-canary-md5="${canary#* }"
else
    echo "belay-backup: could not stamp the canary on any DB node; the backup runs without it" >&2
fi
exec pgbackrest "$@" backup
`
}

// verifyScript restores the latest backup into a scratch data directory, starts
// it on a unix socket only, checks the canary against the backup's annotations,
// writes VerifyResultFile and removes the scratch instance.
//
// Without a stanza it verifies every stanza of PgBackRestStanzasFile in turn;
// the stack's result goes to VerifyResultFile, a dedicated cell's to
// hostcmd.CellVerifyResultFile.
func verifyScript(bk *Backup) string {
	return `#!/bin/sh
# Rendered by belay: belay-verify-restore [STANZA] (runs as ` + PgBackRestUser + `).
# Restores the latest backup of STANZA (without: every stanza of ` + PgBackRestStanzasFile + `,
# in turn) into a scratch instance, checks the canary table against what the backup
# recorded, writes ` + VerifyResultFile + ` (stanza ` + bk.Stanza + `) or ` + hostcmd.CellVerifyResultFile("STANZA") + `.
set -u
list=` + PgBackRestStanzasFile + `
if [ $# -lt 1 ]; then
    rc=0
    for s in $(cut -d' ' -f1 "$list"); do
        "$0" "$s" || rc=1
    done
    exit $rc
fi
stanza=$1
cut -d' ' -f1 "$list" | grep -qxF -- "$stanza" || { echo "belay-verify-restore: $stanza: not a stanza of $list" >&2; exit 2; }
pgbin=/usr/lib/postgresql/` + strconv.Itoa(bk.PostgresVersion) + `/bin
scratch=/var/lib/belay/verify
pgdata=$scratch/pgdata
run=$scratch/run
port=` + strconv.Itoa(verifyPort) + `
conf=/etc/pgbackrest/verify.conf
result=` + VerifyResultFile + `
[ "$stanza" = ` + bk.Stanza + ` ] || result=` + strings.ReplaceAll(hostcmd.CellVerifyResultFile("STANZA"), "STANZA", `"$stanza"`) + `
started=$(date +%s)
label=""
rows=""

finish() { # finish OK DETAILS
    now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    python3 - "$now" "$label" "$1" "$2" "$rows" "$(($(date +%s) - started))" >"$scratch/result.json" <<'PY'
import json, sys
t, label, ok, details, rows, secs = sys.argv[1:]
json.dump({"time": t, "backupLabel": label, "ok": ok == "true", "details": details,
           "canaryRows": int(rows) if rows.isdigit() else None, "durationSeconds": int(secs)}, sys.stdout)
print()
PY
    # /var/lib/belay is root's; the result file itself is this user's.
    cat "$scratch/result.json" >"$result"
    rm -f "$scratch/result.json"
    echo "belay-verify-restore: ok=$1 backup=$label: $2"
    [ "$1" = true ]
    exit $?
}
teardown() {
    if [ -f "$pgdata/postmaster.pid" ]; then
        "$pgbin/pg_ctl" -D "$pgdata" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$pgdata" "$run" "$scratch/spool"
}
trap teardown EXIT
teardown

info=$(pgbackrest --config="$conf" --stanza="$stanza" --output=json info 2>&1) || finish false "pgbackrest info failed: $info"
sel=$(printf '%s' "$info" | python3 -c '
import json, sys
backups = json.load(sys.stdin)[0].get("backup", [])
if not backups:
    sys.exit(1)
last = backups[-1]
ann = last.get("annotation") or {}
print(last["label"], ann.get("belay-canary-rows", "-"), ann.get("belay-canary-md5", "-"))
') || finish false "the repository holds no backup of stanza $stanza"
# shellcheck disable=SC2086 # three space-separated words
set -- $sel
label=$1 want_rows=$2 want_md5=$3

mkdir -p "$pgdata" "$run" "$scratch/spool" && chmod 0700 "$pgdata" "$run" "$scratch/spool"
out=$(pgbackrest --config="$conf" --stanza="$stanza" --pg1-path="$pgdata" --set="$label" --type=immediate --target-action=promote --archive-mode=off restore 2>&1) ||
    finish false "restore of $label failed: $(printf '%s' "$out" | tail -n 3)"
# The cluster's own config may live outside PGDATA (Debian layout) or point at
# files of the DB server; the scratch instance gets what it needs to start alone.
[ -f "$pgdata/postgresql.conf" ] || : >"$pgdata/postgresql.conf"
[ -f "$pgdata/pg_ident.conf" ] || : >"$pgdata/pg_ident.conf"
printf 'local all all trust\n' >"$scratch/pg_hba.conf"
out=$("$pgbin/pg_ctl" -D "$pgdata" -l "$scratch/postgres.log" -w -t 3600 start -o "-c port=$port -c listen_addresses='' -c unix_socket_directories=$run -c hba_file=$scratch/pg_hba.conf -c ident_file=$pgdata/pg_ident.conf -c archive_mode=off -c ssl=off -c shared_buffers=128MB -c shared_preload_libraries='' -c synchronous_standby_names='' -c primary_conninfo='' -c logging_collector=off -c log_destination=stderr" 2>&1) ||
    finish false "scratch instance did not start: $(tail -n 5 "$scratch/postgres.log" 2>/dev/null | tr '\n' ' ')"
q() { psql -X -q -t -A -v ON_ERROR_STOP=1 -h "$run" -p "$port" -U postgres "$@"; }
i=0
until [ "$(q -d postgres -c 'SELECT pg_is_in_recovery()' 2>/dev/null)" = f ]; do
    i=$((i + 1))
    [ $i -le 3600 ] || finish false "scratch instance still in recovery after 1 h"
    sleep 1
done
dbs=$(q -d postgres -c "SELECT count(*) FROM pg_database WHERE NOT datistemplate") || finish false "cannot query the restored cluster"
if [ "$want_rows" = - ]; then
    finish false "backup $label recorded no canary (the backup job could not stamp it); the restore started and has $dbs databases"
fi
got=$(q -d ` + CanaryDatabase + ` -c "SELECT count(*) || ' ' || md5(string_agg(id::text || '|' || note, ',' ORDER BY id)) FROM belay_canary") ||
    finish false "restored cluster has no readable ` + CanaryDatabase + `.belay_canary"
rows=${got% *}
if [ "$got" != "$want_rows $want_md5" ]; then
    finish false "canary mismatch: backup recorded $want_rows rows md5 $want_md5, restore has $rows rows md5 ${got#* }"
fi
finish true "restored $label, $dbs databases, canary $rows rows match"
`
}
