// Package dbcopy is `belay db copy --cell APP/CELL`: it moves a cell's
// database from the stack's cluster onto the cell's dedicated pair (package
// celldb plans and runs it). It lives in the `belay db` group next to `db
// resize --cell`, which operates the same pair; this package parses flags,
// opens the target, takes the cell's lease, wires converge and audits.
package dbcopy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/belay-sh/belay/celldb"
	"github.com/belay-sh/belay/deploy"
	"github.com/belay-sh/belay/deploy/lease"
	"github.com/belay-sh/belay/hostrelease"
	"github.com/belay-sh/belay/hostrelease/journal"
	"github.com/belay-sh/belay/internal/cli"
	convergecli "github.com/belay-sh/belay/internal/cli/converge"
	"github.com/belay-sh/belay/internal/opsenv"
	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/lab"
)

// Conn is an opened target.
type Conn interface {
	// Runner reaches the hosts (fenced by the lease once Hold took it).
	Runner() celldb.Runner
	// Pipe streams between hosts (the dump into the restore).
	Pipe() celldb.Piper
	// Hold takes the cell's lease (refused, naming the holder, while a
	// deploy or drill of the cell holds it); release frees it.
	Hold(ctx context.Context, app, cell, action string, progress io.Writer) (context.Context, func(), error)
	Close()
}

// Options are one `belay db copy` invocation.
type Options struct {
	IO        cli.IO
	Inventory func(ref string) (*inventory.Inventory, error)
	Getenv    func(string) string
	Connect   func(inv *inventory.Inventory, fl opsenv.Flags, getenv func(string) string) (Conn, error)
	// Converge converges one host of inv (belay converge limited to it).
	Converge func(o *Options, inv *inventory.Inventory) func(ctx context.Context, host string) error
	HTTPGet  func(ctx context.Context, url, host string) (int, error)
	Now      func() time.Time

	Cell         string
	InventoryRef string
	Yes          bool
	DryRun       bool
	JSON         bool
	Conn         opsenv.Flags
}

