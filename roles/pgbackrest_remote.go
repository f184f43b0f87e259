package roles

// forcedRemote is one side of pgBackRest over SSH: the authorized_keys forced
// command that lets a peer start only the pgBackRest remote it needs. The
// repository host and the DB nodes differ only in what they accept, so the
// checks every such command shares (no interactive login, no shell
// metacharacters, pgbackrest only, exactly one remote command) are written once.
type forcedRemote struct {
	// Comment is the script's second line: whose key it restricts.
	Comment string
	// Tag names the script in stderr and syslog.
	Tag string
	// Pre runs before the pgBackRest checks (an exact extra command), or "".
	Pre string
	// Var and RemoteType: the shell flag set by --remote-type=RemoteType.
	Var, RemoteType string
	// Allowed are case arms accepted as they are (each ending in ";;").
	Allowed []string
	// DeniedComment explains Denied; Denied is the case pattern of refused options.
	DeniedComment []string
	Denied        string
	// Who sets options ("a client"); Kind is the remote's kind for the refusal.
	Who, Kind string
}

// script renders the forced command.
func (f forcedRemote) script() string {
	s := `#!/bin/sh
# Rendered by belay: forced command (authorized_keys command=) of ` + f.Comment + `.
set -eu
refuse() {
    echo "` + f.Tag + `: refused: $1" >&2
    logger -t ` + f.Tag + ` -p auth.warning "refused: $1 (client ${SSH_CLIENT%% *})" 2>/dev/null || true
    exit 1
}
cmd=${SSH_ORIGINAL_COMMAND:-}
[ -n "$cmd" ] || refuse "interactive login"
` + f.Pre + `case $cmd in
*[!A-Za-z0-9\ =:,./_-]*) refuse "unexpected character in command" ;;
esac
set -f
# shellcheck disable=SC2086 # word splitting is the point; globbing is off
set -- $cmd
case $1 in
pgbackrest | */pgbackrest) shift ;;
*) refuse "not pgbackrest" ;;
esac
` + f.Var + `=no
last=
positional=0
for arg in "$@"; do
    case $arg in
    --remote-type=` + f.RemoteType + `) ` + f.Var + `=yes ;;
    --remote-type=*) refuse "$arg" ;;
`
	for _, a := range f.Allowed {
		s += "    " + a + "\n"
	}
	for _, c := range f.DeniedComment {
		s += "    # " + c + "\n"
	}
	s += `    ` + f.Denied + `)
        refuse "option ${arg%%=*} may not be set by ` + f.Who + `" ;;
    -*) ;;
    *) positional=$((positional + 1)) ;;
    esac
    last=$arg
done
[ "$` + f.Var + `" = yes ] || refuse "not a ` + f.Kind + ` remote"
[ "$positional" = 1 ] || refuse "expected exactly one command"
case $last in
*:remote) ;;
*) refuse "not a remote command" ;;
esac
exec /usr/bin/pgbackrest "$@"
`
	return s
}
