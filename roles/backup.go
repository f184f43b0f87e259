package roles

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"

	"github.com/belay-sh/belay/hostcmd"
	"github.com/belay-sh/belay/inventory"
)

// Paths and names of the repository host that other roles and the drills rely on.
const (
	// PgBackRestUser owns the pgBackRest repository and is the SSH user of its clients.
	PgBackRestUser = "pgbackrest"
	// PgBackRestRepo is repo1-path on the repository host.
	PgBackRestRepo = "/var/lib/pgbackrest"
	// VerifyResultFile is written by every restore verification.
	VerifyResultFile = "/var/lib/belay/last-verified-restore.json"
	// VerifyScript restores the latest backup into a scratch instance and checks it.
	VerifyScript = "/usr/local/bin/belay-verify-restore"
	// CanaryDatabase holds the belay_canary table the backup job stamps before
	// each backup and the verification checks after a restore.
	CanaryDatabase = "belay"
	// verifyPort is the scratch instance's port (unix socket only, never TCP).
	verifyPort = 55432
	// pgBackRestHome is the pgbackrest user's home (SSH client config, keys).
	pgBackRestHome = "/home/pgbackrest"
	// remoteWrapper is the forced command of every pgBackRest client key.
	remoteWrapper = "/usr/local/bin/belay-pgbackrest-remote"
	// resticRoot holds one chroot per app: /srv/restic/<app>/repo is the repository.
	resticRoot = "/srv/restic"
)

func init() {
	register(inventory.RoleBackupRepo, backupContributor)
}

// ResticUser is the chrooted sftp user of app's restic repository on the repo
// host. Long app names are shortened with a hash: user names stop at 32 characters.
func ResticUser(app string) string {
	if u := "restic-" + app; len(u) <= 32 {
		return u
	}
	sum := sha256.Sum256([]byte(app))
	return "restic-" + strings.TrimRight(app[:15], "-") + "-" + hex.EncodeToString(sum[:4])
}

// PGDataPath is the data directory of the PostgreSQL data nodes (pgBackRest pg1-path).
func PGDataPath(version int) string {
	return fmt.Sprintf("/var/lib/postgresql/%d/main", version)
}

var stanzaRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)

func validateBackup(s *Spec) error {
	bk := s.Backup
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("roles: "+format, args...)) }
	if !stanzaRE.MatchString(bk.Stanza) {
		bad("Spec.Backup.Stanza: %q, expected a pgBackRest stanza name (A-Z, a-z, 0-9, _, -)", bk.Stanza)
	}
	if len(bk.DBHosts) == 0 {
		bad("Spec.Backup.DBHosts: empty, expected the data nodes to back up")
	}
	names := map[string]bool{}
	for i, h := range bk.DBHosts {
		if !hostnameRE.MatchString(h.Name) || names[h.Name] {
			bad("Spec.Backup.DBHosts[%d].Name: %q, expected a unique host name", i, h.Name)
		}
		names[h.Name] = true
		if a, err := netip.ParseAddr(h.Address); err != nil || !a.Is4() {
			bad("Spec.Backup.DBHosts[%d].Address: %q, expected an IPv4 address", i, h.Address)
		}
		if err := checkPublicKey(h.HostKey); err != nil {
			bad("Spec.Backup.DBHosts[%d].HostKey: %v", i, err)
		}
	}
	if len(bk.ClientKeys) == 0 {
		bad("Spec.Backup.ClientKeys: empty, expected the pgBackRest clients' keys (data nodes, standby DB)")
	}
	for i, k := range bk.ClientKeys {
		if err := checkPublicKey(k); err != nil {
			bad("Spec.Backup.ClientKeys[%d]: %v", i, err)
		}
	}
	apps := map[string]bool{}
	for i, rc := range bk.ResticClients {
		if !appNameRE.MatchString(rc.App) || apps[rc.App] {
			bad("Spec.Backup.ResticClients[%d].App: %q, expected a unique app name", i, rc.App)
		}
		apps[rc.App] = true
		if len(rc.Keys) == 0 {
			bad("Spec.Backup.ResticClients[%d].Keys: empty, expected the app servers' restic keys", i)
		}
		for j, k := range rc.Keys {
			if err := checkPublicKey(k); err != nil {
				bad("Spec.Backup.ResticClients[%d].Keys[%d]: %v", i, j, err)
			}
		}
	}
	if err := checkPrivateKey(bk.RepoKey.PrivatePEM, bk.RepoKey.Public); err != nil {
		bad("Spec.Backup.RepoKey: %v", err)
	}
	if bk.FullEvery != "daily" && bk.FullEvery != "weekly" {
		bad("Spec.Backup.FullEvery: %q, expected daily or weekly", bk.FullEvery)
	}
	if bk.RetentionDays < 1 || bk.RetentionDays > 9999 {
		bad("Spec.Backup.RetentionDays: %d, expected 1-9999", bk.RetentionDays)
	}
	if bk.ResticPassword == "" || strings.ContainsAny(bk.ResticPassword, "\n\r") {
		bad("Spec.Backup.ResticPassword: expected a non-empty single-line password")
	}
	if bk.PostgresVersion < 10 || bk.PostgresVersion > 99 {
		bad("Spec.Backup.PostgresVersion: %d, expected a PostgreSQL major version such as 15", bk.PostgresVersion)
	}
	return errors.Join(errs...)
}

