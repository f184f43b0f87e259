package cells

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/belay-sh/belay/internal/cli"
	"github.com/belay-sh/belay/internal/shq"
	"github.com/belay-sh/belay/router"
	"github.com/belay-sh/belay/router/admin"
	"github.com/belay-sh/belay/router/move"
)

// NewCmdCells returns `belay cells APP`.
func NewCmdCells(f *cli.Factory) *cobra.Command {
	o := newOptions(f)
	cmd := &cobra.Command{
		Use:   "cells APP",
		Short: "An app's cells: shops, health and release per cell, and the routers' state",
		Long: `Lists the cells of APP as a router knows them (cells.conf), with the number
of shops mapped to each (and how many are frozen by a move), the cell's
health probed from the router (TCP connect to its entry point), the release
its first host runs, the health of its database, and every router's loaded
mapping version and last error.

The database's health is the state of the pg_auto_failover formation that
holds it, read on the monitor (the routers are not admitted to a dedicated
pair): "default" for a cell on the stack's pair (shared), the cell's own
formation for a cell with its own pair (dedicated). "up" is one primary and
one settled secondary; "degraded" a primary without a failover target; "down"
no primary. --json adds it per cell under "database" (kind, formation,
health, nodes).

Exit status 1 when a cell or its database is not up or a router reports an error.`,
		Example: "  belay cells shop\n  belay cells shop --json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.App = args[0]
			return runCells(cmd.Context(), o)
		},
	}
	o.flags(cmd, false)
	return cmd
}

func runCells(ctx context.Context, o *Options) error {
	if err := o.open(ctx); err != nil {
		return err
	}
	defer o.close()
	res, err := o.client().Cells(ctx)
	if err != nil {
		return err
	}
	bad := false
	for i, c := range res.Cells {
		res.Cells[i].Release = o.release(ctx, c.Name)
		bad = bad || c.Health != "up"
	}
	run := o.RunRoot
	if run == nil {
		run = o.poolRoot
	}
	if !fillDatabases(ctx, o.inv, o.App, res.Cells, run) {
		bad = true
	}
	for _, r := range res.Routers {
		bad = bad || r.Error != ""
	}
	if err := printCells(o.IO.Out, res, o.JSON); err != nil {
		return err
	}
	if !o.JSON {
		// The shops' own certificates, summed over routers (details: belay shop certs).
		if certs, err := o.client().Certs(ctx, ""); err != nil {
			fmt.Fprintf(o.IO.Out, "\nshop certificates: ? (%v)\n", err)
		} else if len(certs) > 0 {
			n := map[string]int{}
			for _, c := range certs {
				n[c.State]++
			}
			fmt.Fprintf(o.IO.Out, "\nshop certificates (per router): %d issued, %d pending, %d failed (belay shop certs --app %s)\n",
				n["issued"], n["pending"], n["failed"], o.App)
		}
	}
	if bad || res.Unplaced > 0 {
		return cli.ExitError{Code: 1}
	}
	return nil
}

