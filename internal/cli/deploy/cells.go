package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/belay-sh/belay/deploy"
	"github.com/belay-sh/belay/deploy/appenv"
	"github.com/belay-sh/belay/deploy/notify"
	"github.com/belay-sh/belay/deploy/plan"
	"github.com/belay-sh/belay/hostrelease"
	"github.com/belay-sh/belay/internal/cli"
	"github.com/belay-sh/belay/inventory"
)

// CellFlags are `belay deploy`'s flags for an app with cells.
type CellFlags struct {
	Cells      []string
	CanaryCell string
	WaveSize   int
}

func (c *CellFlags) flags(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringSliceVar(&c.Cells, "cells", nil, "app with cells: deploy only these cells (c1,c2), the first (or --canary-cell) as the canary cell; default: every cell")
	fl.StringVar(&c.CanaryCell, "canary-cell", "", "app with cells: the cell that gets the release first, through every canary stage (default: the first of --cells, else the app's first cell)")
	fl.IntVar(&c.WaveSize, "wave-size", 1, "app with cells: how many cells roll out at once after the canary cell")
}

// cellsMode: the app has cells, or a cells flag was given (which an app
// without cells refuses, naming the flag).
func (o *DeployOptions) cellsMode(inv *inventory.Inventory) bool {
	a := inv.App(o.App)
	return a != nil && len(a.Cells) > 0 || len(o.CellFlags.Cells) > 0 || o.CanaryCell != "" || o.changed != nil && o.changed("wave-size")
}

func (o *DeployOptions) cellsOptions() (deploy.CellsOptions, error) {
	if o.changed != nil && o.changed("wave-size") && o.WaveSize < 1 {
		return deploy.CellsOptions{}, fmt.Errorf("--wave-size %d: expected 1 or more cells per wave", o.WaveSize)
	}
	return deploy.CellsOptions{Cells: o.CellFlags.Cells, CanaryCell: o.CanaryCell, WaveSize: o.WaveSize}, nil
}

// runDeployCells is `belay deploy` on an app with cells: the same checks,
// then each cell through the app's pipeline, wave after wave.
func runDeployCells(ctx context.Context, o *DeployOptions, in plan.Input, a *hostrelease.Artifact, e *appenv.Env, nt *notify.Notifier) error {
	co, err := o.cellsOptions()
	if err != nil {
		return err
	}
	cp, err := deploy.PlanCells(in, co)
	if err != nil {
		return err
	}
	if o.DryRun {
		return printCellsPlan(o, cp)
	}
	s, err := open(ctx, o.deps, &o.Common, o.IO.ErrOut)
	if err != nil {
		return err // early() annotates it
	}
	defer s.close()
	s.d.Wait, s.d.WaitTimeout = o.Wait, o.WaitTimeout
	s.d.Runner.Judge = deploy.Judge(o.Thresholds)
	s.d.Runner.Artifact = deploy.OpenArtifact(a)
	s.d.Runner.Env, s.d.Notify, s.d.Stack = e.Render(), nt, in.Inventory.Stack
	defer nt.Close(10 * time.Second)
	fmt.Fprintf(o.IO.ErrOut, "deploying %s %s (%s, sha256 %s, env serial %d) to cells %s: %s%s\n", o.App, o.Release, a.Kind, a.SHA256[:12], e.Serial,
		waveText(cp.Waves), cp.Plans[cp.Waves[0][0]].Strategy, webhooks(nt))
	out, err := s.d.DeployCells(ctx, in, co)
	return reportCells(o.deps, o.JSON, out, err)
}

// runEnvOnlyCells is `belay deploy --env-only` on an app with cells: each
// chosen cell re-deploys the release it runs with the app's env, in the
// waves of a release deploy, and a failure rolls back every cell touched.
func runEnvOnlyCells(ctx context.Context, o *DeployOptions, in plan.Input, e *appenv.Env, nt *notify.Notifier) error {
	co, err := o.cellsOptions()
	if err != nil {
		return err
	}
	check := deploy.EnvOnlyCheck(in, e.Serial)
	if o.DryRun {
		check.CopyFrom, check.Release = "CURRENT", plan.EnvRelease("CURRENT", e.Serial)
	}
	cp, err := deploy.PlanCells(check, co)
	if err != nil {
		return err
	}
	if o.DryRun {
		fmt.Fprintf(o.IO.ErrOut, "env-only: CURRENT is the release each cell's hosts run (read from the hosts at deploy time)\n")
		return printCellsPlan(o, cp)
	}
	s, err := open(ctx, o.deps, &o.Common, o.IO.ErrOut)
	if err != nil {
		return ghFail(o.deps, "deploy", err)
	}
	defer s.close()
	s.d.Wait, s.d.WaitTimeout = o.Wait, o.WaitTimeout
	s.d.Runner.Judge = deploy.Judge(o.Thresholds)
	s.d.Runner.Env, s.d.Notify, s.d.Stack = e.Render(), nt, in.Inventory.Stack
	defer nt.Close(10 * time.Second)
	fmt.Fprintf(o.IO.ErrOut, "deploying the env of %s (serial %d) with each cell's running release to cells %s: %s%s\n", o.App, e.Serial,
		waveText(cp.Waves), cp.Plans[cp.Waves[0][0]].Strategy, webhooks(nt))
	out, err := s.d.DeployCellsEnvOnly(ctx, in, co, e.Serial)
	return reportCells(o.deps, o.JSON, out, err)
}

