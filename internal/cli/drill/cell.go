package drill

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/belay-sh/belay/deploy"
	"github.com/belay-sh/belay/deploy/lease"
	"github.com/belay-sh/belay/drill"
	"github.com/belay-sh/belay/internal/cli"
	"github.com/belay-sh/belay/internal/opsenv"
	"github.com/belay-sh/belay/inventory"
)

// CellOptions are one `belay drill cell` invocation.
type CellOptions struct {
	IO        cli.IO
	Inventory func(ref string) (*inventory.Inventory, error)
	Getenv    func(string) string
	Open      func(inv *inventory.Inventory, fl opsenv.Flags, getenv func(string) string) (*opsenv.Target, error)

	App          string
	Cell         string
	Kill         string
	Duration     time.Duration
	Shops        []string
	Path         string
	InventoryRef string
	ReportDir    string
	JSON         bool
	Conn         opsenv.Flags
	Now          func() time.Time
}

func newCmdCell(f *cli.Factory, runF func(*CellOptions) error) *cobra.Command {
	o := &CellOptions{IO: f.IO, Inventory: f.Inventory, Getenv: f.Getenv, Open: opsenv.Open, Now: time.Now}
	cmd := &cobra.Command{
		Use:   "cell APP --cell C",
		Short: "Kill one cell of an app (its app servers or its database) under load across every cell; the others must not see an error",
		Long: `Kill one cell of an app with cells while a load goes through the router VIP
to shops of every cell, then heal it, and account per cell:

- every other cell's shops must answer 100 % (the drill fails otherwise);
- the killed cell's shops get the router's clean 503 (X-Belay-Router:
  cell-down): with --kill app at least one is required, and anything else
  they got once the cell was wholly down is reported as a warning (requests
  caught in flight by the fault are counted apart);
- the recovery time: from the heal until the cell's shops answer again
  without a failure for 2 s.

--kill app stops both app servers of the cell: the lab powers the machines
off; elsewhere nginx is stopped on both (sudo -n, as the app-node drill's
stop-nginx). --kill db (lab only) makes the cell's own database refuse
connections on the shared cluster (ALTER DATABASE ... ALLOW_CONNECTIONS false,
its sessions terminated), the other cells' databases untouched; pick a page
that reads the database with --path, or the load will not feel it.

The shops come from a router's cached mapping (/etc/belay/router/APP/mapping.json,
up to 100 active shops per cell) or --shops. The drill holds the lease of
every cell of the app, like a deploy. See docs/drills.md and docs/cells.md.`,
		Example: "  belay drill cell shop --cell c2\n  belay drill cell shop --cell c2 --kill db --path /orders --duration 1m --json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.App = args[0]
			if runF != nil {
				return runF(o)
			}
			return runCell(cmd.Context(), o)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.Cell, "cell", "", "the cell to kill (required)")
	_ = cmd.MarkFlagRequired("cell")
	fl.StringVar(&o.Kill, "kill", drill.CellKillApp, "what to kill: "+strings.Join(drill.CellKills, " (both app servers) or ")+" (the cell's database; lab only)")
	fl.DurationVar(&o.Duration, "duration", drill.CellDuration, "how long the cell stays down (1s-1h)")
	fl.StringSliceVar(&o.Shops, "shops", nil, "shops to load (domains; default: up to 100 active shops per cell from the router's mapping)")
	fl.StringVar(&o.Path, "path", "/", "the path every request of the load asks for")
	fl.StringVarP(&o.InventoryRef, "inventory", "i", "", cli.InventoryUsage)
	fl.StringVar(&o.ReportDir, "report-dir", "drill-reports", "directory for the report files (cell-<kill>-<stack>-<time>.md and .json)")
	fl.BoolVar(&o.JSON, "json", false, "print the report as JSON instead of markdown")
	addConnFlags(cmd, &o.Conn)
	return cmd
}

func runCell(ctx context.Context, o *CellOptions) error {
	if ctx == nil {
		ctx = context.Background()
	}
	kill, err := drill.CheckCellKill(o.Kill)
	if err != nil {
		return err
	}
	if o.Duration < time.Second || o.Duration > time.Hour {
		return fmt.Errorf("--duration %s: expected 1s to 1h", o.Duration)
	}
	inv, err := o.Inventory(o.InventoryRef)
	if err != nil {
		return err
	}
	lab := opsenv.IsLab(inv)
	if _, err := drill.CellSteps(inv, o.App, o.Cell, kill, lab); err != nil {
		return err
	}
	// Refuse before connecting anywhere.
	if err := drill.SupportedCell(&drill.Env{Inv: inv, Lab: lab}, kill); err != nil {
		return err
	}
	t, err := o.Open(inv, o.Conn, o.Getenv)
	if err != nil {
		return err
	}
	defer t.Close()
	env := &drill.Env{Inv: inv, Hosts: t.Hosts, Lab: t.Lab, Progress: o.IO.ErrOut, App: o.App}
	var sf *drill.ServiceFaults
	if t.Faults != nil {
		env.Faults = t.Faults
	} else {
		sf = &drill.ServiceFaults{Hosts: t.Hosts}
		env.Faults = sf
	}
	// The drill holds the lease of every cell like a deploy would: a deploy
	// or another drill on any cell would make the other cells' errors its own.
	// opsenv.HoldFenced takes every cell's lease (cell-name order, each on
	// its cell's first server) and fences every cell's servers.
	ctx, fenced, release, err := opsenv.HoldFenced(ctx, t.Hosts, inv, opsenv.LeaseOptions{Apps: []string{o.App},
		Action: "drill cell/" + kill + " " + o.Cell, Actor: deploy.CurrentActor(o.Getenv), LockDir: lease.DefaultLockDir(o.Getenv), Progress: o.IO.ErrOut})
	if err != nil {
		return fmt.Errorf("drill cell refused, nothing was injected: %w", err)
	}
	defer release()
	env.Hosts = fenced
	if sf != nil {
		sf.Hosts = fenced
	}
	rep, runErr := drill.ExecuteCell(ctx, env, drill.CellOptions{App: o.App, Cell: o.Cell, Kill: kill, Duration: o.Duration, Shops: o.Shops, Path: o.Path})
	if rep == nil {
		return runErr
	}
	return finishReport(o.IO, rep, runErr, o.ReportDir, o.JSON, o.Now())
}

// finishReport writes the report files and the report, and turns the outcome into the exit status.
func finishReport(ios cli.IO, rep *drill.Report, runErr error, dir string, asJSON bool, now time.Time) error {
	if dir != "" {
		md, js, err := WriteReportFiles(rep, dir, now)
		if err != nil {
			return err
		}
		fmt.Fprintf(ios.ErrOut, "report: %s, %s\n", md, js)
	}
	var err error
	if asJSON {
		err = rep.WriteJSON(ios.Out)
	} else {
		err = rep.WriteMarkdown(ios.Out)
	}
	if err != nil {
		return err
	}
	if runErr != nil {
		return runErr
	}
	if rep.Summary.Failed > 0 {
		return cli.ExitError{Code: 1}
	}
	return nil
}
