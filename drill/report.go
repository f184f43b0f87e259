// Package drill runs failure drills against any inventory (the lab first): it
// injects a fault, measures how long detection and recovery took, counts
// acknowledged writes that are missing afterwards, heals, and writes a report.
package drill

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// Run is one repetition of a drill.
type Run struct {
	Started time.Time `json:"started"`
	// Detection is how long until the system noticed (e.g. keepalived's new MASTER, the monitor's failover).
	Detection time.Duration `json:"detectionNs"`
	// Recovery is how long until the service answered again (VIP serves, writes accepted).
	Recovery time.Duration `json:"recoveryNs"`
	// Acked is how many writes the load generator saw acknowledged during the run.
	Acked int `json:"ackedWrites"`
	// Missing is how many acknowledged writes were not found afterwards.
	Missing int `json:"missingWrites"`
	// RPO is the data-loss window a site switch showed: from the partition back
	// to the newest acknowledged write present on the promoted standby.
	RPO   time.Duration `json:"rpoNs,omitempty"`
	OK    bool          `json:"ok"`
	Error string        `json:"error,omitempty"`
	// Notes holds per-run facts worth keeping (which node took over, RPO seen, ...).
	Notes []string `json:"notes,omitempty"`
	// VIP holds the app-node drill's figures as clients felt them (Recovery is their first answer).
	VIP *VIPFigures `json:"vip,omitempty"`
	// Cells holds the cell drill's per-cell account and verdict (Detection is
	// its first clean 503, Recovery its recovery after the heal).
	Cells *CellFigures `json:"cells,omitempty"`
}

// Report is a drill's outcome over all runs.
type Report struct {
	Drill    string    `json:"drill"`
	Target   string    `json:"target"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Runs     []Run     `json:"runs"`
	Summary  Summary   `json:"summary"`
	// Steps are the runbook steps the drill executed, in order (docs/runbook.md lists the same).
	Steps []string `json:"steps"`
}

// Summary aggregates the runs that completed.
type Summary struct {
	Runs         int           `json:"runs"`
	Failed       int           `json:"failed"`
	DetectionP50 time.Duration `json:"detectionP50Ns"`
	RecoveryP50  time.Duration `json:"recoveryP50Ns"`
	RecoveryP95  time.Duration `json:"recoveryP95Ns"`
	RecoveryMax  time.Duration `json:"recoveryMaxNs"`
	AckedWrites  int           `json:"ackedWrites"`
	MissingTotal int           `json:"missingWrites"`
	RPOMax       time.Duration `json:"rpoMaxNs,omitempty"`
	// VIP aggregates the app-node runs' VIP figures (p50 and max over runs).
	VIP *VIPSummary `json:"vip,omitempty"`
}

// Summarize fills r.Summary from r.Runs.
func (r *Report) Summarize() {
	var det, rec []time.Duration
	var vip []VIPFigures
	s := Summary{Runs: len(r.Runs)}
	for _, run := range r.Runs {
		s.AckedWrites += run.Acked
		s.MissingTotal += run.Missing
		if !run.OK {
			s.Failed++
			continue
		}
		if run.RPO > s.RPOMax {
			s.RPOMax = run.RPO
		}
		det = append(det, run.Detection)
		rec = append(rec, run.Recovery)
		if run.VIP != nil {
			vip = append(vip, *run.VIP)
		}
	}
	s.VIP = SummarizeVIP(vip)
	s.DetectionP50 = Percentile(det, 50)
	s.RecoveryP50 = Percentile(rec, 50)
	s.RecoveryP95 = Percentile(rec, 95)
	s.RecoveryMax = Percentile(rec, 100)
	r.Summary = s
}

// Percentile returns the p-th percentile (nearest rank) of ds, or 0 for none.
func Percentile(ds []time.Duration, p float64) time.Duration {
	return nearestRank(ds, p)
}

// isCell reports whether r is a cell drill's report (its runs carry per-cell figures).
func (r *Report) isCell() bool {
	for _, run := range r.Runs {
		if run.Cells != nil {
			return true
		}
	}
	return false
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteMarkdown writes the report for people: summary first, then each run.
func (r *Report) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	s := r.Summary
	fmt.Fprintf(&b, "# Drill: %s on %s\n\n", r.Drill, r.Target)
	fmt.Fprintf(&b, "%s – %s, %d run(s), %d failed.\n\n", r.Started.UTC().Format(time.RFC3339), r.Finished.UTC().Format(time.RFC3339), s.Runs, s.Failed)
	// The cell drill's figures are per cell (its own table below), not these.
	if !r.isCell() {
		fmt.Fprintf(&b, "| figure | value |\n|---|---|\n")
		fmt.Fprintf(&b, "| detection p50 | %s |\n", round(s.DetectionP50))
		fmt.Fprintf(&b, "| recovery p50 | %s |\n", round(s.RecoveryP50))
		fmt.Fprintf(&b, "| recovery p95 | %s |\n", round(s.RecoveryP95))
		fmt.Fprintf(&b, "| recovery max | %s |\n", round(s.RecoveryMax))
		fmt.Fprintf(&b, "| acknowledged writes | %d |\n", s.AckedWrites)
		fmt.Fprintf(&b, "| acknowledged writes missing | %d |\n", s.MissingTotal)
		if s.RPOMax > 0 {
			fmt.Fprintf(&b, "| cross-site RPO (max) | %s |\n", round(s.RPOMax))
		}
		b.WriteString("\n")
	}
	if s.VIP != nil {
		writeVIPSummary(&b, s.VIP, r.Runs)
	}
	for _, run := range r.Runs {
		if run.Cells != nil {
			writeCellFigures(&b, run.Cells)
		}
	}
	if len(r.Steps) > 0 {
		b.WriteString("## Steps executed\n\n")
		for i, st := range r.Steps {
			fmt.Fprintf(&b, "%d. %s\n", i+1, st)
		}
		b.WriteString("\n")
	}
	b.WriteString("## Runs\n\n| # | detection | recovery | acked | missing | result |\n|---|---|---|---|---|---|\n")
	for i, run := range r.Runs {
		result := "ok"
		if !run.OK {
			result = "FAILED: " + run.Error
		}
		if len(run.Notes) > 0 {
			result += " (" + strings.Join(run.Notes, "; ") + ")"
		}
		fmt.Fprintf(&b, "| %d | %s | %s | %d | %d | %s |\n", i+1, round(run.Detection), round(run.Recovery), run.Acked, run.Missing, tableCell(result))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func round(d time.Duration) time.Duration {
	if d >= 10*time.Second {
		return d.Round(100 * time.Millisecond)
	}
	return d.Round(time.Millisecond)
}

// MissingWrites returns the acknowledged IDs absent from present, sorted.
// An acknowledged write is one whose COMMIT returned success to the client;
// with synchronous replication none of them may be missing after a failover.
func MissingWrites(acked []int64, present map[int64]bool) []int64 {
	var missing []int64
	for _, id := range acked {
		if !present[id] {
			missing = append(missing, id)
		}
	}
	sort.Slice(missing, func(i, j int) bool { return missing[i] < missing[j] })
	return missing
}

// tableCell keeps a value inside one markdown table cell.
func tableCell(s string) string {
	return strings.NewReplacer("|", "/", "\r\n", " / ", "\n", " / ").Replace(s)
}