// waveText is "c1 (canary cell), then c2, then c3 c4".
func waveText(waves [][]string) string {
	parts := []string{waves[0][0] + " (canary cell)"}
	for _, w := range waves[1:] {
		parts = append(parts, strings.Join(w, " "))
	}
	return strings.Join(parts, ", then ")
}

// printCellsPlan is --dry-run: every cell's plan, in wave order.
func printCellsPlan(o *DeployOptions, cp *deploy.CellsPlan) error {
	if o.JSON {
		type cellPlan struct {
			Cell string          `json:"cell"`
			Wave int             `json:"wave"`
			Plan json.RawMessage `json:"plan"`
		}
		doc := struct {
			App   string     `json:"app"`
			Waves [][]string `json:"waves"`
			Cells []cellPlan `json:"cells"`
		}{App: o.App, Waves: cp.Waves}
		for wi, w := range cp.Waves {
			for _, c := range w {
				b, err := plan.JSON(cp.Plans[c])
				if err != nil {
					return err
				}
				doc.Cells = append(doc.Cells, cellPlan{Cell: c, Wave: wi, Plan: b})
			}
		}
		return cli.PrintJSON(o.IO.Out, doc)
	}
	fmt.Fprintf(o.IO.Out, "Cells: %s; a failure rolls back every cell touched, the later waves are never touched\n", waveText(cp.Waves))
	for wi, w := range cp.Waves {
		for _, c := range w {
			what := fmt.Sprintf("wave %d", wi)
			if wi == 0 {
				what = "canary cell"
			}
			fmt.Fprintf(o.IO.Out, "\n== cell %s (%s)\n", c, what)
			plan.Print(o.IO.Out, cp.Plans[c])
		}
	}
	return nil
}

// reportCells prints a cells deploy's outcome (text or JSON), writes the
// GitHub job summary, and turns failure into exit status 1.
func reportCells(d deps, asJSON bool, out *deploy.CellsOutcome, err error) error {
	if out != nil {
		if asJSON {
			if perr := cli.PrintJSON(d.IO.Out, out); perr != nil {
				return perr
			}
		} else {
			writeCellsText(d.IO.Out, out)
		}
		if path := d.Getenv("GITHUB_STEP_SUMMARY"); d.Getenv("GITHUB_ACTIONS") == "true" && path != "" {
			if f, ferr := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); ferr == nil {
				writeCellsSummary(f, out)
				f.Close()
			} else {
				fmt.Fprintf(d.IO.ErrOut, "belay: job summary %s: %v\n", path, ferr)
			}
		}
	}
	if err != nil {
		return ghFail(d, "deploy", err)
	}
	return nil
}

// cellLine says what happened to one cell.
func cellLine(c deploy.CellOutcome) string {
	var b strings.Builder
	b.WriteString(c.State)
	if o := c.Deploy; o != nil {
		fmt.Fprintf(&b, " (its rollout: %s", o.Result)
		if o.Previous != "" {
			fmt.Fprintf(&b, ", previous %s", o.Previous)
		}
		if o.Rollback != "" {
			fmt.Fprintf(&b, ", its rollback took %s%s", o.Rollback, o.Detection.Summary())
		}
		b.WriteString(")")
	}
	if o := c.Rollback; o != nil && o.Result == "ok" {
		fmt.Fprintf(&b, ", then rolled back to %s in %s", o.Release, o.Duration)
	}
	if c.Error != "" && c.State != deploy.CellOK {
		fmt.Fprintf(&b, ": %s", c.Error)
	}
	return b.String()
}