// backupContributor renders the repository host: the pgBackRest repo reached
// by the DB servers over SSH, per-app chrooted restic repos, scheduled backups
// and a daily restore verification.
func backupContributor(s *Spec, c *CloudConfig) error {
	if err := validateBackup(s); err != nil {
		return err
	}
	bk := s.Backup
	c.Users = append(c.Users, User{
		// A real shell: sshd runs the forced command through it.
		Name: PgBackRestUser, Gecos: "pgBackRest repository", Shell: "/bin/sh",
		System: true, LockPasswd: true, HomeDir: pgBackRestHome,
	})
	var resticUsers []string
	for _, rc := range bk.ResticClients {
		u := ResticUser(rc.App)
		resticUsers = append(resticUsers, u)
		c.Users = append(c.Users, User{
			Name: u, Gecos: "restic repository of " + rc.App, Shell: "/usr/sbin/nologin",
			System: true, LockPasswd: true, HomeDir: resticRoot + "/" + rc.App, NoCreateHome: true,
		})
	}
	c.WriteFiles = append(c.WriteFiles,
		File{Path: "/etc/pgbackrest/pgbackrest.conf", Content: pgBackRestRepoConf(bk), Owner: "root:root", Permissions: "0644"},
		File{Path: "/etc/pgbackrest/verify.conf", Content: pgBackRestVerifyConf(bk), Owner: "root:root", Permissions: "0644"},
		File{Path: remoteWrapper, Content: remoteWrapperScript(bk.Stanza), Owner: "root:root", Permissions: "0755"},
		File{Path: pgBackRestHome + "/.ssh/authorized_keys", Content: pgBackRestAuthorizedKeys(bk), Owner: "root:root", Permissions: "0644"},
		File{Path: pgBackRestHome + "/.ssh/id_ed25519", Content: bk.RepoKey.PrivatePEM, Owner: PgBackRestUser + ":" + PgBackRestUser, Permissions: "0600", Defer: true},
		File{Path: pgBackRestHome + "/.ssh/known_hosts", Content: dbKnownHosts(bk), Owner: "root:root", Permissions: "0644"},
		File{Path: pgBackRestHome + "/.ssh/config", Content: pgBackRestSSHConfig, Owner: "root:root", Permissions: "0644"},
		File{Path: hostcmd.BackupScript, Content: backupScript(bk), Owner: "root:root", Permissions: "0755"},
		File{Path: VerifyScript, Content: verifyScript(bk), Owner: "root:root", Permissions: "0755"},
		File{Path: hostcmd.LastWALPath, Content: "#!/bin/sh\n# Rendered by belay: prints \"<mtime epoch> <segment>\" of the newest WAL segment archived for stanza " + bk.Stanza + "\n# (belay backup status: its age is the current cross-site RPO).\nset -eu\n" + hostcmd.LastWALScript(bk.Stanza) + "\n", Owner: "root:root", Permissions: "0755"},
		// Written by the pgbackrest user at every verification, readable by anyone.
		File{Path: VerifyResultFile, Content: `{"time":"","backupLabel":"","ok":false,"details":"no restore verification has run yet"}` + "\n", Owner: PgBackRestUser + ":" + PgBackRestUser, Permissions: "0644", Defer: true},
		File{Path: "/etc/systemd/system/belay-pgbackrest-stanza.service", Content: stanzaService(bk.Stanza), Owner: "root:root", Permissions: "0644"},
	)
	c.WriteFiles = append(c.WriteFiles, firstBackupFiles(bk)...)
	full, diff := backupCalendars(bk.FullEvery)
	for _, u := range []struct{ kind, cal, desc string }{
		{"full", full, "full pgBackRest backup"},
		{"diff", diff, "differential pgBackRest backup"},
	} {
		c.WriteFiles = append(c.WriteFiles,
			File{Path: "/etc/systemd/system/belay-backup-" + u.kind + ".service", Content: oneshotUnit("belay: "+u.desc, PgBackRestUser, "/usr/local/bin/belay-backup "+u.kind, ""), Owner: "root:root", Permissions: "0644"},
			File{Path: "/etc/systemd/system/belay-backup-" + u.kind + ".timer", Content: timerUnit("belay: "+u.desc, u.cal, "30min"), Owner: "root:root", Permissions: "0644"},
		)
	}
	c.WriteFiles = append(c.WriteFiles,
		File{Path: "/etc/systemd/system/belay-verify-restore.service", Content: oneshotUnit("belay: restore the latest backup into a scratch instance and check it", PgBackRestUser, VerifyScript, "TimeoutStartSec=6h\n"), Owner: "root:root", Permissions: "0644"},
		File{Path: "/etc/systemd/system/belay-verify-restore.timer", Content: timerUnit("belay: daily restore verification", "*-*-* 05:00:00", "30min"), Owner: "root:root", Permissions: "0644"},
	)

	// restic: one chrooted sftp user per app.
	if len(resticUsers) > 0 {
		c.WriteFiles = append(c.WriteFiles, File{Path: "/etc/ssh/sshd_config.d/20-belay-restic.conf", Content: resticSSHDConf(resticUsers), Owner: "root:root", Permissions: "0644"})
	}
	for _, rc := range bk.ResticClients {
		home := resticRoot + "/" + rc.App
		c.WriteFiles = append(c.WriteFiles,
			File{Path: home + "/.ssh/authorized_keys", Content: resticAuthorizedKeys(rc), Owner: "root:root", Permissions: "0644"},
			File{Path: "/etc/belay/restic-" + rc.App + ".pass", Content: bk.ResticPassword + "\n", Owner: "root:" + ResticUser(rc.App), Permissions: "0640", Defer: true},
		)
	}
	c.WriteFiles = append(c.WriteFiles,
		File{Path: "/usr/local/bin/belay-restic-maintain", Content: resticMaintainScript(bk), Owner: "root:root", Permissions: "0755"},
		File{Path: "/etc/systemd/system/belay-restic-maintain.service", Content: oneshotUnit("belay: initialise and prune the restic repositories", "root", "/usr/local/bin/belay-restic-maintain", ""), Owner: "root:root", Permissions: "0644"},
		File{Path: "/etc/systemd/system/belay-restic-maintain.timer", Content: timerUnit("belay: daily restic retention", "*-*-* 03:00:00", "30min"), Owner: "root:root", Permissions: "0644"},
	)

	dir := func(path, owner, mode string) []string {
		return []string{"install", "-d", "-m", mode, "-o", owner, "-g", owner, path}
	}
	c.Runcmd = append(c.Runcmd,
		dir(PgBackRestRepo, PgBackRestUser, "0750"),
		dir("/var/log/pgbackrest", PgBackRestUser, "0750"),
		dir(pgBackRestHome+"/.ssh", PgBackRestUser, "0700"),
		dir("/var/lib/belay/verify", PgBackRestUser, "0700"),
		// The chroot and the path to it must be root-owned (sshd refuses otherwise).
		dir(resticRoot, "root", "0755"),
	)
	for _, rc := range bk.ResticClients {
		home := resticRoot + "/" + rc.App
		c.Runcmd = append(c.Runcmd,
			dir(home, "root", "0755"),
			dir(home+"/.ssh", "root", "0755"),
			dir(home+"/repo", ResticUser(rc.App), "0700"),
		)
	}
	if !hasRole(s, inventory.RoleDB) && !hasRole(s, inventory.RoleDBMonitor) && !hasRole(s, inventory.RoleStandbyDB) {
		// The image's default cluster has no job here; the scratch instance of the
		// verification runs on its own port.
		c.Runcmd = append(c.Runcmd, []string{"sh", "-c", "systemctl disable --now postgresql.service || true"})
	}
	c.Runcmd = append(c.Runcmd,
		[]string{"systemctl", "daemon-reload"},
		[]string{"systemctl", "enable", "belay-pgbackrest-stanza.service", hostcmd.FirstBackupUnit, "belay-backup-full.timer", "belay-backup-diff.timer", "belay-verify-restore.timer", "belay-restic-maintain.timer"},
		[]string{"systemctl", "start", "belay-backup-full.timer", "belay-backup-diff.timer", "belay-verify-restore.timer", "belay-restic-maintain.timer"},
		// Creates the restic repositories now, so the first hourly snapshot finds them.
		[]string{"systemctl", "start", "belay-restic-maintain.service"},
		// Retries until the primary is up: WAL archiving fails until the stanza exists.
		[]string{"systemctl", "start", "--no-block", "belay-pgbackrest-stanza.service"},
		// Day-0 protection: the first full backup as soon as the primary accepts
		// writes, not at the first scheduled full (backup_first.go).
		[]string{"systemctl", "start", "--no-block", hostcmd.FirstBackupUnit},
	)
	return nil
}

