package roles

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
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
	c.WriteFiles = append(c.WriteFiles,
		File{Path: "/etc/pgbackrest/pgbackrest.conf", Content: pgBackRestRepoConf(bk), Owner: "root:root", Permissions: "0644"},
		File{Path: "/etc/pgbackrest/verify.conf", Content: pgBackRestVerifyConf(bk), Owner: "root:root", Permissions: "0644"},
		File{Path: remoteWrapper, Content: remoteWrapperScript(), Owner: "root:root", Permissions: "0755"},
		File{Path: pgBackRestHome + "/.ssh/authorized_keys", Content: pgBackRestAuthorizedKeys(bk), Owner: "root:root", Permissions: "0644"},
		File{Path: pgBackRestHome + "/.ssh/id_ed25519", Content: bk.RepoKey.PrivatePEM, Owner: PgBackRestUser + ":" + PgBackRestUser, Permissions: "0600", Defer: true},
		File{Path: pgBackRestHome + "/.ssh/known_hosts", Content: dbKnownHosts(bk), Owner: "root:root", Permissions: "0644"},
		File{Path: pgBackRestHome + "/.ssh/config", Content: pgBackRestSSHConfig, Owner: "root:root", Permissions: "0644"},
		File{Path: hostcmd.BackupScript, Content: backupScript(bk), Owner: "root:root", Permissions: "0755"},
		File{Path: VerifyScript, Content: verifyScript(bk), Owner: "root:root", Permissions: "0755"},
		File{Path: PgBackRestStanzasFile, Content: stanzasList(bk), Owner: "root:root", Permissions: "0644"},
		File{Path: hostcmd.LastWALPath, Content: lastWALScript(bk), Owner: "root:root", Permissions: "0755"},
		// Written by the pgbackrest user at every verification, readable by anyone.
		File{Path: VerifyResultFile, Content: `{"time":"","backupLabel":"","ok":false,"details":"no restore verification has run yet"}` + "\n", Owner: PgBackRestUser + ":" + PgBackRestUser, Permissions: "0644", Defer: true},
		File{Path: "/etc/systemd/system/belay-pgbackrest-stanza.service", Content: stanzaService(), Owner: "root:root", Permissions: "0644"},
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

	// restic: one chrooted sftp user per app, created by the maintain job from
	// a one-line-per-app list; the app servers log in with CA certificates.
	c.WriteFiles = append(c.WriteFiles,
		File{Path: "/etc/ssh/sshd_config.d/20-belay-restic.conf", Content: resticSSHDConf(), Owner: "root:root", Permissions: "0644"},
		File{Path: ResticCAFile, Content: strings.TrimSpace(bk.ResticCA) + "\n", Owner: "root:root", Permissions: "0644"},
		File{Path: ResticAppsFile, Content: resticAppsList(bk.ResticApps), Owner: "root:root", Permissions: "0644"},
		File{Path: ResticPassFile, Content: bk.ResticPassword + "\n", Owner: "root:root", Permissions: "0600"},
		File{Path: ResticMaintainScript, Content: resticMaintainScript(bk), Owner: "root:root", Permissions: "0755"},
		File{Path: "/etc/systemd/system/belay-restic-maintain.service", Content: oneshotUnit("belay: create, initialise and prune the restic repositories", "root", ResticMaintainScript, ""), Owner: "root:root", Permissions: "0644"},
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
		dir(cellVerifyDir, PgBackRestUser, "0755"),
		// The chroot and the path to it must be root-owned (sshd refuses otherwise).
		dir(resticRoot, "root", "0755"),
	)
	if !hasRole(s, inventory.RoleDB) && !hasRole(s, inventory.RoleDBMonitor) && !hasRole(s, inventory.RoleStandbyDB) {
		// The image's default cluster has no job here; the scratch instance of the
		// verification runs on its own port.
		c.Runcmd = append(c.Runcmd, []string{"sh", "-c", "systemctl disable --now postgresql.service || true"})
	}
	c.Runcmd = append(c.Runcmd,
		[]string{"systemctl", "daemon-reload"},
		[]string{"systemctl", "enable", "belay-pgbackrest-stanza.service", hostcmd.FirstBackupUnit, "belay-backup-full.timer", "belay-backup-diff.timer", "belay-verify-restore.timer", "belay-restic-maintain.timer"},
		[]string{"systemctl", "start", "belay-backup-full.timer", "belay-backup-diff.timer", "belay-verify-restore.timer", "belay-restic-maintain.timer"},
		// Creates the restic users and repositories now, so the first hourly snapshot finds them.
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
// lastWALScript prints "<mtime epoch> <segment>" of the newest WAL segment
// archived for the stack's stanza, or for the listed stanza given as its
// argument (belay backup status: its age is the current cross-site RPO).
func lastWALScript(bk *Backup) string {
	return `#!/bin/sh
# Rendered by belay: belay-last-wal [STANZA] prints "<mtime epoch> <segment>" of the newest WAL
# segment archived for STANZA (default ` + bk.Stanza + `, the stack's), a stanza of ` + PgBackRestStanzasFile + `
# (belay backup status: its age is the current cross-site RPO).
set -eu
stanza=${1:-` + bk.Stanza + `}
case $stanza in "" | *[!A-Za-z0-9_-]*) echo "belay-last-wal: $stanza: not a stanza name" >&2; exit 2 ;; esac
cut -d' ' -f1 ` + PgBackRestStanzasFile + ` | grep -qxF -- "$stanza" || { echo "belay-last-wal: $stanza: not a stanza of this repository" >&2; exit 2; }
` + strings.ReplaceAll(hostcmd.LastWALScript("STANZA"), "STANZA", `"$stanza"`) + `
`
}

func backupCalendars(fullEvery string) (full, diff string) {
	if fullEvery == "weekly" {
		return "Sun *-*-* 01:00:00", "Mon..Sat *-*-* 01:00:00"
	}
	// A full every night; the differential at noon halves the restore's WAL replay.
	return "*-*-* 01:00:00", "*-*-* 13:00:00"
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
