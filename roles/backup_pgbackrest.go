package roles

// The repository host's pgBackRest side: its config and the verification's
// local view, the keys and pinned host keys between it and the DB nodes, the
// forced command of the clients' keys, and the stanza-create unit.

import (
	"fmt"
	"strings"

	"github.com/belay-sh/belay/hostcmd"
)

func pgBackRestRepoConf(bk *Backup) string {
	var names []string
	for _, st := range bk.stanzas() {
		names = append(names, st.Stanza)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `# Rendered by belay: the pgBackRest repository (this host) of stanza%s %s.
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
`, map[bool]string{true: "s", false: ""}[len(names) > 1], strings.Join(names, ", "), PgBackRestRepo, bk.RetentionDays, bk.RetentionDays)
	for _, st := range bk.stanzas() {
		fmt.Fprintf(&b, "\n[%s]\n", st.Stanza)
		for i, h := range st.DBHosts {
			n := i + 1
			fmt.Fprintf(&b, "# %s\npg%d-host=%s\npg%d-host-user=postgres\npg%d-path=%s\npg%d-port=5432\n", h.Name, n, h.Address, n, n, PGDataPath(bk.PostgresVersion), n)
		}
	}
	return b.String()
}

// pgBackRestVerifyConf is the local view the verification restores with: the
// same repository, no remote hosts. It names no stanza: pgBackRest refuses pg
// options in [global], so the verification passes the scratch data
// directory on its command line and every stanza restores with this file.
func pgBackRestVerifyConf(bk *Backup) string {
	return fmt.Sprintf(`# Rendered by belay: restore verification only (scratch instance on this host), every stanza.
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
`, PgBackRestRepo)
}

// pgBackRestAuthorizedKeys binds each client key to its stanza: the forced
// command gets the stanza as its argument and refuses any other, so a
// dedicated cell's data node cannot write into the stack's archive (nor
// another cell's).
func pgBackRestAuthorizedKeys(bk *Backup) string {
	var b strings.Builder
	b.WriteString("# Rendered by belay: pgBackRest clients may only start the pgBackRest remote, of their own stanza.\n")
	for _, st := range bk.stanzas() {
		for _, k := range st.ClientKeys {
			fmt.Fprintf(&b, "restrict,command=\"%s %s\" %s\n", remoteWrapper, st.Stanza, strings.TrimSpace(k))
		}
	}
	return b.String()
}

func dbKnownHosts(bk *Backup) string {
	var b strings.Builder
	for _, st := range bk.stanzas() {
		for _, h := range st.DBHosts {
			fmt.Fprintf(&b, "%s %s\n", h.Address, strings.TrimSpace(h.HostKey))
		}
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

// remoteWrapperScript is the forced command of pgBackRest client keys, with
// the key's stanza as its one argument (authorized_keys command="... STANZA").
// pgBackRest starts its remote as
//
//	ssh ... pgbackrest@repo '<repo-host-cmd> --exec-id=.. --log-level-console=off
//	    --log-level-stderr=error --process=0 --remote-type=repo --repo=1
//	    --stanza=S <command>:remote'
//
// (protocolRemoteParamSsh in pgBackRest's src/protocol/helper.c): one string of
// space-separated options, values quoted only if they contain spaces; required
// pg options such as --pg1-path ride along. The wrapper accepts that shape for
// the key's stanza, refuses options that would point the remote at another
// repository or config, and execs pgbackrest without a shell.
func remoteWrapperScript() string {
	return forcedRemote{
		Comment: "pgBackRest clients (argument: the key's stanza)",
		Tag:     "belay-pgbackrest-remote",
		Pre: "allowed=${1:-}\n" +
			"case $allowed in \"\" | *[!A-Za-z0-9_-]*) refuse \"no stanza bound to this key\" ;; esac\n",
		Var:        "repo",
		RemoteType: "repo",
		Allowed: []string{
			"--stanza=\"$allowed\") ;;",
			"--stanza=*) refuse \"$arg (this key's stanza is $allowed)\" ;;",
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

// stanzaService creates every listed stanza as soon as its primary answers
// (belay-backup stanza-create fails until all exist; systemd retries).
func stanzaService() string {
	return `# Rendered by belay: create the pgBackRest stanzas as soon as their primaries answer.
[Unit]
Description=belay: create the pgBackRest stanzas listed in ` + PgBackRestStanzasFile + `
Wants=network-online.target
After=network-online.target
StartLimitIntervalSec=0

[Service]
Type=oneshot
RemainAfterExit=yes
User=` + PgBackRestUser + `
ExecStart=` + hostcmd.BackupScript + ` stanza-create
Restart=on-failure
RestartSec=30

[Install]
WantedBy=multi-user.target
`
}