// backupCalendars returns the OnCalendar of the full and the differential backups.
func backupCalendars(fullEvery string) (full, diff string) {
	if fullEvery == "weekly" {
		return "Sun *-*-* 01:00:00", "Mon..Sat *-*-* 01:00:00"
	}
	// A full every night; the differential at noon halves the restore's WAL replay.
	return "*-*-* 01:00:00", "*-*-* 13:00:00"
}

func pgBackRestRepoConf(bk *Backup) string {
	var b strings.Builder
	fmt.Fprintf(&b, `# Rendered by belay: the pgBackRest repository (this host) of stanza %s.
[global]
repo1-path=%s
# Time-based retention: full backups (and their WAL) that still serve
# point-in-time recovery within the last %d days are kept.
repo1-retention-full-type=time
repo1-retention-full=%d
start-fast=y
compress-type=zst
process-max=2
log-level-console=info
log-level-file=detail
log-path=/var/log/pgbackrest

[%s]
`, bk.Stanza, PgBackRestRepo, bk.RetentionDays, bk.RetentionDays, bk.Stanza)
	for i, h := range bk.DBHosts {
		n := i + 1
		fmt.Fprintf(&b, "# %s\npg%d-host=%s\npg%d-host-user=postgres\npg%d-path=%s\npg%d-port=5432\n", h.Name, n, h.Address, n, n, PGDataPath(bk.PostgresVersion), n)
	}
	return b.String()
}

