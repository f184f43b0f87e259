// Package journal is the deployer's memory on each host: a per-app journal
// (/srv/<app>/.belay/journal.json: which deploy, which release it moves to,
// which it came from, the last step done) written around every step, and an
// append-only audit log (/srv/<app>/.belay/audit.log, JSON lines). Both are
// built as remote commands and parsed here; deploy/run executes them.
//
// If the deployer dies mid-rollout, the next deploy or rollback finds a journal
// with Status "running" and converges every host before doing anything else
// (see deploy.Recover for the roll-back-or-forward rule).
package journal

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/belay-sh/belay/hostrelease"
	"github.com/belay-sh/belay/internal/shq"
)

// Status is where a deploy stands.
type Status string

// The journal statuses.
const (
	Running    Status = "running"     // a deployer is (or was, if it died) working
	Done       Status = "done"        // the target release is live on this host
	RolledBack Status = "rolled-back" // the deploy failed and this host is back on Previous
	// Paused: the rollout stopped on purpose at a stage (--stop-after) with the
	// canary serving it; a deploy of the same release continues it.
	Paused Status = "paused"
)

// Record is one host's journal.
type Record struct {
	DeployID string `json:"deployId"`
	App      string `json:"app"`
	// Kind is "deploy", "rollback" or "recover".
	Kind     string `json:"kind"`
	Target   string `json:"target"`
	Previous string `json:"previous,omitempty"`
	// KnownGood are releases that went live and passed their rollout, oldest first.
	KnownGood []string `json:"knownGood,omitempty"`
	// Step is the last completed plan step; InProgress the one started after it.
	Step       string    `json:"step,omitempty"`
	InProgress string    `json:"inProgress,omitempty"`
	Status     Status    `json:"status"`
	By         string    `json:"by"`
	StartedAt  time.Time `json:"startedAt"`
	UpdatedAt  time.Time `json:"updatedAt"`
	Error      string    `json:"error,omitempty"`
}

// Unfinished reports whether a deployer stopped without finishing or rolling back.
func (r *Record) Unfinished() bool { return r != nil && r.Status == Running }

// LastKnownGood returns the newest known-good release other than except, or "".
func (r *Record) LastKnownGood(except string) string {
	if r == nil {
		return ""
	}
	for i := len(r.KnownGood) - 1; i >= 0; i-- {
		if r.KnownGood[i] != except {
			return r.KnownGood[i]
		}
	}
	return ""
}

// AddKnownGood appends id (moving it to the end if present), keeping the last max.
func AddKnownGood(list []string, id string, max int) []string {
	out := make([]string, 0, len(list)+1)
	for _, x := range list {
		if x != id {
			out = append(out, x)
		}
	}
	out = append(out, id)
	if len(out) > max {
		out = out[len(out)-max:]
	}
	return out
}

// RemoveKnownGood drops id (a release that was rolled back from is no longer trusted).
func RemoveKnownGood(list []string, id string) []string {
	var out []string
	for _, x := range list {
		if x != id {
			out = append(out, x)
		}
	}
	return out
}

const eof = "BELAY_JOURNAL_EOF"

// Path is the journal file.
func Path(l hostrelease.Layout) string { return l.State() + "/journal.json" }

// WriteCommand replaces the journal atomically (temp file + rename).
func WriteCommand(l hostrelease.Layout, r Record) string {
	b, _ := json.Marshal(r)
	// Path words are quoted, then suffixed (".tmp" stays part of the word).
	p, st := shq.Quote(Path(l)), shq.Quote(l.State())
	// Shell builtins except the rename: every step writes the journal twice on
	// every host, and on a busy host each fork counts (mkdir, cat and a heredoc
	// cost 3 more processes per write than this).
	return "{ [ -d " + st + " ] || mkdir -p " + st + "; } && printf '%s\\n' " + shq.Quote(string(b)) + " > " + p + ".tmp && mv -f " + p + ".tmp " + p
}

// Wrap runs cmd in a subshell between two journal writes: before (InProgress
// set) and, only if cmd succeeded, after (Step set). The exit status is cmd's.
func Wrap(l hostrelease.Layout, before, after Record, cmd string) string {
	return WriteCommand(l, before) + " || exit 70\n(\n" + cmd + "\n)\nrc=$?\nif [ $rc -eq 0 ]; then\n" + WriteCommand(l, after) + " || exit 70\nfi\nexit $rc"
}

// ReadCommand prints the journal, or nothing when there is none.
func ReadCommand(l hostrelease.Layout) string {
	return "cat " + shq.Quote(Path(l)) + " 2>/dev/null || true"
}

// Parse reads a journal; empty input means no journal (nil, nil).
func Parse(b []byte) (*Record, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil, nil
	}
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	return &r, nil
}

// Entry is one audit log line.
type Entry struct {
	Time     time.Time `json:"time"`
	Who      string    `json:"who"`
	From     string    `json:"from"`
	CI       string    `json:"ci,omitempty"`
	Action   string    `json:"action"`
	App      string    `json:"app"`
	Release  string    `json:"release,omitempty"`
	Previous string    `json:"previous,omitempty"`
	DeployID string    `json:"deployId,omitempty"`
	Result   string    `json:"result"`
	Detail   string    `json:"detail,omitempty"`
}

// AuditPath is the audit log file.
func AuditPath(l hostrelease.Layout) string { return l.State() + "/audit.log" }

// AppendAuditCommand appends one JSON line under flock, so concurrent writers never interleave.
func AppendAuditCommand(l hostrelease.Layout, e Entry) string {
	b, _ := json.Marshal(e)
	// The body is one JSON line (newlines escaped), so it cannot end the
	// quoted heredoc early.
	p := AuditPath(l)
	return "mkdir -p " + shq.Quote(l.State()) + " && flock " + shq.Quote(p+".lock") + " sh -c " + shq.Quote("cat >> "+shq.Quote(p)) + " <<'" + eof + "'\n" + string(b) + "\n" + eof
}

// ReadAuditCommand prints the last n audit lines.
func ReadAuditCommand(l hostrelease.Layout, n int) string {
	return fmt.Sprintf("tail -n %d %s 2>/dev/null || true", n, shq.Quote(AuditPath(l)))
}

// ParseAudit parses audit lines, skipping none: a corrupt line is an error naming it.
func ParseAudit(b []byte) ([]Entry, error) {
	var out []Entry
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		var e Entry
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			return out, fmt.Errorf("audit log line %d: %w", i+1, err)
		}
		out = append(out, e)
	}
	return out, nil
}
