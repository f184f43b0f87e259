package roles

// The repository host's restic side: chrooted sftp per app and the
// maintenance job (init, retention).

import (
	"fmt"
	"strconv"
	"strings"
)

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
