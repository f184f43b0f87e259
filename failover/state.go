package failover

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// State is what an interrupted switch needs to resume: the plan it ran and the
// steps already done. It is written after every step.
type State struct {
	Stack   string    `json:"stack"`
	To      Direction `json:"to"`
	Plan    string    `json:"plan"`
	Started time.Time `json:"started"`
	Updated time.Time `json:"updated"`
	// Done maps step ID to when it completed; Skipped to why it was skipped.
	Done     map[string]time.Time `json:"done"`
	Skipped  map[string]string    `json:"skipped,omitempty"`
	Finished bool                 `json:"finished"`
	// Facts are figures found on the way (RPO edge, promote time, ...).
	Facts map[string]string `json:"facts,omitempty"`
}

// DefaultStatePath is /var/lib/belay/failover-<stack>.json for root, else
// $XDG_STATE_HOME/belay (~/.local/state/belay)/failover-<stack>.json.
func DefaultStatePath(stack string, uid int, getenv func(string) string) string {
	name := "failover-" + stack + ".json"
	if uid == 0 {
		return filepath.Join("/var/lib/belay", name)
	}
	if x := getenv("XDG_STATE_HOME"); x != "" {
		return filepath.Join(x, "belay", name)
	}
	return filepath.Join(getenv("HOME"), ".local", "state", "belay", name)
}

// LoadState reads the state file; a missing file is (nil, nil).
func LoadState(path string) (*State, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("failover state: %w", err)
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("failover state %s: %w (move it away to start over)", path, err)
	}
	if s.Done == nil {
		s.Done = map[string]time.Time{}
	}
	return &s, nil
}

// Save writes the state atomically (0600).
func (s *State) Save(path string) error {
	s.Updated = time.Now().UTC()
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("failover state: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("failover state: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// Resume decides how a run continues from prev: a fresh state when there is
// none or the previous switch finished; the same state when it is the same
// plan; an error when an unfinished switch of another plan or direction exists.
func Resume(prev *State, p *Plan, now time.Time) (*State, bool, error) {
	fresh := &State{Stack: p.Stack, To: p.To, Plan: p.Digest(), Started: now.UTC(), Done: map[string]time.Time{}, Skipped: map[string]string{}, Facts: map[string]string{}}
	if prev == nil || prev.Finished {
		return fresh, false, nil
	}
	if prev.Stack != p.Stack {
		return nil, false, fmt.Errorf("the state file belongs to stack %q, not %q", prev.Stack, p.Stack)
	}
	if prev.To != p.To || prev.Plan != p.Digest() {
		return nil, false, fmt.Errorf("an unfinished switch to the %s site (plan %s, started %s, %d steps done) is recorded; "+
			"finish it with the same inventory, or move the state file away if you are sure it is over", prev.To, prev.Plan, prev.Started.Format(time.RFC3339), len(prev.Done))
	}
	if prev.Skipped == nil {
		prev.Skipped = map[string]string{}
	}
	if prev.Facts == nil {
		prev.Facts = map[string]string{}
	}
	return prev, true, nil
}