// pgBackRestVerifyConf is the local view the verification restores with: the
// same repository, a scratch data directory, no remote hosts.
func pgBackRestVerifyConf(bk *Backup) string {
	return fmt.Sprintf(`# Rendered by belay: restore verification only (scratch instance on this host).
[global]
repo1-path=%s
log-level-console=warn
log-level-file=detail
log-path=/var/log/pgbackrest
lock-path=/tmp/pgbackrest-verify
# The package's /var/spool/pgbackrest is postgres-owned (0750); the restore
# lists its spool path, so this user needs one of its own.
spool-path=/var/lib/belay/verify/spool
# The repository is local: a retry cannot fix a bad file, it only delays the verdict.
job-retry=0

[%s]
pg1-path=/var/lib/belay/verify/pgdata
pg1-port=%d
pg1-socket-path=/var/lib/belay/verify/run
`, PgBackRestRepo, bk.Stanza, verifyPort)
}

func pgBackRestAuthorizedKeys(bk *Backup) string {
	var b strings.Builder
	b.WriteString("# Rendered by belay: pgBackRest clients may only start the pgBackRest remote.\n")
	for _, k := range bk.ClientKeys {
		fmt.Fprintf(&b, "restrict,command=\"%s\" %s\n", remoteWrapper, strings.TrimSpace(k))
	}
	return b.String()
}

