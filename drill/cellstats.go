package drill

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// CellStats is one cell's account of a cell drill's load.
type CellStats struct {
	Cell string `json:"cell"`
	// Killed marks the cell the drill killed.
	Killed bool `json:"killed"`
	// Shops is how many of the cell's shops the load visited.
	Shops    int `json:"shops"`
	Requests int `json:"requests"`
	OK       int `json:"ok"`
	// SuccessRate is OK/Requests in percent (100 for no requests).
	SuccessRate float64 `json:"successRate"`
	// CleanDown counts the router's clean 503 (X-Belay-Router: cell-down).
	CleanDown int `json:"cleanDown"`
	// Errors counts every other failure; Reasons breaks them down.
	Errors  int            `json:"errors"`
	Reasons map[string]int `json:"reasons,omitempty"`
	// InFlight counts the killed cell's errors of requests sent before the
	// fault and answered after it: caught mid-flight, unavoidable for any
	// proxy, reported but excused.
	InFlight int `json:"inFlight,omitempty"`
}

// CellWindow is when the cell drill's phases began.
type CellWindow struct {
	// Fault is when the first fault command started; Down when the last one
	// returned (the cell wholly down); Heal when healing started.
	Fault, Down, Heal time.Time
}

// CellFigures are a cell drill run's figures and verdict.
type CellFigures struct {
	Kill   string      `json:"kill"`
	Killed string      `json:"killedCell"`
	Cells  []CellStats `json:"cells"`
	// FirstCleanDown is from the fault to the first clean 503 for the killed cell's shops.
	FirstCleanDown time.Duration `json:"firstCleanDownNs,omitempty"`
	// Recovery is from the heal to the first answer from which the killed
	// cell's shops answered without a failure for at least SustainWindow.
	Recovery  time.Duration `json:"recoveryNs"`
	Recovered bool          `json:"recovered"`
	// FaultSeen is false when no request of the killed cell failed while it
	// was down (a database kill the requested page does not feel).
	FaultSeen bool `json:"faultSeen"`
	// Failures are the verdict's reasons; none means the drill passed.
	Failures []string `json:"failures,omitempty"`
	// Warnings are findings that do not fail the drill: the killed cell's
	// shops got something else than the clean 503 once it was wholly down
	// (e.g. client timeouts on the router's kept-alive connections to it).
	Warnings []string `json:"warnings,omitempty"`
}

// OK reports whether the run passed.
func (f *CellFigures) OK() bool { return len(f.Failures) == 0 }

// CellRecovery returns when the killed cell's shops answered again after
// heal: the start of the first success after the last failure, provided the
// results cover SustainWindow from it. ok is false until then.
func CellRecovery(res []CellResult, killed string, heal time.Time) (at time.Time, ok bool) {
	var mine []CellResult
	for _, r := range res {
		if r.Cell == killed {
			mine = append(mine, r)
		}
	}
	sort.Slice(mine, func(i, j int) bool { return mine[i].Start.Before(mine[j].Start) })
	from := -1
	for i, r := range mine {
		if r.Start.Before(heal) || r.Class != CellOK {
			from = -1
			continue
		}
		if from < 0 {
			from = i
		}
	}
	if from < 0 {
		return time.Time{}, false
	}
	at = mine[from].Start
	if mine[len(mine)-1].Start.Sub(at) < SustainWindow {
		return at, false
	}
	return at, true
}

// AnalyzeCells accounts every request of the load per cell and gives the
// verdict: every cell but the killed one must answer 100 %; the killed cell's
// shops must have answered before the fault and again after the heal; with
// an app kill they must get the router's clean 503 while the cell is down.
// Anything else they got once the cell was wholly down is a warning.
func AnalyzeCells(res []CellResult, shops []CellShop, cells []string, killed, kill string, w CellWindow) *CellFigures {
	f := &CellFigures{Kill: kill, Killed: killed}
	idx := map[string]int{}
	for _, c := range cells {
		idx[c] = len(f.Cells)
		f.Cells = append(f.Cells, CellStats{Cell: c, Killed: c == killed, Reasons: map[string]int{}})
	}
	seen := map[string]bool{}
	for _, s := range shops {
		if i, ok := idx[s.Cell]; ok && !seen[s.Domain] {
			seen[s.Domain] = true
			f.Cells[i].Shops++
		}
	}
	var firstDown time.Time
	lateUnclean := map[string]int{}
	for _, r := range res {
		i, ok := idx[r.Cell]
		if !ok {
			continue
		}
		st := &f.Cells[i]
		st.Requests++
		// The fault's window: from the first fault command to the heal.
		during := !r.End.Before(w.Fault) && (w.Heal.IsZero() || r.Start.Before(w.Heal))
		switch r.Class {
		case CellOK:
			st.OK++
			continue
		case CellDown:
			st.CleanDown++
		default:
			st.Errors++
			st.Reasons[r.Reason]++
		}
		if r.Cell != killed || !during {
			continue
		}
		f.FaultSeen = true
		if r.Class == CellDown && (firstDown.IsZero() || r.End.Before(firstDown)) {
			firstDown = r.End
		}
		if r.Class == CellError {
			if r.Start.Before(w.Fault) {
				st.InFlight++
			} else if !r.Start.Before(w.Down) {
				lateUnclean[r.Reason]++
			}
		}
	}
	for i := range f.Cells {
		st := &f.Cells[i]
		st.SuccessRate = 100
		if st.Requests > 0 {
			st.SuccessRate = 100 * float64(st.OK) / float64(st.Requests)
		}
		if len(st.Reasons) == 0 {
			st.Reasons = nil
		}
	}
	if !firstDown.IsZero() {
		f.FirstCleanDown = firstDown.Sub(w.Fault)
	}
	if !w.Heal.IsZero() {
		if at, ok := CellRecovery(res, killed, w.Heal); ok {
			f.Recovered, f.Recovery = true, at.Sub(w.Heal)
		}
	}
	f.Failures = cellVerdict(f, res, killed, kill, w)
	if n := sumCounts(lateUnclean); kill == CellKillApp && n > 0 {
		f.Warnings = append(f.Warnings, fmt.Sprintf("cell %s: %d answers after it was down were not the clean 503 (%s)", killed, n, reasonList(lateUnclean, 0)))
	}
	return f
}