// printCells writes the report: JSON, or the cells' and routers' tables.
func printCells(w io.Writer, res admin.Response, asJSON bool) error {
	if asJSON {
		return cli.PrintJSON(w, res)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CELL\tSHOPS\tFROZEN\tHEALTH\tDATABASE\tRELEASE")
	for _, c := range res.Cells {
		name := c.Name
		if c.Name == res.Default {
			name += " (default)"
		}
		db := "?"
		if d := c.Database; d != nil {
			db = d.Health
			if d.Kind != "" {
				db += " (" + d.Kind + ", " + d.Formation + ")"
			}
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\n", name, c.Shops, c.Frozen, c.Health, db, c.Release)
	}
	fmt.Fprintln(tw, "\nROUTER\tVERSION\tSEEN\tERROR")
	for _, r := range res.Routers {
		fmt.Fprintf(tw, "%s\t%d\t%s ago\t%s\n", r.Name, r.Version, time.Since(r.SeenAt).Round(time.Second), r.Error)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if res.Unplaced > 0 {
		_, err := fmt.Fprintf(w, "%d shops are mapped to cells this router does not know\n", res.Unplaced)
		return err
	}
	return nil
}

// release reads the release a cell's first host runs ("?" with the reason).
func (o *Options) release(ctx context.Context, cell string) string {
	host, err := o.cellHost(cell)
	if err != nil {
		return "? (" + err.Error() + ")"
	}
	c, err := o.pool.Get(ctx, host)
	if err != nil {
		return "? (" + host + " unreachable)"
	}
	res, err := c.Run(ctx, shq.Join("readlink", "/srv/"+o.App+"/current"), nil)
	if err != nil {
		return "? (" + host + ": no release)"
	}
	s := strings.TrimSpace(string(res.Stdout))
	return s[strings.LastIndexByte(s, '/')+1:]
}

// NewCmdShop returns `belay shop` (assign, move).
func NewCmdShop(f *cli.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "shop",
		Short: "Map shops to cells and move them between cells",
	}
	cmd.AddCommand(newCmdAssign(f), newCmdMove(f), newCmdAudit(f), newCmdTLS(f), newCmdCerts(f))
	return cmd
}

func newCmdMove(f *cli.Factory) *cobra.Command {
	o := newOptions(f)
	mo := move.Options{}
	cmd := &cobra.Command{
		Use:   "move DOMAIN --app APP --to CELL | --abort",
		Short: "Move a shop to another cell: freeze it alone, export, import, flip, unfreeze (resumable)",
		Long: `Freezes DOMAIN (its clients get 503 with Retry-After; no other shop is
touched), waits until every live router serves the freeze, runs
belay-move export on the source cell and belay-move import on the target
(docs/cells.md), flips the route and unfreezes. Every step is recorded in the
mapping: after a crash run the same command again to resume, or --abort to
leave the shop on its old cell, unfrozen. A failed export or import unfreezes
the shop on its old cell.`,
		Example: "  belay shop move acme.example.com --app shop --to c2\n  belay shop move acme.example.com --app shop --abort",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := router.NormalizeDomain(args[0])
			if err != nil {
				return err
			}
			if mo.Abort == (mo.To != "") {
				return fmt.Errorf("give exactly one of --to CELL and --abort")
			}
			ctx := cmd.Context()
			if err := o.open(ctx); err != nil {
				return err
			}
			defer o.close()
			mo.App, mo.Domain, mo.Actor = o.App, d, actor()
			mo.DB, mo.Hooks = o.client(), sshHooks{o}
			if !o.JSON {
				mo.Log = o.IO.ErrOut
			}
			if mo.To != "" {
				o.warmCells(ctx, mo.DB, d, mo.To)
			}
			res, err := move.Run(ctx, mo)
			if err != nil {
				return err
			}
			if o.JSON {
				return cli.PrintJSON(o.IO.Out, res)
			}
			if res.Aborted {
				fmt.Fprintf(o.IO.Out, "move of %s to %s aborted; it stays on %s, unfrozen\n", d, res.To, res.From)
				return nil
			}
			fmt.Fprintf(o.IO.Out, "%s moved %s → %s: %d bytes, frozen %d ms, %d routers\n", d, res.From, res.To, res.Bytes, res.FreezeMillis, res.Routers)
			return nil
		},
	}
	o.flags(cmd, true)
	fl := cmd.Flags()
	fl.StringVar(&mo.To, "to", "", "the target cell")
	fl.BoolVar(&mo.Abort, "abort", false, "end a move in progress: the shop stays on its old cell, unfrozen")
	fl.DurationVar(&mo.Propagation, "propagation-timeout", 10*time.Second, "how long to wait for every router to load the freeze (and the flip)")
	fl.StringVar(&mo.SpoolDir, "spool-dir", "", "where the exported data waits for the import (default: the system temp dir)")
	return cmd
}

func newCmdAudit(f *cli.Factory) *cobra.Command {
	o := newOptions(f)
	var limit int
	cmd := &cobra.Command{
		Use:   "audit [DOMAIN] --app APP",
		Short: "Who assigned and moved which shop, when, and how each move step ended",
		Long: `Prints the last --limit rows of the mapping's audit (assign, move-begin,
move-exported, move-imported, move-done, move-abort with its reason), oldest
first, for one shop or all shops of APP.`,
		Example: "  belay shop audit acme.example.com --app shop",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			d := ""
			if len(args) == 1 {
				var err error
				if d, err = router.NormalizeDomain(args[0]); err != nil {
					return err
				}
			}
			if limit < 1 || limit > admin.MaxAudit {
				return fmt.Errorf("--limit %d: expected 1-%d", limit, admin.MaxAudit)
			}
			ctx := cmd.Context()
			if err := o.open(ctx); err != nil {
				return err
			}
			defer o.close()
			rows, err := o.client().Audit(ctx, d, limit)
			if err != nil {
				return err
			}
			if o.JSON {
				return cli.PrintJSON(o.IO.Out, rows)
			}
			tw := tabwriter.NewWriter(o.IO.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "AT\tSHOP\tACTION\tFROM\tTO\tACTOR\tDETAIL")
			for _, r := range rows {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.At.Format(time.RFC3339), r.Domain, r.Action, r.From, r.To, r.Actor, r.Detail)
			}
			return tw.Flush()
		},
	}
	o.flags(cmd, true)
	cmd.Flags().IntVar(&limit, "limit", 50, "number of rows")
	return cmd
}