func dbKnownHosts(bk *Backup) string {
	var b strings.Builder
	for _, h := range bk.DBHosts {
		fmt.Fprintf(&b, "%s %s\n", h.Address, strings.TrimSpace(h.HostKey))
	}
	return b.String()
}

const pgBackRestSSHConfig = `# Rendered by belay: the repository reaches the DB nodes with pinned host keys only.
Host *
    IdentityFile ~/.ssh/id_ed25519
    IdentitiesOnly yes
    StrictHostKeyChecking yes
    UserKnownHostsFile ~/.ssh/known_hosts
    GlobalKnownHostsFile /dev/null
    BatchMode yes
    ServerAliveInterval 15
    ConnectTimeout 10
`

// remoteWrapperScript is the forced command of pgBackRest client keys.
// pgBackRest starts its remote as
//
//	ssh ... pgbackrest@repo '<repo-host-cmd> --exec-id=.. --log-level-console=off
//	    --log-level-stderr=error --process=0 --remote-type=repo --repo=1
//	    --stanza=S <command>:remote'
//
// (protocolRemoteParamSsh in pgBackRest's src/protocol/helper.c): one string of
// space-separated options, values quoted only if they contain spaces; required
// pg options such as --pg1-path ride along. The wrapper accepts that shape for
// this stanza, refuses options that would point the remote at another
// repository or config, and execs pgbackrest without a shell.
func remoteWrapperScript(stanza string) string {
	return forcedRemote{
		Comment:    "pgBackRest clients",
		Tag:        "belay-pgbackrest-remote",
		Var:        "repo",
		RemoteType: "repo",
		Allowed: []string{
			"--stanza=" + stanza + ") ;;",
			"--stanza=*) refuse \"$arg\" ;;",
			"--repo1-path=" + PgBackRestRepo + ") ;;",
		},
		DeniedComment: []string{
			"Options that would point the remote at another config or repository, or",
			"make it connect onward. pg options are passed on (and unused by a repo remote).",
		},
		Denied: "--config=* | --config-path=* | --config-include-path=* | --repo*-path=* | --repo*-host* | --repo=[!1]* | --repo=1?*",
		Who:    "a client",
		Kind:   "repository",
	}.script()
}