func cellVerdict(f *CellFigures, res []CellResult, killed, kill string, w CellWindow) []string {
	var fails []string
	for _, st := range f.Cells {
		if st.Killed {
			continue
		}
		if st.OK < st.Requests {
			fails = append(fails, fmt.Sprintf("cell %s: %d of %d requests failed (%.2f %% answered; %s), expected 100 %% while cell %s is down",
				st.Cell, st.Requests-st.OK, st.Requests, st.SuccessRate, reasonList(st.Reasons, st.CleanDown), killed))
		}
	}
	pre := 0
	for _, r := range res {
		if r.Cell == killed && r.Class != CellOK && r.End.Before(w.Fault) {
			pre++
		}
	}
	if pre > 0 {
		fails = append(fails, fmt.Sprintf("cell %s: %d requests failed before the fault (the stack was not healthy)", killed, pre))
	}
	var st CellStats
	for _, s := range f.Cells {
		if s.Killed {
			st = s
		}
	}
	if kill == CellKillApp && st.CleanDown == 0 {
		fails = append(fails, fmt.Sprintf("cell %s: no clean 503 (X-Belay-Router: cell-down) for its shops while it was down", killed))
	}
	if !w.Heal.IsZero() && !f.Recovered {
		fails = append(fails, fmt.Sprintf("cell %s: its shops did not answer again for %s without a failure after the heal", killed, SustainWindow))
	}
	return fails
}

func sumCounts(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// reasonList renders counts as "3 HTTP 500, 1 timeout" (plus the clean 503s).
func reasonList(m map[string]int, cleanDown int) string {
	var parts []string
	for k, n := range m {
		parts = append(parts, fmt.Sprintf("%d %s", n, k))
	}
	sort.Strings(parts)
	if cleanDown > 0 {
		parts = append(parts, fmt.Sprintf("%d clean 503 cell-down", cleanDown))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// writeCellFigures renders a cell drill run's per-cell table.
func writeCellFigures(b *strings.Builder, f *CellFigures) {
	fmt.Fprintf(b, "## Cells (killed: %s, %s)\n\n", f.Killed, f.Kill)
	b.WriteString("| cell | shops | requests | answered | success | clean 503 | other errors | in flight at the fault |\n|---|---|---|---|---|---|---|---|\n")
	for _, st := range f.Cells {
		name := st.Cell
		if st.Killed {
			name += " (killed)"
		}
		fmt.Fprintf(b, "| %s | %d | %d | %d | %.2f %% | %d | %s | %d |\n", name, st.Shops, st.Requests, st.OK, st.SuccessRate, st.CleanDown, tableCell(reasonList(st.Reasons, 0)), st.InFlight)
	}
	b.WriteString("\n")
	if f.FirstCleanDown > 0 {
		fmt.Fprintf(b, "First clean 503 for the killed cell's shops: %s after the fault. ", round(f.FirstCleanDown))
	}
	if f.Recovered {
		fmt.Fprintf(b, "Recovery: the killed cell's shops answered again %s after the heal began.\n\n", round(f.Recovery))
	} else {
		b.WriteString("Recovery: not seen.\n\n")
	}
	if !f.FaultSeen {
		b.WriteString("Note: no request of the killed cell failed while it was down: the requested page did not feel the fault (for a database kill, pick a page that reads the database with --path).\n\n")
	}
	if len(f.Warnings) > 0 {
		b.WriteString("Warnings (not failing the drill):\n\n")
		for _, s := range f.Warnings {
			fmt.Fprintf(b, "- %s\n", s)
		}
		b.WriteString("\n")
	}
	if len(f.Failures) > 0 {
		b.WriteString("Failed:\n\n")
		for _, s := range f.Failures {
			fmt.Fprintf(b, "- %s\n", s)
		}
		b.WriteString("\n")
	}
}
