package roles

// The repository host's restic side: chrooted sftp per app, reached with
// certificates from the stack's restic CA, and the maintenance job (users,
// repositories, retention). Nothing here is rendered per app except one line
// of ResticAppsFile: Hetzner caps user data at 32 KiB.

import (
	"strconv"
	"strings"
)

const (
	// ResticGroup holds every app's restic user; sshd's restic block matches it.
	ResticGroup = "belay-restic"
	// ResticAppsFile lists "<app> <user>" a line; belay-restic-maintain creates
	// the users and repositories it names.
	ResticAppsFile = "/etc/belay/restic-apps"
	// ResticCAFile is the restic user CA's public key (sshd TrustedUserCAKeys).
	ResticCAFile = "/etc/belay/restic-user-ca.pub"
	// ResticPassFile is the repositories' password on the repository host, root only.
	ResticPassFile = "/etc/belay/restic.pass"
	// ResticMaintainScript creates the users and repositories and applies retention.
	ResticMaintainScript = "/usr/local/bin/belay-restic-maintain"
)

// resticSSHDConf confines each app's restic user to sftp inside its own
// chroot. The users log in only with a certificate of the restic CA; with no
// AuthorizedPrincipalsFile sshd requires the login name among the
// certificate's principals, and each certificate names one app's user, so
// restic-a's certificate never logs in as restic-b. Outside this block the CA
// is not trusted: it cannot sign a login for any other user. (No
// "AuthorizedPrincipalsFile none" line: OpenSSH 9.2 reads "none" there as a
// file name and then refuses every certificate; the default is what we want.)
// OpenSSH ends a
// Match block at the end of an included file, so this drop-in cannot swallow
// the rest of sshd_config.
func resticSSHDConf() string {
	return `# Rendered by belay: restic clients get sftp in their app's chroot, nothing else,
# with a certificate of the stack's restic CA naming the user (no authorized_keys).
Match Group ` + ResticGroup + `
    TrustedUserCAKeys ` + ResticCAFile + `
    AuthorizedKeysFile none
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

// resticAppsList is ResticAppsFile: one short line per app.
func resticAppsList(apps []string) string {
	var b strings.Builder
	for _, app := range apps {
		b.WriteString(app + " " + ResticUser(app) + "\n")
	}
	return b.String()
}

// resticMaintainScript creates the users and chroots ResticAppsFile names,
// takes users no longer listed out of the restic group (sshd then trusts no
// certificate for them; their repositories stay), creates missing
// repositories, removes what releases before the CA left (per-app
// authorized_keys and password files) and applies retention. It runs as root and drops to each app's
// user, so the files stay theirs; the password reaches restic in its
// environment (readable by root and that user only), never in a file the
// users could read.
func resticMaintainScript(bk *Backup) string {
	days := strconv.Itoa(bk.RetentionDays)
	return `#!/bin/sh
# Rendered by belay: create the restic users and repositories listed in
# ` + ResticAppsFile + ` ("<app> <user>" a line), then forget and prune snapshots
# older than the retention (` + days + ` days; the last 3 always stay).
set -u
rc=0
list=` + ResticAppsFile + `
getent group ` + ResticGroup + ` >/dev/null || groupadd --system ` + ResticGroup + ` || exit 1
RESTIC_PASSWORD=$(cat ` + ResticPassFile + `) || exit 1
export RESTIC_PASSWORD
for user in $(getent group ` + ResticGroup + ` | cut -d: -f4 | tr , ' '); do
    if ! cut -d' ' -f2 "$list" | grep -qxF "$user"; then
        echo "belay-restic-maintain: $user is no longer listed, removed from ` + ResticGroup + ` (repository kept)" >&2
        gpasswd -d "$user" ` + ResticGroup + ` >/dev/null || rc=1
    fi
done
while read -r app user; do
    [ -n "$app" ] || continue
    home=` + resticRoot + `/$app
    repo=$home/repo
    if ! id -u "$user" >/dev/null 2>&1; then
        useradd --system --user-group --no-create-home --home-dir "$home" --shell /usr/sbin/nologin \
            --comment "restic repository of $app" "$user" || { echo "belay-restic-maintain: useradd $user failed" >&2; rc=1; continue; }
    fi
    usermod -a -G ` + ResticGroup + ` "$user" || { rc=1; continue; }
    # The chroot must be root-owned (sshd refuses otherwise); the repository is the user's.
    install -d -m 0755 -o root -g root "$home" && install -d -m 0700 -o "$user" -g "$user" "$repo" || { rc=1; continue; }
    # Left by releases before the restic CA: per-app keys and password files.
    rm -rf -- "$home/.ssh" && rm -f -- "/etc/belay/restic-$app.pass" || rc=1
    r() { runuser -u "$user" -- restic --no-cache -r "$repo" "$@" </dev/null; }
    if ! r cat config >/dev/null 2>&1; then
        r init || { echo "belay-restic-maintain: init of $repo failed" >&2; rc=1; continue; }
    fi
    r forget --keep-within ` + days + `d --keep-last 3 --prune || rc=1
done < "$list"
exit $rc
`
}
