package deploy

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/belay-sh/belay/deploy"
	"github.com/belay-sh/belay/hostrelease/journal"
	"github.com/belay-sh/belay/internal/cli"
)

// `belay rollback`, `releases` and `audit` on an app with cells act per cell:
// each cell's releases, journal and audit log live on its own servers, and
// the per-app code runs on a cell's Deployer (deploy.ForCell), as a cells
// deploy does. --cell picks cells (default: every cell).

// cellFlag adds --cell to a command that acts per cell.
func (c *Common) cellFlag(cmd *cobra.Command, what string) {
	cmd.Flags().StringSliceVar(&c.Cells, "cell", nil, "app with cells: "+what+" only these cells (c1,c2); default: every cell")
}

// cellDeployers returns the chosen cells (--cell, else every cell) and a
// Deployer for each; none for an app without cells. open already checked
// --cell against the inventory.
func cellDeployers(s *session, c *Common) ([]string, map[string]*deploy.Deployer, error) {
	a := s.d.Inv.App(s.d.App)
	if a == nil || len(a.Cells) == 0 {
		return nil, nil, nil
	}
	names, err := deploy.SelectCells(a, "--cell", c.Cells)
	if err != nil {
		return nil, nil, err
	}
	ds := map[string]*deploy.Deployer{}
	for _, n := range names {
		if ds[n], err = s.d.ForCell(n); err != nil {
			return nil, nil, fmt.Errorf("--cell: %w", err)
		}
	}
	return names, ds, nil
}

// CellRollback is one cell's part of a `belay rollback --json` on an app
// with cells: its outcome as for an app (deploy.Outcome), or why it failed.
type CellRollback struct {
	Cell    string          `json:"cell"`
	Outcome *deploy.Outcome `json:"outcome,omitempty"`
	Error   string          `json:"error,omitempty"`
}

// CellsRollback is `belay rollback --json` on an app with cells.
type CellsRollback struct {
	App    string         `json:"app"`
	Action string         `json:"action"` // rollback, abandon
	Result string         `json:"result"` // ok, failed
	Cells  []CellRollback `json:"cells"`
}

// checkCellsRollback refuses, before any cell is touched, a rollback whose
// meaning differs between cells: without --to each cell goes back to ITS
// previous release, which undoes one deploy only when every chosen cell runs
// the same release (a partly rolled-out cells deploy leaves c1 on v42 and c2
// on v41: rolling both back would take c2 to v40). Also refused: a cell whose
// servers disagree or cannot be read, a cell where another run's rollout is
// under way, and --to a release some server lacks. A cell with a paused or
// died rollout is rolled back by undoing that rollout (as an app is), so
// without --to such cells may not be mixed with cells that have none (those
// would go back a whole release); its servers may disagree (the per-app
// code converges them).
func checkCellsRollback(ctx context.Context, names []string, ds map[string]*deploy.Deployer, to string) error {
	var problems, unfinished, steady []string
	byRel := map[string][]string{}
	for _, c := range names {
		states, err := ds[c].States(ctx)
		if err != nil {
			return fmt.Errorf("cell %s: %w; no cell was touched", c, err)
		}
		cur := map[string][]string{}
		open := ""
		for _, st := range states {
			if st.Rollout == "paused" || st.Rollout == "died" {
				open = st.Rollout
			}
			switch {
			case st.Error != "":
				problems = append(problems, fmt.Sprintf("cell %s: %s unreachable: %s", c, st.Host, st.Error))
				continue
			case st.Rollout == "running":
				problems = append(problems, fmt.Sprintf("cell %s: a rollout is RUNNING on %s (another run holds the lease)", c, st.Host))
			case to != "" && !contains(st.Releases, to):
				problems = append(problems, fmt.Sprintf("cell %s: release %s is not on %s", c, to, st.Host))
			}
			cur[st.Current] = append(cur[st.Current], st.Host)
		}
		if open != "" {
			unfinished = append(unfinished, c+" ("+open+")")
			continue
		}
		steady = append(steady, c)
		if len(cur) > 1 && to == "" {
			problems = append(problems, fmt.Sprintf("cell %s: its servers run different releases (%s); converge it with --cell %s --to RELEASE", c, relList(cur), c))
		}
		for r := range cur {
			byRel[r] = append(byRel[r], c)
		}
	}
	if to == "" && len(unfinished) > 0 && len(steady) > 0 {
		problems = append(problems, fmt.Sprintf("cells %s have an unfinished rollout, which rollback undoes, while cells %s have none and would go back a whole release; "+
			"choose the cells with --cell, or name one release with --to", strings.Join(unfinished, ", "), strings.Join(steady, ", ")))
	}
	if to == "" && len(unfinished) == 0 && len(byRel) > 1 {
		problems = append(problems, fmt.Sprintf("the cells run different releases (%s): each would go back to its own previous release; "+
			"choose the cells to roll back with --cell, or name one release with --to", relList(byRel)))
	}
	if len(problems) > 0 {
		return fmt.Errorf("rollback refused, no cell was touched:\n  %s", strings.Join(problems, "\n  "))
	}
	return nil
}

func relList(m map[string][]string) string {
	var parts []string
	for r, who := range m {
		parts = append(parts, fmt.Sprintf("%s on %s", dash(r), strings.Join(uniq(who), ",")))
	}
	sort.Strings(parts)
	return strings.Join(parts, "; ")
}

