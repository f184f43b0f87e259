package lease

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/belay-sh/belay/hostrelease"
	"github.com/belay-sh/belay/internal/shq"
)

// Fencing. The lease file lives on the app's first host only, but steps run on
// every server of the app. So each server also holds a fence file
// (/srv/<app>/.belay/fence) with the token of the run allowed to change it,
// written by that run right after it took the lease and before its first step.
// Every host step runs under a shared flock on fence.lock and first compares
// the fence token with its own (and, on the lease host, the lease file's token
// and expiry): a mismatch refuses the step with exitFenced. A fence write takes
// the same lock exclusively, so it waits for the steps under way on that host
// to end: once a new holder has fenced every server, no step of an older
// holder runs or can start anywhere, and only then does the new holder's first
// step start. The lease host stays the authority: a fence is only written by a
// run that holds the lease there (or breaks it, audited).

// FencePath is the fence file beside the lease.
func FencePath(l hostrelease.Layout) string { return l.State() + "/fence" }

func fenceLock(l hostrelease.Layout) string { return l.State() + "/fence.lock" }

// exitFenced is the exit code of a step refused by the fence.
const exitFenced = 76

// IsFenced reports whether an exit code is the fence's refusal.
func IsFenced(code int) bool { return code == exitFenced }

// FenceWait bounds how long a fence write waits for the steps under way on a
// host (each bounded by its own step timeout) to end.
const FenceWait = 15 * 60

// WriteFenceCommand sets the host's fence to token once no step holds the lock.
func WriteFenceCommand(l hostrelease.Layout, token string) string {
	return strings.Join([]string{
		"st=" + shq.Quote(l.State()) + "; lk=" + shq.Quote(fenceLock(l)) + "; fp=" + shq.Quote(FencePath(l)),
		`[ -d "$st" ] || mkdir -p -- "$st"`,
		`exec 9>>"$lk"`,
		"flock -x -w " + strconv.Itoa(FenceWait) + ` 9 || { echo "belay fence: steps of another run still hold $lk" >&2; exit 1; }`,
		"printf '%s\\n' " + shq.Quote(token) + ` > "$fp.tmp" && mv -f -- "$fp.tmp" "$fp"`,
	}, "\n")
}

// ReadFenceCommand prints the host's fence token (nothing if none).
func ReadFenceCommand(l hostrelease.Layout) string {
	return "cat " + shq.Quote(FencePath(l)) + " 2>/dev/null || true"
}

// Fence is what a run's host steps check: its token, and which host holds the lease.
type Fence struct {
	Layout    hostrelease.Layout
	Token     string
	LeaseHost string
}

// Wrap returns cmd guarded by the fence on host: it runs only while the host's
// fence (and, on the lease host, the unexpired lease) carries f.Token, with the
// shared fence lock held until cmd ends. cmd's subshell keeps the lock's
// descriptor on purpose: if the wrapping shell is killed (the deployer's
// session cut), the step still holds the lock until it really ends, so a new
// holder's fence write cannot slip in beside it. (No plan step leaves a
// background process behind; one that did would hold the lock, and fence
// writes would fail after FenceWait, naming the lock.) A nil
// Fence returns cmd unchanged (commands outside a lease: status, dry runs).
func (f *Fence) Wrap(host, cmd string) string {
	if f == nil {
		return cmd
	}
	tok := shq.Quote(f.Token)
	// The values are assigned once, quoted; the step (cmd) runs in a
	// subshell after them and may use its own names freely.
	lines := []string{
		"bst=" + shq.Quote(f.Layout.State()) + "; blk=" + shq.Quote(fenceLock(f.Layout)) + "; bfp=" + shq.Quote(FencePath(f.Layout)),
		`[ -d "$bst" ] || mkdir -p -- "$bst"`,
		`exec 9>>"$blk"`,
		"flock -s -w " + strconv.Itoa(FenceWait) + ` 9 || { echo "belay fence: $blk is held too long" >&2; exit 1; }`,
		// read is a builtin: the check costs no process on a busy host.
		`ft=; if [ -r "$bfp" ]; then read -r ft < "$bfp" || true; fi`,
		"if [ \"$ft\" != " + tok + " ]; then echo \"belay fence: this host's lease token is ${ft:-(none)}, not this run's: another run took the app's lease (or it was broken); step refused\" >&2; exit " + strconv.Itoa(exitFenced) + "; fi",
	}
	if host == f.LeaseHost {
		lines = append(lines,
			"ble="+shq.Quote(Path(f.Layout)),
			`le=0; lt=; if [ -r "$ble" ]; then { read -r le; read -r lt; } < "$ble" || true; fi`,
			"case $le in ''|*[!0-9]*) le=0;; esac",
			"if [ \"$lt\" != "+tok+" ] || [ \"$le\" -le \"$(date +%s)\" ]; then echo 'belay fence: this run no longer holds the lease on this host (expired or taken over); step refused' >&2; exit "+strconv.Itoa(exitFenced)+"; fi",
		)
	}
	return strings.Join(lines, "\n") + "\n(\n" + cmd + "\n)"
}

// FencedError is a step (or journal write) a host refused because the run's
// lease token is no longer the host's.
type FencedError struct {
	Host string
	Msg  string
}

func (e *FencedError) Error() string {
	return fmt.Sprintf("host %s refused the step: %s", e.Host, strings.TrimSpace(e.Msg))
}