// backupScript runs one backup (full or diff). Before it, it stamps the canary:
// one row into belay.belay_canary on the primary, whose row count and checksum
// go into the backup's annotations, so a later restore can be checked against
// what the backup held.
func backupScript(bk *Backup) string {
	var hosts []string
	for _, h := range bk.DBHosts {
		hosts = append(hosts, h.Address)
	}
	return `#!/bin/sh
# Rendered by belay: belay-backup full|diff (runs as ` + PgBackRestUser + `).
set -eu
type=${1:?usage: belay-backup full|diff}
case $type in full | diff) ;; *) echo "belay-backup: $type: expected full or diff" >&2; exit 2 ;; esac
stanza=` + bk.Stanza + `
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
for host in ` + strings.Join(hosts, " ") + `; do
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
func verifyScript(bk *Backup) string {
	return `#!/bin/sh
# Rendered by belay: belay-verify-restore (runs as ` + PgBackRestUser + `).
# Restores the latest backup of stanza ` + bk.Stanza + ` into a scratch instance, checks
# the canary table against what the backup recorded, writes ` + VerifyResultFile + `.
set -u
stanza=` + bk.Stanza + `
pgbin=/usr/lib/postgresql/` + strconv.Itoa(bk.PostgresVersion) + `/bin
scratch=/var/lib/belay/verify
pgdata=$scratch/pgdata
run=$scratch/run
port=` + strconv.Itoa(verifyPort) + `
conf=/etc/pgbackrest/verify.conf
result=` + VerifyResultFile + `
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
out=$(pgbackrest --config="$conf" --stanza="$stanza" --set="$label" --type=immediate --target-action=promote --archive-mode=off restore 2>&1) ||
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

func stanzaService(stanza string) string {
	return `# Rendered by belay: create the pgBackRest stanza as soon as the primary answers.
[Unit]
Description=belay: create pgBackRest stanza ` + stanza + `
Wants=network-online.target
After=network-online.target
StartLimitIntervalSec=0

[Service]
Type=oneshot
RemainAfterExit=yes
User=` + PgBackRestUser + `
ExecStart=/usr/bin/pgbackrest --stanza=` + stanza + ` stanza-create
Restart=on-failure
RestartSec=30

[Install]
WantedBy=multi-user.target
`
}

func oneshotUnit(desc, user, exec, extra string) string {
	return `# Rendered by belay.
[Unit]
Description=` + desc + `
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
User=` + user + `
ExecStart=` + exec + `
Nice=10
IOSchedulingClass=idle
` + extra
}

func timerUnit(desc, calendar, jitter string) string {
	return `# Rendered by belay.
[Unit]
Description=` + desc + `

[Timer]
OnCalendar=` + calendar + `
RandomizedDelaySec=` + jitter + `
Persistent=true

[Install]
WantedBy=timers.target
`
}

// resticSSHDConf confines each app's restic user to sftp inside its own
// chroot. OpenSSH ends a Match block at the end of an included file, so this
// drop-in cannot swallow the rest of sshd_config.
func resticSSHDConf(users []string) string {
	return `# Rendered by belay: restic clients get sftp in their app's chroot, nothing else.
Match User ` + strings.Join(users, ",") + `
    ChrootDirectory %h
    ForceCommand internal-sftp -d /repo
    AuthenticationMethods publickey
    AllowTcpForwarding no
    AllowAgentForwarding no
    X11Forwarding no
    PermitTTY no
    PermitTunnel no
`
}

func resticAuthorizedKeys(rc ResticClient) string {
	var b strings.Builder
	b.WriteString("# Rendered by belay: restic snapshots of " + rc.App + " (sftp only, chrooted by sshd).\n")
	for _, k := range rc.Keys {
		fmt.Fprintf(&b, "restrict %s\n", strings.TrimSpace(k))
	}
	return b.String()
}

// resticMaintainScript creates missing repositories and applies retention.
// It runs as root and drops to each app's user, so the files stay theirs.
func resticMaintainScript(bk *Backup) string {
	var b strings.Builder
	b.WriteString(`#!/bin/sh
# Rendered by belay: create missing restic repositories, then forget and prune
# snapshots older than the retention (` + strconv.Itoa(bk.RetentionDays) + ` days; the last 3 always stay).
set -u
rc=0
for pair in`)
	for _, r := range bk.ResticClients {
		b.WriteString(" " + r.App + ":" + ResticUser(r.App))
	}
	b.WriteString(`; do
    app=${pair%%:*}
    user=${pair#*:}
    repo=` + resticRoot + `/$app/repo
    r() { runuser -u "$user" -- restic --no-cache -r "$repo" --password-file /etc/belay/restic-$app.pass "$@"; }
    if ! r cat config >/dev/null 2>&1; then
        r init || { echo "belay-restic-maintain: init of $repo failed" >&2; rc=1; continue; }
    fi
    r forget --keep-within ` + strconv.Itoa(bk.RetentionDays) + `d --keep-last 3 --prune || rc=1
done
exit $rc
`)
	return b.String()
}
