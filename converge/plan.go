package converge

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Current is a managed file as the host has it (nil in Plan's map: missing).
type Current struct {
	Content string `json:"content"`
	Owner   string `json:"owner"`
	Mode    uint32 `json:"mode"`
}

// Change kinds.
const (
	Create = "create"
	Modify = "modify" // content (and maybe owner/mode)
	Attrs  = "attrs"  // owner or mode only
)

// Change is one file that differs.
type Change struct {
	Path string `json:"path"`
	Kind string `json:"kind"`
	// Old is the host's content (plan mode only: the dry-run's diff); New the wanted one.
	Old      string `json:"old,omitempty"`
	New      string `json:"-"`
	OldOwner string `json:"oldOwner,omitempty"`
	NewOwner string `json:"newOwner"`
	OldMode  uint32 `json:"oldMode,omitempty"`
	NewMode  uint32 `json:"newMode"`
}

// Plan is what converging one host does.
type Plan struct {
	Changes  []Change `json:"changes"`
	Validate []Cmd    `json:"validate,omitempty"`
	Activate []Cmd    `json:"activate,omitempty"`
	Notes    []string `json:"notes,omitempty"`
}

// Empty reports whether the host is already converged.
func (p Plan) Empty() bool { return len(p.Changes) == 0 }

// PlanHost compares want with the host's current files (keyed by path; a
// missing key is a missing file) and returns the changes, in path order, with
// the de-duplicated checks and reloads they need. Pure: the root helper and
// the tests call it alike.
func PlanHost(want []File, current map[string]*Current) Plan {
	var p Plan
	files := append([]File(nil), want...)
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	for _, f := range files {
		cur := current[f.Path]
		c := Change{Path: f.Path, New: f.Content, NewOwner: f.Owner, NewMode: f.Mode}
		switch {
		case cur == nil:
			c.Kind = Create
		case cur.Content != f.Content:
			c.Kind, c.Old, c.OldOwner, c.OldMode = Modify, cur.Content, cur.Owner, cur.Mode
		case cur.Owner != f.Owner || cur.Mode != f.Mode:
			c.Kind, c.OldOwner, c.OldMode = Attrs, cur.Owner, cur.Mode
		default:
			continue
		}
		p.Changes = append(p.Changes, c)
	}
	p.Validate, p.Activate, p.Notes = Steps(p.Changes)
	return p
}

// Steps returns the checks, reloads and notes a set of changes needs, each
// once, reloads in activation order. An owner/mode-only change needs no reload
// but is still validated (sudoers refuses a group-writable file).
func Steps(changes []Change) (validate, activate []Cmd, notes []string) {
	seen := map[string]bool{}
	add := func(list *[]Cmd, c Cmd) {
		k := fmt.Sprint([]string(c))
		if !seen[k] {
			seen[k] = true
			*list = append(*list, c)
		}
	}
	for _, c := range changes {
		e := EffectOf(c.Path)
		for _, v := range e.Validate {
			add(&validate, v)
		}
		if c.Kind == Attrs {
			continue
		}
		for _, a := range e.Activate {
			add(&activate, a)
		}
		if e.Note != "" && !slices.Contains(notes, e.Note) {
			notes = append(notes, e.Note)
		}
	}
	sort.SliceStable(activate, func(i, j int) bool { return rank(activate[i]) < rank(activate[j]) })
	return validate, activate, notes
}

// rank places a reload in activateOrder (by the command or the unit it names).
func rank(c Cmd) int {
	key := ""
	switch {
	case len(c) >= 2 && c[0] == "systemctl" && c[1] == "daemon-reload":
		key = "daemon-reload"
	case c[0] == "nft":
		key = "nft"
	case c[0] == "runuser":
		key = "postgres"
	default:
		for _, k := range activateOrder {
			if strings.Contains(c[len(c)-1], k) {
				key = k
				break
			}
		}
	}
	if i := slices.Index(activateOrder, key); i >= 0 {
		return i
	}
	return len(activateOrder)
}
