package roles

// The data node's pgBackRest client side: its config, the SSH client to the
// repository host, and the forced command the repository host's key runs.

import (
	"strconv"
	"strings"
)

// pgSSHClientFiles is the postgres user's SSH client setup for reaching the
// repository host: its seed-derived key and the pinned host key, nothing else.
func pgSSHClientFiles(repoHost, repoHostKey, clientKeyPEM string) []File {
	return []File{
		File{Path: pgHome + "/.ssh/id_ed25519", Content: clientKeyPEM, Owner: "postgres:postgres", Permissions: "0600", Defer: true},
		File{Path: pgHome + "/.ssh/known_hosts", Content: repoHost + " " + strings.TrimSpace(repoHostKey) + "\n", Owner: "root:root", Permissions: "0644"},
		File{Path: pgHome + "/.ssh/config", Content: pgSSHConfig, Owner: "root:root", Permissions: "0644"},
	}
}

const pgSSHConfig = `# Rendered by belay: pgBackRest reaches the repository host with the pinned host key only.
Host *
    IdentityFile ~/.ssh/id_ed25519
    IdentitiesOnly yes
    StrictHostKeyChecking yes
    UserKnownHostsFile ~/.ssh/known_hosts
    GlobalKnownHostsFile /dev/null
    BatchMode yes
    ServerAliveInterval 15
    ServerAliveCountMax 4
    ConnectTimeout 10
`

// pgBackRestClientConf is a PostgreSQL host's pgBackRest config: the repository
// is remote (repo1-host), WAL is pushed asynchronously from a local spool.
func pgBackRestClientConf(stanza, repoHost, pgdata string, port int) string {
	return `# Rendered by belay: this host's pgBackRest client; the repository is ` + repoHost + `.
[global]
repo1-host=` + repoHost + `
repo1-host-user=` + PgBackRestUser + `
# archive_command returns as soon as the segment is in the local spool; a
# background process ships the queue in parallel, so a slow cross-site link
# never stalls commits.
archive-async=y
spool-path=` + pgSpoolPath + `
# A repository outage may not fill the disk: past this size WAL is dropped
# from the queue (PostgreSQL keeps running; the archive gets a gap and the next
# backup closes it).
archive-push-queue-max=8GiB
archive-get-queue-max=1GiB
process-max=2
compress-type=zst
log-level-console=warn
log-level-file=info
log-path=/var/log/pgbackrest

[` + stanza + `]
pg1-path=` + pgdata + `
pg1-port=` + strconv.Itoa(port) + `
pg1-socket-path=` + pgSocketDir + `
`
}

// dbAuthorizedKeys lets the repository host in as postgres, for the pgBackRest
// remote and the backup job's canary stamp only (the forced command checks).
func dbAuthorizedKeys(repoKey string) string {
	return "# Rendered by belay: the repository host may only run the pgBackRest remote and the backup canary.\n" +
		"restrict,command=\"" + dbRemoteWrapper + "\" " + strings.TrimSpace(repoKey) + "\n"
}

// dbCanaryCommand is exactly what the backup job (backup role) runs over SSH on
// the data nodes, with its SQL on standard input.
const dbCanaryCommand = "psql -X -q -t -A -v ON_ERROR_STOP=1 -d postgres"

// dbRemoteWrapperScript is the forced command of the repository host's key.
// pgBackRest on the repository host starts its PostgreSQL-side remote as one
// string of space-separated options ending in "<command>:remote"
// (--remote-type=pg); the backup job's canary is one fixed psql invocation.
func dbRemoteWrapperScript(stanza, pgdata string) string {
	return forcedRemote{
		Comment: "the repository host's key",
		Tag:     "belay-db-remote",
		Pre: "if [ \"$cmd\" = \"" + dbCanaryCommand + "\" ]; then\n" +
			"    exec /usr/bin/psql -X -q -t -A -v ON_ERROR_STOP=1 -d postgres\nfi\n",
		Var:        "pg",
		RemoteType: "pg",
		Allowed: []string{
			"--stanza=" + stanza + ") ;;",
			"--stanza=*) refuse \"$arg\" ;;",
			"--pg[0-9]-path=" + pgdata + " | --pg[0-9][0-9]-path=" + pgdata + ") ;;",
		},
		DeniedComment: []string{"Options that would point the remote at another config, cluster or host."},
		Denied:        "--config=* | --config-path=* | --config-include-path=* | --pg*-path=* | --pg*-host* | --repo*-host* | --cmd-ssh=* | --lock-path=* | --spool-path=*",
		Who:           "the repository host",
		Kind:          "PostgreSQL",
	}.script()
}