func writeCellsText(w io.Writer, out *deploy.CellsOutcome) {
	fmt.Fprintf(w, "deploy %s %s to cells: %s in %s\n", out.App, out.Release, out.Result, out.Duration)
	for _, c := range out.Cells {
		what := fmt.Sprintf("wave %d", c.Wave)
		if c.Wave == 0 {
			what = "canary cell"
		}
		fmt.Fprintf(w, "  cell %s (%s; %s): %s\n", c.Cell, what, strings.Join(c.Hosts, ", "), cellLine(c))
	}
	fmt.Fprintf(w, "touched: %s; rolled back: %s; never touched: %s\n", orNone(out.Touched), orNone(out.RolledBack), orNone(out.Untouched))
}

func writeCellsSummary(w io.Writer, out *deploy.CellsOutcome) {
	icon := map[string]string{"ok": "✅", "paused": "⏸️", "rolled-back": "↩️", "rollback-failed": "🛑", "failed": "❌"}[out.Result]
	fmt.Fprintf(w, "### %s belay deploy `%s` %s to cells: %s\n\n| cell | wave | state |\n|---|---|---|\n", icon, out.App, out.Release, out.Result)
	for _, c := range out.Cells {
		fmt.Fprintf(w, "| %s | %d | %s |\n", c.Cell, c.Wave, strings.ReplaceAll(cellLine(c), "|", "\\|"))
	}
	fmt.Fprintf(w, "\ntouched: %s; rolled back: %s; never touched: %s\n\n", orNone(out.Touched), orNone(out.RolledBack), orNone(out.Untouched))
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// runCellStatus is `belay status` for an app with cells: a row per cell,
// then each server's row with its cell. Exit 1 when a cell is unhealthy.
func runCellStatus(ctx context.Context, o *ListOptions, s *session) error {
	cells, err := s.d.CellStates(ctx)
	if err != nil {
		return err
	}
	unhealthy := false
	for _, c := range cells {
		unhealthy = unhealthy || !c.Healthy
	}
	if o.JSON {
		if err := cli.PrintJSON(o.IO.Out, struct {
			App   string             `json:"app"`
			Cells []deploy.CellState `json:"cells"`
		}{s.d.App, cells}); err != nil {
			return err
		}
		if unhealthy {
			return cli.ExitError{Code: 1}
		}
		return nil
	}
	tw := tabwriter.NewWriter(o.IO.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CELL\tVIP\tVIP HOLDER\tRELEASE\tHEALTHY\tHOSTS")
	for _, c := range cells {
		healthy := "yes"
		if !c.Healthy {
			healthy = "NO"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", c.Cell, dash(c.VIP), dash(strings.Join(c.VIPHolders, ",")), dash(c.Release), healthy, strings.Join(c.Hosts, ", "))
	}
	tw.Flush()
	fmt.Fprintln(o.IO.Out)
	tw = tabwriter.NewWriter(o.IO.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CELL\tHOST\tCURRENT\tSTABLE\tHEALTH\tCANARY\tCANARY UNIT\tCANARY TRAFFIC\tLAST DEPLOY")
	for _, c := range cells {
		for _, st := range c.States {
			if st.Error != "" {
				fmt.Fprintf(tw, "%s\t%s\tunreachable: %s\n", c.Cell, st.Host, st.Error)
				continue
			}
			host := st.Host
			if st.Standby {
				host += " (standby)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.Cell, host, dash(st.Current), dash(st.Stable), dash(st.Health),
				dash(st.Canary), dash(st.CanaryUnit), st.CanaryShare, lastDeploy(st.Journal))
		}
	}
	tw.Flush()
	for _, c := range cells {
		for _, p := range c.Problems {
			fmt.Fprintf(o.IO.Out, "cell %s UNHEALTHY: %s\n", c.Cell, p)
		}
		for _, st := range c.States {
			if st.Lease != nil {
				fmt.Fprintf(o.IO.Out, "cell %s lease (on %s): %s\n", c.Cell, st.Host, st.Lease)
			}
			if st.Maintenance != "" {
				fmt.Fprintf(o.IO.Out, "cell %s MAINTENANCE %s: %s\n", c.Cell, st.Host, st.Maintenance)
			}
			if j := st.Journal; j != nil && st.Rollout != "" {
				fmt.Fprintf(o.IO.Out, "cell %s %s: %s of %s %s (deploy %s by %s, step %q)\n", c.Cell, st.Host, j.Kind, j.Target, strings.ToUpper(st.Rollout), j.DeployID, j.By, j.Step)
			}
		}
	}
	if unhealthy {
		return cli.ExitError{Code: 1}
	}
	return nil
}
