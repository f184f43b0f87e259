package plan

import (
	"strconv"
	"strings"
	"time"

	"github.com/belay-sh/belay/internal/shq"
)

// This file holds the shell that starts an app unit and watches it: the
// restart every deploy, rollback and recovery path uses, the health check,
// and the unit probe the canary analysis runs on every tick.

// JournalLines is how much of a failed unit's log an error carries.
const JournalLines = 30

// restart restarts unit. It clears the unit's failed state and start rate
// limit first (`systemctl reset-failed`, in the roles' sudoers): a release
// that crash-looped must never make the next deploy or rollback fail with
// "Start request repeated too quickly". A host provisioned before that sudoers
// line existed refuses reset-failed; only there is the rate limit waited out
// (up to 90 s), and the error says how to fix the host. Any other failure
// fails at once with systemd's message and the unit's recent log.
func restart(unit string) string {
	return strings.Join([]string{
		"rf=0",
		"rfout=$(" + systemctl("reset-failed", unit) + " 2>&1) || rf=1",
		"n=0",
		"until out=$(" + systemctl("restart", unit) + " 2>&1); do",
		"  n=$((n+1))",
		"  case \"$rf/$out\" in",
		"  1/*\"too often\"*|1/*start-limit*) if [ $n -lt 18 ]; then sleep 5; continue; fi;;",
		"  esac",
		"  echo \"$out\" >&2",
		"  if [ $rf = 1 ]; then echo \"(sudo systemctl reset-failed " + unit + " was refused: $rfout; this host's sudoers predates it: re-render /etc/sudoers.d/belay-<app> from the roles)\" >&2; fi",
		"  " + journalTail(unit),
		"  exit 1",
		"done",
	}, "\n")
}

// journalTail prints the unit's recent log to stderr (the deploy user is in
// systemd-journal, no sudo needed).
func journalTail(unit string) string {
	return "echo '--- journalctl -u " + unit + " -n " + strconv.Itoa(JournalLines) + "' >&2; journalctl -u " + unit + " -n " + strconv.Itoa(JournalLines) + " --no-pager >&2 || true"
}

// unitCheckFunc defines the shell function unit_check: it reads unit's state
// with `systemctl show` (no sudo needed) and sets $bad to why the unit cannot
// be serving — failed, inactive or stopping, waiting for an automatic restart
// after its process exited, or restarted since the baseline restart count in
// $base — and $nr to its current restart count. $bad stays empty when the unit
// runs, and when systemctl cannot tell (no systemd): then only the probe
// decides, as before.
func unitCheckFunc(unit string) string {
	return strings.Join([]string{
		"unit_check() {",
		"  as= ss= nr=",
		"  for kv in $(systemctl show -p ActiveState -p SubState -p NRestarts " + unit + " 2>/dev/null); do",
		"    case $kv in ActiveState=*) as=${kv#*=};; SubState=*) ss=${kv#*=};; NRestarts=*) nr=${kv#*=};; esac",
		"  done",
		"  case $nr in ''|*[!0-9]*) nr=$base;; esac",
		"  bad=",
		"  case \"$as/$ss\" in",
		"  /*) ;;",
		"  failed/*|inactive/*|deactivating/*) bad=\"" + unit + " is $as ($ss)\";;",
		"  */auto-restart) bad=\"" + unit + " exited and waits for its automatic restart ($as/$ss)\";;",
		"  *) if [ \"$nr\" -gt \"$base\" ]; then bad=\"" + unit + " restarted $((nr-base)) time(s) (NRestarts $base -> $nr)\"; fi;;",
		"  esac",
		"}",
	}, "\n")
}

// restartsNow sets $base to unit's current restart count (0 if unknown).
func restartsNow(unit string) string {
	return "base=$(systemctl show -p NRestarts --value " + unit + " 2>/dev/null); case $base in ''|*[!0-9]*) base=0;; esac"
}

// firstHealthPoll is the pause after the first failed health probe; it doubles
// up to Strategy.HealthMaxInterval.
const firstHealthPoll = 50 * time.Millisecond

// healthTimeout is the step's budget: the poll deadline plus one last curl
// (-m 3) and the status report.
func (b *builder) healthTimeout() Duration {
	return Duration(b.st.HealthTimeout + 30*time.Second)
}

// healthCommand polls the instance on 127.0.0.1 until it answers 2xx/3xx or
// the deadline passes. The first pauses are short (50 ms, doubling) because
// the app usually listens within a few hundred milliseconds of its start, and
// every step waits for its slowest host. After every failed probe it looks at
// the unit too: a unit that failed, stopped, or restarted since the check
// began will not answer, so the check fails at once — with the unit's log —
// instead of polling out its whole budget (a release whose start exits at once
// fails in about a second, not 30).
func (b *builder) healthCommand(port int, unit string) string {
	url := "http://127.0.0.1:" + strconv.Itoa(port) + b.app.HealthPath
	budget := strconv.FormatInt(b.st.HealthTimeout.Milliseconds(), 10)
	maxPause := strconv.FormatInt(b.st.HealthMaxInterval.Milliseconds(), 10)
	return strings.Join([]string{
		unitCheckFunc(unit),
		restartsNow(unit),
		"deadline=$(( $(date +%s%3N) + " + budget + " ))",
		"i=0 pause=" + strconv.FormatInt(firstHealthPoll.Milliseconds(), 10),
		"while :; do",
		"  i=$((i+1))",
		"  code=$(curl -sS -o /dev/null -m 3 -w '%{http_code}' " + shq.Quote(url) + " 2>&1) || true",
		"  case \"$code\" in 2??|3??) exit 0;; esac",
		"  unit_check",
		"  if [ -n \"$bad\" ]; then",
		"    echo \"health check \"" + shq.Quote(url) + "\" stopped after $i tries: $bad; last answer: $code\" >&2",
		"    " + journalTail(unit),
		"    echo \"health check failed: $bad\" >&2",
		"    exit 1",
		"  fi",
		"  if [ \"$(date +%s%3N)\" -ge \"$deadline\" ]; then",
		"    echo \"health check \"" + shq.Quote(url) + "\" failed for " + b.st.HealthTimeout.String() + " ($i tries); last answer: $code\" >&2",
		"    systemctl status --no-pager --lines=15 " + shq.Quote(unit) + " >&2 || true",
		"    exit 1",
		"  fi",
		"  sleep $((pause/1000)).$(printf %03d $((pause%1000)))",
		"  pause=$((pause*2)); [ $pause -le " + maxPause + " ] || pause=" + maxPause,
		"done",
	}, "\n")
}
