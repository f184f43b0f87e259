package roles

// The repository host's pgBackRest side: its config and the verification's
// local view, the keys and pinned host keys between it and the DB nodes, the
// forced command of the clients' keys, and the stanza-create unit.

import (
	"fmt"
	"strings"
)

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
