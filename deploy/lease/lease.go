// Package lease is the per-app deploy lock: a lease file on the app's first host
// (/srv/<app>/.belay/lease), taken and renewed under flock(1) so two deployers
// never both win, with an expiry so a dead deployer's lease goes stale instead of
// blocking deploys forever. The commands are built here; deploy runs them.
package lease

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/belay-sh/belay/hostrelease"
	"github.com/belay-sh/belay/internal/shq"
)

// DefaultTTL is how long a lease lives without renewal.
const DefaultTTL = 15 * time.Minute

// Owner says who holds a lease.
type Owner struct {
	// Token is random per deployer run; only its holder may renew or release.
	Token string `json:"token"`
	// Who is user@host of the deployer.
	Who string `json:"who"`
	PID int    `json:"pid"`
	// Host is the deployer's machine (shown; proof that the holder died comes
	// from its local lock, see LocalLock, never from Host and PID).
	Host string `json:"host,omitempty"`
	// CI is the CI run (e.g. a GitHub Actions run URL), if any.
	CI string `json:"ci,omitempty"`
	// Action is what the holder is doing ("deploy v42", "rollback", "drill app-node").
	Action string `json:"action"`
	// Since is when the holder took the lease (the deployer's clock).
	Since time.Time `json:"since,omitempty"`
}

// Held is a lease someone else holds.
type Held struct {
	Owner   Owner
	Expires time.Time
}

// HeldError says the lease is taken.
type HeldError struct {
	App  string
	Host string
	Held Held
}

func (e *HeldError) Error() string {
	ci := ""
	if e.Held.Owner.CI != "" {
		ci = ", CI " + e.Held.Owner.CI
	}
	since := ""
	if !e.Held.Owner.Since.IsZero() {
		since = " since " + e.Held.Owner.Since.UTC().Format(time.RFC3339)
	}
	return fmt.Sprintf("app %s is locked by %s (pid %d%s, %s%s) until %s (lease on %s); retry later, pass --wait, wait for it to expire, or if the holder is certainly gone: belay lease break --app %s --reason TEXT",
		e.App, e.Held.Owner.Who, e.Held.Owner.PID, ci, e.Held.Owner.Action, since, e.Held.Expires.UTC().Format(time.RFC3339), e.Host, e.App)
}

// Path is the lease file; the lock file beside it serializes check-and-take.
func Path(l hostrelease.Layout) string { return l.State() + "/lease" }

// The exit code the scripts use when someone else holds the lease.
const exitHeld = 75

// AcquireCommand takes the lease for o for ttl unless another unexpired owner
// holds it. With renew, it only extends a lease o already holds (and fails if
// it was lost). Expiry uses the host's clock, the one clock all deployers share.
// The lease file is three lines: expiry (unix seconds), token, owner JSON.
func AcquireCommand(l hostrelease.Layout, o Owner, ttl time.Duration, renew bool) string {
	b, _ := json.Marshal(o)
	p := shq.Quote(Path(l))
	mine := "[ \"$tok\" = " + shq.Quote(o.Token) + " ]"
	cond := "if [ -n \"$tok\" ] && [ \"$exp\" -gt \"$now\" ] && ! " + mine + "; then cat " + p + "; exit " + strconv.Itoa(exitHeld) + "; fi"
	if renew {
		cond = "if ! " + mine + "; then cat " + p + " 2>/dev/null || true; echo 'lease lost' >&2; exit " + strconv.Itoa(exitHeld) + "; fi"
	}
	script := strings.Join([]string{
		"set -eu",
		"now=$(date +%s)",
		"exp=$(sed -n 1p " + p + " 2>/dev/null || true); exp=${exp:-0}",
		"case \"$exp\" in *[!0-9]*|'') exp=0;; esac",
		"tok=$(sed -n 2p " + p + " 2>/dev/null || true)",
		cond,
		"printf '%s\\n%s\\n%s\\n' $((now+" + strconv.Itoa(int(ttl/time.Second)) + ")) " + shq.Quote(o.Token) + " " + shq.Quote(string(b)) + " > " + p + ".tmp",
		"mv -f " + p + ".tmp " + p,
		"sed -n 1p " + p,
	}, "\n")
	return "mkdir -p " + shq.Quote(l.State()) + " && flock -w 30 " + p + ".lock sh -c " + shq.Quote(script)
}

// StealCommand takes the lease from a holder proven dead (its local lock is
// free on this machine, see LocalLock), only if that holder still has it: a
// lease renewed or taken by anyone else in between is left alone.
func StealCommand(l hostrelease.Layout, o Owner, staleToken string, ttl time.Duration) string {
	b, _ := json.Marshal(o)
	p := shq.Quote(Path(l))
	script := strings.Join([]string{
		"set -eu",
		"if [ \"$(sed -n 2p " + p + " 2>/dev/null)\" != " + shq.Quote(staleToken) + " ]; then cat " + p + " 2>/dev/null || true; exit " + strconv.Itoa(exitHeld) + "; fi",
		"now=$(date +%s)",
		"printf '%s\\n%s\\n%s\\n' $((now+" + strconv.Itoa(int(ttl/time.Second)) + ")) " + shq.Quote(o.Token) + " " + shq.Quote(string(b)) + " > " + p + ".tmp",
		"mv -f " + p + ".tmp " + p,
	}, "\n")
	return "mkdir -p " + shq.Quote(l.State()) + " && flock -w 30 " + p + ".lock sh -c " + shq.Quote(script)
}

// ReleaseCommand drops the lease if o still holds it.
func ReleaseCommand(l hostrelease.Layout, o Owner) string {
	p := shq.Quote(Path(l))
	script := "if [ \"$(sed -n 2p " + p + " 2>/dev/null)\" = " + shq.Quote(o.Token) + " ]; then rm -f " + p + "; fi"
	return "flock -w 30 " + p + ".lock sh -c " + shq.Quote(script)
}

// BreakCommand removes the lease if token still holds it (`belay lease break`).
func BreakCommand(l hostrelease.Layout, token string) string {
	p := shq.Quote(Path(l))
	script := "if [ \"$(sed -n 2p " + p + " 2>/dev/null)\" != " + shq.Quote(token) + " ]; then cat " + p + " 2>/dev/null || true; exit " + strconv.Itoa(exitHeld) + "; fi; rm -f " + p
	return "mkdir -p " + shq.Quote(l.State()) + " && flock -w 30 " + p + ".lock sh -c " + shq.Quote(script)
}

// ReadCommand prints the lease file (nothing if free).
func ReadCommand(l hostrelease.Layout) string {
	return "cat " + shq.Quote(Path(l)) + " 2>/dev/null || true"
}

// IsHeld reports whether err is the "held by another owner" exit.
func IsHeld(code int) bool { return code == exitHeld }

// Parse reads a lease file's content.
func Parse(b []byte) (Held, error) {
	lines := strings.SplitN(strings.TrimSpace(string(b)), "\n", 3)
	if len(lines) < 3 {
		return Held{}, fmt.Errorf("lease file: %d lines, expected 3", len(lines))
	}
	sec, err := strconv.ParseInt(lines[0], 10, 64)
	if err != nil {
		return Held{}, fmt.Errorf("lease file: expiry %q: %w", lines[0], err)
	}
	var o Owner
	if err := json.Unmarshal([]byte(lines[2]), &o); err != nil {
		return Held{}, fmt.Errorf("lease file: owner: %w", err)
	}
	return Held{Owner: o, Expires: time.Unix(sec, 0)}, nil
}