// NewCmdCopy returns `belay db copy --cell APP/CELL`.
func NewCmdCopy(f *cli.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	o := &Options{IO: f.IO, Inventory: f.Inventory, Getenv: f.Getenv, Connect: Open, Converge: Converger, Now: time.Now}
	cmd := &cobra.Command{
		Use:   "copy --cell APP/CELL",
		Short: "Copy a cell's database from the stack's cluster onto its dedicated pair, then switch the cell to it",
		Long: `Switching a cell to cells[].database: dedicated (and pulumi up) gives it an
empty PostgreSQL pair; its data stays in its database on the stack's cluster.
belay db copy moves it, in a maintenance window of that cell only:

  1. checks: the pair's formation has a primary and a secondary, the pair's
     database holds no user table (belay never overwrites), the cell's
     database exists on the stack's primary
  2. freeze: stops nginx on the cell's servers, so the routers answer its
     shops 503 with Retry-After (the cell-down page); other cells see nothing
  3. stops the app and its jobs on the cell's servers (nothing writes)
  4. pg_dump -Fc on the stack's primary, streamed over the two SSH sessions
     into pg_restore on the pair's primary, as the cell's role, in one
     transaction (no new network path between the clusters)
  5. verifies every table's exact row count on both sides and records a
     marker on the pair's database (source, time, counts)
  6. converges the cell's servers (DATABASE_URL now names the pair), starts
     them and waits until the cell answers through its VIP

A failure before step 6 empties the pair's database again and starts the
cell on its old database: nothing changed, run it again. A failure in step 6
leaves the copy marked: running the command again resumes there. After
success it says so and changes nothing. The old database stays on the
stack's cluster until you drop it (docs/cells.md). belay converge refuses to
point a dedicated cell's servers at a pair without the marker while the
stack's cluster still holds the cell's data.

Without --yes the plan is printed and nothing changes. The cell's lease is
held throughout; the copy is written to the cell's audit log (belay audit
--app APP --cell CELL).`,
		Example: `  belay db copy --cell shop/c2 -i pulumi:prod            # the plan
  belay db copy --cell shop/c2 -i pulumi:prod --yes      # copy and switch
  belay db copy --cell shop/c2 -i pulumi:prod --yes --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return Run(cmd.Context(), o)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.Cell, "cell", "", "APP/CELL: the dedicated cell whose database is copied (required)")
	fl.StringVarP(&o.InventoryRef, "inventory", "i", "", cli.InventoryUsage)
	fl.BoolVar(&o.Yes, "yes", false, "perform it (without it the plan is printed and nothing changes)")
	fl.BoolVar(&o.DryRun, "dry-run", false, "print the plan and exit (the hosts are only read)")
	fl.BoolVar(&o.JSON, "json", false, "print the plan / result as JSON")
	opsenv.AddFlags(cmd, &o.Conn)
	_ = cmd.MarkFlagRequired("cell")
	return cmd
}

// Run plans and (with --yes) performs the copy.
func Run(ctx context.Context, o *Options) error {
	if ctx == nil {
		ctx = context.Background()
	}
	app, cell, ok := strings.Cut(o.Cell, "/")
	if !ok || app == "" || cell == "" || strings.Contains(cell, "/") {
		return fmt.Errorf("--cell %q: expected APP/CELL", o.Cell)
	}
	inv, err := o.Inventory(o.InventoryRef)
	if err != nil {
		return err
	}
	tg, err := celldb.Resolve(inv, app, cell)
	if err != nil {
		return err
	}
	c, err := o.Connect(inv, o.Conn, o.Getenv)
	if err != nil {
		return err
	}
	defer c.Close()
	p, err := celldb.Build(inv.Stack, tg, celldb.Observe(ctx, c.Runner(), tg))
	if err != nil {
		return err
	}
	if stop, err := cli.PreviewPlan(o.IO, p, o.JSON, o.DryRun, o.Yes); stop || err != nil {
		return err
	}
	action := "db copy --cell " + o.Cell
	hctx, release, err := c.Hold(ctx, app, cell, action, o.IO.ErrOut)
	if err != nil {
		return fmt.Errorf("%s refused, nothing changed: %w", action, err)
	}
	defer release()
	// Observed again under the lease: the plan must match what holds now.
	if p, err = celldb.Build(inv.Stack, tg, celldb.Observe(hctx, c.Runner(), tg)); err != nil {
		return err
	}
	env := &celldb.Env{Hosts: c.Runner(), Pipe: c.Pipe(), Converge: o.Converge(o, inv), HTTPGet: o.HTTPGet, Out: o.IO.ErrOut, Now: o.Now}
	res, runErr := celldb.Execute(hctx, env, p)
	audit(hctx, o, c, tg, p, res, runErr)
	if o.JSON {
		if err := cli.PrintJSON(o.IO.Out, res); err != nil {
			return errors.Join(runErr, err)
		}
	} else if runErr == nil {
		if res.AlreadyCopied {
			fmt.Fprintf(o.IO.Out, "%s: copied already (%d tables, %d rows from %s at %s); the cell's servers are on the pair and serve\n",
				action, res.Tables, res.Rows, p.Copied.Source, p.Copied.At.Format(time.RFC3339))
		} else {
			fmt.Fprintf(o.IO.Out, "%s: %d tables, %d rows (%d bytes dumped) from %s to %s; the cell was down for %s\n",
				action, res.Tables, res.Rows, res.Bytes, res.Source, res.Target, (time.Duration(res.WindowMillis) * time.Millisecond).Round(100*time.Millisecond))
		}
	}
	return runErr
}

// audit appends the copy to the cell's audit log on its servers, as the
// cell's other operations do.
func audit(ctx context.Context, o *Options, c Conn, tg *celldb.Target, p *celldb.Plan, res *celldb.Result, runErr error) {
	actor := deploy.CurrentActor(o.Getenv)
	result, detail := "ok", fmt.Sprintf("cell %s database %s: %s -> %s", tg.Cell.Name, p.Database, p.Source, p.Target)
	if res != nil {
		detail += fmt.Sprintf("; %d tables, %d rows, %d bytes", res.Tables, res.Rows, res.Bytes)
		if res.AlreadyCopied {
			detail += "; copied already, switch only"
		}
	}
	if runErr != nil {
		result, detail = "failed", detail+"; "+runErr.Error()
		if res != nil && res.RolledBack {
			result = "rolled-back"
		}
	}
	e := journal.Entry{Time: o.Now().UTC(), Who: actor.Who, From: actor.From, CI: actor.CI, Action: "db copy", App: tg.App.Name, Result: result, Detail: detail}
	for _, h := range tg.Cell.Hosts {
		if _, err := c.Runner().Run(ctx, h, journal.AppendAuditCommand(hostrelease.Layout{App: tg.App.Name}, e)); err != nil {
			fmt.Fprintf(o.IO.ErrOut, "WARNING: audit log on %s: %v\n", h, err)
		}
	}
}

// target is the production Conn: opsenv's SSH hosts and leases.
type target struct {
	t      *opsenv.Target
	getenv func(string) string
}

// Open opens inv's hosts (opsenv.Open).
func Open(inv *inventory.Inventory, fl opsenv.Flags, getenv func(string) string) (Conn, error) {
	t, err := opsenv.Open(inv, fl, getenv)
	if err != nil {
		return nil, err
	}
	return &target{t: t, getenv: getenv}, nil
}

func (c *target) Runner() celldb.Runner { return c.t.Runner() }

// Pipe streams with the plain connections: the data nodes carry no lease fence.
func (c *target) Pipe() celldb.Piper { return c.t.Hosts }
func (c *target) Close()             { c.t.Close() }

func (c *target) Hold(ctx context.Context, app, cell, action string, progress io.Writer) (context.Context, func(), error) {
	return c.t.HoldLeases(ctx, opsenv.LeaseOptions{Apps: []string{app}, Cells: []string{cell}, Action: action,
		Actor: deploy.CurrentActor(c.getenv), LockDir: lease.DefaultLockDir(c.getenv), Progress: progress})
}

// Converger converges one host with belay converge's own code (its guard
// included: the marker is written by then), narrowed to that host; the copy
// holds the cell's lease, so converge takes none.
func Converger(o *Options, inv *inventory.Inventory) func(ctx context.Context, host string) error {
	return func(ctx context.Context, host string) error {
		co := &convergecli.Options{
			IO: cli.IO{Out: o.IO.ErrOut, ErrOut: o.IO.ErrOut}, Getenv: o.Getenv,
			Inventory:    func(string) (*inventory.Inventory, error) { return inv, nil },
			InventoryRef: o.InventoryRef, LabPaths: lab.DefaultPaths, Parallel: 1, Now: time.Now,
			Pulumi: convergecli.RunPulumi,
			Source: func(ctx context.Context, co *convergecli.Options) (*convergecli.Source, error) {
				src, err := convergecli.LoadSource(ctx, co)
				if err != nil {
					return nil, err
				}
				return convergecli.OnlyHosts(src, host)
			},
			// The whole inventory: the guard reads the data nodes, outside the narrowed source.
			Connect: func(*inventory.Inventory) (convergecli.Runner, func(), error) {
				t, err := opsenv.Open(inv, o.Conn, o.Getenv)
				if err != nil {
					return nil, nil, err
				}
				return t.Hosts, t.Close, nil
			},
			Hold: convergecli.NoLease,
		}
		err := convergecli.Run(ctx, co)
		var exit cli.ExitError
		if errors.As(err, &exit) {
			return fmt.Errorf("belay converge of %s failed (see above)", host)
		}
		return err
	}
}