func uniq(xs []string) []string {
	var out []string
	for _, x := range xs {
		if !contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// runRollbackCells rolls the chosen cells back at once (a rollback is the
// emergency path), each through its own lease and pipeline.
func runRollbackCells(ctx context.Context, o *RollbackOptions, names []string, ds map[string]*deploy.Deployer) error {
	action := "rollback"
	if o.Abandon {
		action = "abandon"
	} else if err := checkCellsRollback(ctx, names, ds, o.To); err != nil {
		return err
	}
	roll := func(ctx context.Context, c string) (*deploy.Outcome, error) {
		if o.Abandon {
			return ds[c].Abandon(ctx)
		}
		return ds[c].Rollback(ctx, o.To)
	}
	return rollCells(ctx, o, ds[names[0]].App, action, names, roll)
}

// rollCells runs roll on every cell at once and reports each cell's outcome;
// exit 1 (after the report) unless every cell's succeeded.
func rollCells(ctx context.Context, o *RollbackOptions, app, action string, names []string, roll func(context.Context, string) (*deploy.Outcome, error)) error {
	res := CellsRollback{App: app, Action: action, Result: "ok", Cells: make([]CellRollback, len(names))}
	var wg sync.WaitGroup
	for i, c := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := roll(ctx, c)
			res.Cells[i] = CellRollback{Cell: c, Outcome: out}
			if err != nil {
				res.Cells[i].Error = err.Error()
			}
		}()
	}
	wg.Wait()
	var failed []string
	for _, cr := range res.Cells {
		if cr.Error != "" || cr.Outcome == nil || cr.Outcome.Result == "failed" {
			failed = append(failed, cr.Cell)
		}
		if cr.Outcome != nil {
			summary(o.deps, cr.Outcome)
		}
	}
	if len(failed) > 0 {
		res.Result = "failed"
	}
	if o.JSON {
		if err := cli.PrintJSON(o.IO.Out, res); err != nil {
			return err
		}
	} else {
		for _, cr := range res.Cells {
			fmt.Fprintf(o.IO.Out, "cell %s: ", cr.Cell)
			switch out := cr.Outcome; {
			case out == nil:
				fmt.Fprintf(o.IO.Out, "%s failed: %s\n", action, cr.Error)
			default:
				fmt.Fprint(o.IO.Out, out.Action)
				if out.Release != "" {
					fmt.Fprint(o.IO.Out, " "+out.Release)
				}
				fmt.Fprintf(o.IO.Out, ": %s", out.Result)
				if out.Duration != "" {
					fmt.Fprintf(o.IO.Out, " in %s", out.Duration)
				}
				if out.Recovery != "" {
					fmt.Fprintf(o.IO.Out, " (recovered an unfinished rollout first: %s)", out.Recovery)
				}
				if cr.Error != "" {
					fmt.Fprintf(o.IO.Out, ": %s", cr.Error)
				}
				fmt.Fprintln(o.IO.Out)
			}
		}
	}
	if len(failed) > 0 {
		return ghFail(o.deps, "rollback", fmt.Errorf("%s failed on cell(s) %s", action, strings.Join(failed, ", ")))
	}
	return nil
}

// runReleasesCells lists each chosen cell's servers' releases; --json rows
// carry the cell.
func runReleasesCells(ctx context.Context, o *ListOptions, names []string, ds map[string]*deploy.Deployer) error {
	var out []HostReleases
	for _, c := range names {
		states, err := ds[c].States(ctx)
		if err != nil {
			return fmt.Errorf("cell %s: %w", c, err)
		}
		for _, st := range states {
			hr := releasesOf(st)
			hr.Cell = c
			out = append(out, hr)
		}
	}
	return printReleases(o, out)
}

// CellAuditEntry is an audit log entry of one cell (`belay audit --json`).
type CellAuditEntry struct {
	Cell string `json:"cell"`
	journal.Entry
}

// runAuditCells merges the chosen cells' audit logs by time (the last -n
// entries of each cell, then the last -n of them all).
func runAuditCells(ctx context.Context, o *ListOptions, names []string, ds map[string]*deploy.Deployer) error {
	var all []CellAuditEntry
	var from []string
	for _, c := range names {
		es, host, err := ds[c].Audit(ctx, o.Lines)
		if err != nil {
			return fmt.Errorf("cell %s: %w", c, err)
		}
		from = append(from, c+" from "+host)
		for _, e := range es {
			all = append(all, CellAuditEntry{Cell: c, Entry: e})
		}
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].Time.Before(all[j].Time) })
	if len(all) > o.Lines {
		all = all[len(all)-o.Lines:]
	}
	if o.JSON {
		if all == nil {
			all = []CellAuditEntry{}
		}
		return cli.PrintJSON(o.IO.Out, all)
	}
	fmt.Fprintf(o.IO.ErrOut, "audit log of %s: cell %s\n", ds[names[0]].App, strings.Join(from, ", cell "))
	tw := tabwriter.NewWriter(o.IO.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tCELL\tWHO\tFROM\tACTION\tRELEASE\tPREVIOUS\tRESULT\tDETAIL")
	for _, e := range all {
		d := e.Detail
		if e.CI != "" {
			d = strings.TrimSpace(e.CI + " " + d)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Time.UTC().Format(time.RFC3339), e.Cell, e.Who, e.From, e.Action, dash(e.Release), dash(e.Previous), e.Result, d)
	}
	return tw.Flush()
}
