package roles

// ReleaseUnit runs an app's release command (`belay deploy --release-command`).
func ReleaseUnit(app string) string { return "belay-release@" + app + ".service" }

// releaseSudo: the deploy user starts (and, on timeout, stops) the release
// command unit. The unit runs as the app user from the release the deploy user
// linked: nothing more than a canary start already gives it.
func releaseSudo(app string) []string {
	var out []string
	for _, verb := range []string{"start", "stop", "reset-failed"} {
		out = append(out, "/usr/bin/systemctl "+verb+" "+ReleaseUnit(app))
	}
	return out
}

// appRunScript starts a release as the app user (the units' User=), with
// BELAY_RELEASE naming the release directory the slot's link points at.
//
// The release's own env (.belay-env, written by the deployer) is read HERE, by
// the app user, never by systemd: root would follow whatever the deploy user
// put at that path (a symlink to /etc/shadow), the app user can only read what
// it could read anyway. A link, a non-regular file, a malformed line or a name
// belay owns (DATABASE_URL, PORT, BELAY_*) refuses to start. Values are
// exported as data: no line is evaluated by the shell.
//
// Slot "release" runs the release command (.belay-release-command, one argv
// word per line, the first a path inside the release) of the release that
// /srv/APP/hook points at, instead of ./start.
const appRunScript = `#!/bin/sh
# Rendered by belay: belay-app-run APP SLOT starts the release /srv/APP/{current,canary,hook} points at.
set -eu
app=$1
slot=$2
case $slot in
stable) link=/srv/$app/current ;;
canary) link=/srv/$app/canary ;;
release) link=/srv/$app/hook ;;
*) echo "belay-app-run: slot $slot: expected stable, canary or release" >&2; exit 2 ;;
esac
dir=$(readlink -e "$link") || { echo "belay-app-run: $link: no release" >&2; exit 1; }
BELAY_RELEASE=$(basename "$dir")
BELAY_SLOT=$slot
export BELAY_RELEASE BELAY_SLOT
cd "$dir"
env=$dir/.belay-env
if [ -e "$env" ] || [ -L "$env" ]; then
  if [ -L "$env" ] || [ ! -f "$env" ]; then
    echo "belay-app-run: $env: not a regular file (a link?), refusing to start" >&2
    exit 1
  fi
  n=0
  while IFS= read -r line || [ -n "$line" ]; do
    n=$((n + 1))
    case $line in '' | '#'*) continue ;; esac
    key=${line%%=*}
    case $key in
    "$line" | '' | [0-9]* | *[!A-Z0-9_]*) echo "belay-app-run: $env line $n: expected KEY=VALUE" >&2; exit 1 ;;
    BELAY_* | DATABASE_URL | PORT) echo "belay-app-run: $env line $n: $key is set by belay" >&2; exit 1 ;;
    esac
    export "$key=${line#*=}"
  done <"$env"
fi
if [ "$slot" != release ]; then
  exec "$dir/start"
fi
cmdf=$dir/.belay-release-command
if [ -L "$cmdf" ] || [ ! -f "$cmdf" ]; then
  echo "belay-app-run: $cmdf: no release command" >&2
  exit 1
fi
set --
while IFS= read -r word || [ -n "$word" ]; do
  set -- "$@" "$word"
done <"$cmdf"
[ $# -gt 0 ] || { echo "belay-app-run: $cmdf: empty" >&2; exit 1; }
cmd=$1
shift
case $cmd in /* | ../* | */../* | *'/..' | ..) echo "belay-app-run: release command $cmd: expected a path inside the release" >&2; exit 1 ;; esac
exec "$dir/$cmd" "$@"
`

// releaseUnit runs the release command once per deploy (Type=oneshot: start
// returns when it ended, its exit status is start's). DATABASE_URL comes
// from the root-owned /etc/belay/<app>.env like the app units'; the release's
// own env is read by belay-app-run as the app user.
const releaseUnit = `# Rendered by belay: the release command of app %i (migrations), started by belay deploy before the canary.
[Unit]
Description=belay app %i (release command)
After=network-online.target
Wants=network-online.target

[Service]
Type=oneshot
User=` + AppUser + `
Group=` + AppUser + `
EnvironmentFile=/etc/belay/%i.env
Environment=BELAY_SLOT=release
ExecStart=/usr/local/bin/belay-app-run %i release
# The deployer bounds the command (--release-timeout) and stops the unit; this
# is the backstop if the deployer died.
TimeoutStartSec=6h
KillMode=mixed
TimeoutStopSec=30
SyslogIdentifier=belay-release-%i
NoNewPrivileges=yes
PrivateTmp=yes
ProtectSystem=full
ProtectHome=yes
`
