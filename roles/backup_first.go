package roles

import (
	"strconv"

	"github.com/belay-sh/belay/hostcmd"
)

// Day-0 protection: a new stack takes its first full backup as soon as the
// primary accepts writes, instead of at the first scheduled full (up to a day
// or a week away), so the standby site can restore from it within minutes.
const (
	// firstBackupScript waits for a writable primary, the stanza and a working
	// archive, then runs belay-backup full once.
	firstBackupScript = "/usr/local/bin/belay-backup-first"
	// firstBackupWait bounds the wait for the primary (seconds): longer than any
	// first boot of the data nodes; past it the unit fails visibly and the
	// scheduled full backup takes over.
	firstBackupWait = 2 * 60 * 60
	// firstBackupMaxDelay caps the back-off between checks (seconds): it starts
	// at 2 s so a lab or cloud whose primary is already up loses no time, and a
	// primary that comes up later is seen within this long.
	firstBackupMaxDelay = 15
)

// firstBackupFiles are the first-backup script and its unit.
func firstBackupFiles(bk *Backup) []File {
	return []File{
		{Path: firstBackupScript, Content: firstBackupScriptText(bk), Owner: "root:root", Permissions: "0755"},
		{Path: "/etc/systemd/system/" + hostcmd.FirstBackupUnit, Content: firstBackupUnit(), Owner: "root:root", Permissions: "0644"},
	}
}

// firstBackupScriptText is idempotent: a repository that holds a full backup
// already (a reboot, a second run, a full taken by hand meanwhile) ends it at
// once. The checks run in the order the backup needs them: a data node that
// answers read-write (the canary stamp needs it), the stanza (stanza-create is
// idempotent; it needs the primary too), WAL archiving end to end (pgbackrest
// check switches WAL and waits for the segment in the repository: a backup
// without it would fail only at its very end), then the backup itself.
//
// Every stanza of PgBackRestStanzasFile gets its first full this way (a
// dedicated cell's pair as well as the stack's), each as soon as its own
// primary is ready: a slow pair does not hold the others back.
func firstBackupScriptText(bk *Backup) string {
	return `#!/bin/sh
# Rendered by belay: belay-backup-first (runs as ` + PgBackRestUser + ` from ` + hostcmd.FirstBackupUnit + `).
# The first full backup of every stanza of ` + PgBackRestStanzasFile + ` (the stack's ` + bk.Stanza + `, then the
# dedicated cells'), as soon as its primary accepts writes: waits (2 s doubling to ` + strconv.Itoa(firstBackupMaxDelay) + ` s,
# at most ` + strconv.Itoa(firstBackupWait/60) + ` min) for a read-write data node, the stanza and a working WAL archive,
# then runs ` + hostcmd.BackupScript + ` full STANZA. Skips a stanza whose repository holds a full backup already.
set -u
wait=` + strconv.Itoa(firstBackupWait) + `
` + stanzaHostsShell + `log() { echo "belay-backup-first: $*"; }
has_full() { # has_full STANZA
    pgbackrest --stanza="$1" --output=json info 2>/dev/null | grep -q '"type":"full"'
}
writable() { # writable HOST...: prints the first data node that answers read-write
    for host in "$@"; do
        ro=$(ssh postgres@"$host" psql -X -q -t -A -v ON_ERROR_STOP=1 -d postgres <<'SQL' 2>/dev/null
SELECT pg_is_in_recovery();
SQL
        ) || continue
        if [ "$ro" = f ]; then
            echo "$host"
            return 0
        fi
    done
    return 1
}
try() { # try STANZA: one attempt; sets why on failure
    stanza=$1
    hosts=$(hosts_of "$stanza") || { why="not listed in $list"; return 1; }
    # shellcheck disable=SC2086 # addresses, space separated
    if ! primary=$(writable $hosts); then
        why="no data node accepts writes yet"
        return 1
    fi
    if ! out=$(pgbackrest --stanza="$stanza" stanza-create 2>&1); then
        why="stanza-create failed: $(printf '%s' "$out" | tail -n 1)"
        return 1
    fi
    if ! out=$(pgbackrest --stanza="$stanza" check 2>&1); then
        why="WAL archiving does not work yet (pgbackrest check): $(printf '%s' "$out" | tail -n 1)"
        return 1
    fi
    log "primary $primary accepts writes, stanza $stanza exists, WAL archiving works: taking the first full backup"
    if ! ` + hostcmd.BackupScript + ` full "$stanza"; then
        why="the full backup failed"
        return 1
    fi
    return 0
}

started=$(date +%s)
delay=2
pending=$(cut -d' ' -f1 "$list")
while :; do
    left=""
    whys=""
    for s in $pending; do
        if has_full "$s"; then
            log "the repository holds a full backup of $s: nothing to do"
            continue
        fi
        why=""
        if try "$s"; then
            log "first full backup of $s taken $(($(date +%s) - started)) s after this job started"
            continue
        fi
        left="$left $s"
        whys="$whys; $s: $why"
    done
    pending=$left
    [ -n "$pending" ] || exit 0
    if [ $(($(date +%s) - started + delay)) -gt "$wait" ]; then
        echo "belay-backup-first: giving up after $(($(date +%s) - started)) s${whys} (the scheduled full backup takes over)" >&2
        exit 1
    fi
    log "waiting for${pending}${whys}; next check in ${delay}s"
    sleep "$delay"
    delay=$((delay * 2))
    [ "$delay" -le ` + strconv.Itoa(firstBackupMaxDelay) + ` ] || delay=` + strconv.Itoa(firstBackupMaxDelay) + `
done
`
}

// firstBackupUnit runs the script at every boot (it ends at once when a full
// backup exists). Type=exec, not oneshot: a oneshot would hold the boot
// transaction while it waits for the primary.
func firstBackupUnit() string {
	return `# Rendered by belay: a new stack's first full backup, as soon as the primary accepts writes.
[Unit]
Description=belay: first full pgBackRest backup (waits for a writable primary; skipped when a full exists)
Wants=network-online.target
After=network-online.target

[Service]
Type=exec
RemainAfterExit=yes
User=` + PgBackRestUser + `
ExecStart=` + firstBackupScript + `
Nice=10

[Install]
WantedBy=multi-user.target
`
}
