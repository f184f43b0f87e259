package roles

// The app server's hourly restic backup of /srv/<app>/shared.

import (
	"strings"

	"github.com/belay-sh/belay/internal/shq"
)

// resticClientFiles back up /srv/<app>/shared hourly to the app's restic
// repository on the repo host, over sftp with a pinned host key.
func resticClientFiles(s *Spec) []File {
	a := s.App
	userHost, _, _ := resticTarget(a.ResticRepo)
	_, host, _ := strings.Cut(userHost, "@")
	knownHosts := "/etc/belay/restic-known_hosts"
	keyFile := "/etc/belay/restic-backup.key"
	// The repository host accepts this certificate (principal: the app's
	// restic user), never the bare key.
	certFile := keyFile + "-cert.pub"
	passFile := "/etc/belay/restic-" + a.Name + ".pass"
	sshCmd := "ssh -i " + keyFile + " -o CertificateFile=" + certFile + " -o IdentitiesOnly=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=" + knownHosts +
		" -o GlobalKnownHostsFile=/dev/null -o BatchMode=yes -o ServerAliveInterval=15 " + userHost + " -s sftp"
	script := `#!/bin/sh
# Rendered by belay: snapshot /srv/` + a.Name + `/shared into the app's restic repository.
set -eu
export RESTIC_REPOSITORY=` + shq.Quote(a.ResticRepo) + `
export RESTIC_PASSWORD_FILE=` + passFile + `
export RESTIC_CACHE_DIR=/var/cache/belay-restic
exec restic -o sftp.command=` + shq.Quote(sshCmd) + ` backup --host ` + shq.Join(s.Hostname, "--tag", "belay", "--tag", "app="+a.Name, "/srv/"+a.Name+"/shared") + `
`
	return []File{
		{Path: keyFile, Content: a.BackupKey.PrivatePEM, Owner: "root:root", Permissions: "0600"},
		{Path: certFile, Content: strings.TrimSpace(a.BackupCert) + "\n", Owner: "root:root", Permissions: "0644"},
		{Path: knownHosts, Content: host + " " + strings.TrimSpace(a.RepoHostKey) + "\n", Owner: "root:root", Permissions: "0644"},
		{Path: passFile, Content: a.ResticPassword + "\n", Owner: "root:root", Permissions: "0600"},
		{Path: "/usr/local/bin/belay-restic-backup", Content: script, Owner: "root:root", Permissions: "0755"},
		{Path: "/etc/systemd/system/belay-restic-backup.service", Content: `# Rendered by belay.
[Unit]
Description=belay: restic snapshot of /srv/` + a.Name + `/shared
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
ExecStart=/usr/local/bin/belay-restic-backup
Nice=10
IOSchedulingClass=idle
`, Owner: "root:root", Permissions: "0644"},
		{Path: "/etc/systemd/system/belay-restic-backup.timer", Content: `# Rendered by belay.
[Unit]
Description=belay: hourly restic snapshot of /srv/` + a.Name + `/shared

[Timer]
OnCalendar=hourly
RandomizedDelaySec=10min
Persistent=true

[Install]
WantedBy=timers.target
`, Owner: "root:root", Permissions: "0644"},
	}
}
