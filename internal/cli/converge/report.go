package converge

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/belay-sh/belay/converge"
	"github.com/belay-sh/belay/hostconverge"
)

// Host statuses.
const (
	StatusUnchanged   = "unchanged"    // already converged
	StatusChanged     = "converged"    // files written, reloads run
	StatusWouldChange = "would-change" // dry run: differs
	StatusFailed      = "failed"       // refused or failed; previous files restored (see restored)
	StatusNotStarted  = "not-started"  // a host failed first: this one keeps its old files
	StatusSkipped     = "skipped"      // in the config, not in the inventory
)

// Report is `belay converge --json`'s output.
type Report struct {
	Stack  string       `json:"stack"`
	DryRun bool         `json:"dryRun"`
	OK     bool         `json:"ok"`
	Millis int64        `json:"millis"`
	Hosts  []HostReport `json:"hosts"`
}

// FileChange is one changed file of a host.
type FileChange struct {
	Path string `json:"path"`
	Kind string `json:"kind"`
	// Diff is the unified diff with secrets masked (dry run only).
	Diff string `json:"diff,omitempty"`
}

// HostReport is one host's outcome.
type HostReport struct {
	Host     string       `json:"host"`
	Status   string       `json:"status"`
	Changes  []FileChange `json:"changes,omitempty"`
	Users    []string     `json:"usersCreated,omitempty"`
	Dirs     []string     `json:"dirsCreated,omitempty"`
	Ran      []string     `json:"ran,omitempty"`
	Planned  []string     `json:"planned,omitempty"`
	Notes    []string     `json:"notes,omitempty"`
	Restored bool         `json:"restored,omitempty"`
	Error    string       `json:"error,omitempty"`
	Millis   int64        `json:"millis,omitempty"`
}

func (h *HostReport) fill(res hostconverge.Result, j job, dry bool) {
	want := map[string]string{}
	for _, f := range j.host.Files {
		want[f.Path] = f.Content
	}
	for _, c := range res.Plan.Changes {
		fc := FileChange{Path: c.Path, Kind: c.Kind}
		if dry {
			c.New = want[c.Path]
			fc.Diff = converge.Diff(c, j.masker)
		}
		h.Changes = append(h.Changes, fc)
	}
	h.Users, h.Dirs, h.Ran, h.Notes, h.Restored = res.UsersCreated, res.DirsCreated, res.Ran, res.Plan.Notes, res.Restored
	h.Error = j.masker.Mask(res.Error)
	if dry {
		for _, c := range append(append([]converge.Cmd{}, res.Plan.Validate...), res.Plan.Activate...) {
			h.Planned = append(h.Planned, strings.Join(c, " "))
		}
	}
	switch {
	case len(h.Changes) == 0 && len(h.Users) == 0 && len(h.Dirs) == 0:
		h.Status = StatusUnchanged
	case dry:
		h.Status = StatusWouldChange
	default:
		h.Status = StatusChanged
	}
}

func (h HostReport) summary() string {
	var paths []string
	for _, c := range h.Changes {
		paths = append(paths, c.Path)
	}
	s := h.Status
	if len(paths) > 0 {
		s += fmt.Sprintf(": %d file(s) %s", len(paths), strings.Join(paths, ", "))
	}
	if len(h.Ran) > 0 {
		s += "; ran " + strings.Join(h.Ran, "; ")
	}
	if h.Error != "" {
		s += "; ERROR " + h.Error
	}
	return s
}

func (r *Report) finish(d time.Duration) {
	r.Millis = d.Milliseconds()
	r.OK = true
	for _, h := range r.Hosts {
		if h.Status == StatusFailed || h.Status == StatusNotStarted || h.Status == StatusRefused {
			r.OK = false
		}
	}
}

func (r *Report) print(w io.Writer) {
	counts := map[string]int{}
	for _, h := range r.Hosts {
		counts[h.Status]++
		if r.DryRun && len(h.Changes) > 0 {
			fmt.Fprintf(w, "== %s: %d file(s) would change\n", h.Host, len(h.Changes))
			for _, c := range h.Changes {
				fmt.Fprint(w, c.Diff)
			}
			if len(h.Planned) > 0 {
				fmt.Fprintf(w, "# then: %s\n", strings.Join(h.Planned, "; "))
			}
		}
		for _, n := range h.Notes {
			fmt.Fprintf(w, "note (%s): %s\n", h.Host, n)
		}
		switch h.Status {
		case StatusFailed:
			state := "previous files kept"
			if h.Restored {
				state = "previous files restored"
			}
			fmt.Fprintf(w, "FAILED %s (%s): %s\n", h.Host, state, h.Error)
		case StatusNotStarted:
			fmt.Fprintf(w, "not started %s: keeps its old configuration\n", h.Host)
		case StatusSkipped:
			fmt.Fprintf(w, "skipped %s: %s\n", h.Host, h.Error)
		case StatusRefused:
			fmt.Fprintf(w, "REFUSED %s (keeps its old configuration): %s\n", h.Host, h.Error)
		}
	}
	var parts []string
	for _, s := range []string{StatusChanged, StatusWouldChange, StatusUnchanged, StatusFailed, StatusRefused, StatusNotStarted, StatusSkipped} {
		if counts[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[s], s))
		}
	}
	verb := "converged"
	if r.DryRun {
		verb = "compared (dry run, nothing changed)"
	}
	fmt.Fprintf(w, "%s %d host(s) of stack %s in %s: %s\n", verb, len(r.Hosts), r.Stack, time.Duration(r.Millis)*time.Millisecond, strings.Join(parts, ", "))
}
