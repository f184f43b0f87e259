// Package replace is `belay replace HOST` and `belay db resize`: one server
// at a time, after moving traffic or the database primary away from it. The
// plans and their executor live in package replace; this package parses
// flags, opens the target, takes the leases and wires the replacer (Pulumi or
// the lab), the resizer and converge.
package replace

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/belay-sh/belay/celldb"
	"github.com/belay-sh/belay/deploy"
	"github.com/belay-sh/belay/deploy/lease"
	"github.com/belay-sh/belay/internal/cli"
	"github.com/belay-sh/belay/internal/cli/dbcopy"
	"github.com/belay-sh/belay/internal/opsenv"
	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/remote"
	"github.com/belay-sh/belay/replace"
)

// Conn is an opened target, as the commands need it.
type Conn interface {
	// Runner reaches the hosts, fenced by the leases Hold took.
	Runner() remote.Runner
	// Plain reaches the hosts without any fence.
	Plain() remote.Runner
	// Hold takes apps' leases (refused, naming the holder, while a deploy or
	// drill holds one); release frees them.
	Hold(ctx context.Context, apps []string, action string, progress io.Writer) (context.Context, func(), error)
	Lab() bool
	// SetInventory points the connections at inv's addresses (a replaced
	// server may have new ones).
	SetInventory(inv *inventory.Inventory)
	Close()
}

// Options are one `belay replace` or `belay db resize` invocation.
type Options struct {
	IO        cli.IO
	Inventory func(ref string) (*inventory.Inventory, error)
	Getenv    func(string) string
	// Connect opens the target's hosts.
	Connect func(inv *inventory.Inventory, fl opsenv.Flags, getenv func(string) string) (Conn, error)
	// Wire returns the replacer, resizer and converger for the target.
	Wire func(o *Options, inv *inventory.Inventory, c Conn, held []string) (replace.Replacer, replace.Resizer, replace.Converger, error)
	// HTTPGet checks an app through its VIP (nil: a plain HTTP client).
	HTTPGet func(ctx context.Context, url, host string) (int, error)

	Host string // replace
	Size string // db resize
	// Cell is db resize's APP/CELL: that dedicated cell's pair instead of the stack's.
	Cell         string
	InventoryRef string
	Yes          bool
	DryRun       bool
	JSON         bool
	From         string
	Conn         opsenv.Flags
	// PulumiStack and PulumiDir locate the Pulumi stack (cloud targets).
	PulumiStack string
	PulumiDir   string
	// StackFile and Apps are what `belay lab up --stack/--apps` took (the lab's converge).
	StackFile string
	Apps      int
}

func newOptions(f *cli.Factory) *Options {
	return &Options{IO: f.IO, Inventory: f.Inventory, Getenv: f.Getenv, Connect: Open, Wire: Wire}
}

func commonFlags(cmd *cobra.Command, o *Options, lab bool) {
	fl := cmd.Flags()
	fl.StringVarP(&o.InventoryRef, "inventory", "i", "", cli.InventoryUsage)
	fl.BoolVar(&o.Yes, "yes", false, "perform it (without it the plan is printed and nothing changes)")
	fl.BoolVar(&o.DryRun, "dry-run", false, "print the plan and exit (the hosts are only read, to find the primary and the healthy peers)")
	fl.BoolVar(&o.JSON, "json", false, "print the plan / result as JSON")
	fl.StringVar(&o.From, "from", "", "start at this step ID (resume after a failure, e.g. --from boot/db-2: the server is not replaced again)")
	opsenv.AddFlags(cmd, &o.Conn)
	fl.StringVar(&o.PulumiStack, "pulumi-stack", "", "Pulumi stack of a cloud target (default: the inventory's stack)")
	fl.StringVar(&o.PulumiDir, "pulumi-dir", "", "Pulumi project directory (default: the working directory)")
	if lab {
		fl.StringVar(&o.StackFile, "stack-file", "", "the lab's stack file, as given to belay lab up --stack (converge; default: the embedded lab stack)")
		fl.IntVar(&o.Apps, "apps", 0, "number of apps, as given to belay lab up --apps (converge; 0 keeps the stack's)")
	}
}

// checkTargetFlags refuses flags of the other kind of target: a flag that
// would be ignored is a mistake worth stopping for.
func checkTargetFlags(o *Options, lab bool) error {
	switch {
	case lab && o.PulumiStack != "":
		return fmt.Errorf("--pulumi-stack: the target is the lab, which has no Pulumi stack")
	case lab && o.PulumiDir != "":
		return fmt.Errorf("--pulumi-dir: the target is the lab, which has no Pulumi project")
	case !lab && o.StackFile != "":
		return fmt.Errorf("--stack-file: only the lab's converge reads a stack file; this target is a cloud stack")
	case !lab && o.Apps != 0:
		return fmt.Errorf("--apps: only the lab's converge reads it; this target is a cloud stack")
	}
	return nil
}

// NewCmdReplace returns `belay replace HOST`.
func NewCmdReplace(f *cli.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	o := newOptions(f)
	cmd := &cobra.Command{
		Use:   "replace HOST",
		Short: "Replace one server after moving traffic or the database primary away from it",
		Long: `Replace one server of the stack, deliberately, without an outage.

An app server first gives its floating IP up (keepalived, nginx and the app
stopped), belay waits until the peer holds the VIP and the app answers through
it, then replaces the server alone, waits until it boots (SSH with its pinned
host key, which derives from the seed; cloud-init done), converges it, checks
it carries a release and serves. The app's lease is held throughout.

A data node that is the primary is switched over first (the monitor's
perform_switchover: the secondary catches up, then takes writes), and belay
waits until the other node accepts writes. The node's pg_auto_failover is
stopped cleanly, the server replaced (its data volume is kept and re-attached:
belay checks the same filesystem is mounted after boot, not a new one), then
belay waits until the node is a secondary again and the primary streams to it.

db-standby and backup are replaced the same way (volume kept), then checked
in recovery / answering pgbackrest info; a standby app server only when the
standby site does not serve. The monitor is refused (its formation state is not
on a volume), as are cell routers.

Refused, changing nothing: an unknown host, a peer that is not healthy (the
replacement would take the last node; a data node's peer must be the primary,
or a settled secondary when the node is the primary), a monitor that does not
answer, a lease someone holds. A broken data node is replaced as long as its
peer is the primary.

On a cloud stack the replacement is a targeted ` + "`pulumi up --replace`" + ` of that
server (its volume attachment follows), previewed first and checked by the
preview guard; in the lab it is ` + "`belay lab replace HOST`" + `.`,
		Example: `  belay replace shop-2 --dry-run
  belay replace db-2 --yes
  belay replace db-1 --yes --from rejoin/db-1    # resume after fixing a failed step`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Host = args[0]
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return RunReplace(cmd.Context(), o)
		},
	}
	commonFlags(cmd, o, true)
	return cmd
}

// NewCmdDB returns the `belay db` group.
func NewCmdDB(f *cli.Factory) *cobra.Command {
	cmd := &cobra.Command{Use: "db", Short: "Operate the primary site's PostgreSQL pairs"}
	cmd.AddCommand(NewCmdResize(f, nil), dbcopy.NewCmdCopy(f, nil))
	return cmd
}

// NewCmdResize returns `belay db resize --size S`.
func NewCmdResize(f *cli.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	o := newOptions(f)
	cmd := &cobra.Command{
		Use:   "resize --size SIZE",
		Short: "Resize the database data nodes one at a time: replica first, switchover, then the old primary",
		Long: `Resize both PostgreSQL data nodes without an outage beyond a switchover.

belay records the size as belay:database.size in the stack config, then: stops
pg_auto_failover on the secondary, resizes that server alone (a targeted
pulumi up, previewed and guarded: the provider powers it off, resizes and
starts it), waits until it is a secondary again, switches over, and does the
same to the old primary. A plain pulumi up after a database.size edit would
power both nodes off at once: belay preview-guard blocks that.

--size must be a size of the primary site's provider (Hetzner server type or
DigitalOcean droplet slug). The lab has no sizes.

--cell APP/CELL resizes a dedicated cell's own pair (cells[].database:
dedicated) the same way, within its pg_auto_failover formation, and records
the size as that cell's databaseSize (belay checks that the stack config's
apps[i].cells[j] is that cell before it writes).`,
		Example: `  belay db resize --size cpx42 --dry-run
  belay db resize --size cpx42 --yes`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return RunResize(cmd.Context(), o)
		},
	}
	commonFlags(cmd, o, false)
	cmd.Flags().StringVar(&o.Size, "size", "", "the new server size of both data nodes (required)")
	cmd.Flags().StringVar(&o.Cell, "cell", "", "APP/CELL: resize that dedicated cell's own pair instead of the stack's")
	_ = cmd.MarkFlagRequired("size")
	return cmd
}

// RunReplace plans and (with --yes) performs a replacement.
func RunReplace(ctx context.Context, o *Options) error {
	return run(ctx, o, "replace "+o.Host, func(inv *inventory.Inventory, f replace.Facts) (*replace.Plan, error) {
		return replace.PlanReplace(inv, o.Host, f)
	}, o.Host)
}

// RunResize plans and (with --yes) performs a rolling resize.
func RunResize(ctx context.Context, o *Options) error {
	if o.Cell == "" {
		return run(ctx, o, "db resize --size "+o.Size, func(inv *inventory.Inventory, f replace.Facts) (*replace.Plan, error) {
			return replace.PlanResize(inv, o.Size, f)
		}, "")
	}
	app, cell, ok := strings.Cut(o.Cell, "/")
	if !ok || app == "" || cell == "" || strings.Contains(cell, "/") {
		return fmt.Errorf("--cell %q: expected APP/CELL", o.Cell)
	}
	inv, err := o.Inventory(o.InventoryRef)
	if err != nil {
		return err
	}
	// The facts are the cell's formation's: observed for one of its data nodes.
	node := ""
	if a := inv.App(app); a != nil {
		if c := a.Cell(cell); c != nil && c.Dedicated() {
			node = c.DBNodes[0]
		}
	}
	if node == "" {
		_, err := replace.PlanResizeCell(inv, app, cell, o.Size, replace.Facts{})
		return err
	}
	return run(ctx, o, "db resize --cell "+o.Cell+" --size "+o.Size, func(inv *inventory.Inventory, f replace.Facts) (*replace.Plan, error) {
		return replace.PlanResizeCell(inv, app, cell, o.Size, f)
	}, node)
}

func run(ctx context.Context, o *Options, action string, plan func(*inventory.Inventory, replace.Facts) (*replace.Plan, error), host string) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if o.Apps < 0 {
		return fmt.Errorf("--apps: %d, expected 0 (the stack's) or more", o.Apps)
	}
	inv, err := o.Inventory(o.InventoryRef)
	if err != nil {
		return err
	}
	if host != "" && inv.Host(host) == nil {
		// Refused before any connection: nothing to observe.
		_, err := replace.PlanReplace(inv, host, replace.Facts{})
		return err
	}
	c, err := o.Connect(inv, o.Conn, o.Getenv)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := checkTargetFlags(o, c.Lab()); err != nil {
		return err
	}
	// A dedicated cell's new server boots with the pair's DATABASE_URL: as
	// converge, refused while the cell's data is not copied (celldb.Guard).
	if rf := celldb.Guard(ctx, c.Plain(), inv, []string{host}); len(rf) > 0 {
		return fmt.Errorf("replace %s refused, nothing changed: %s", host, rf[0].Reason)
	}
	p, err := plan(inv, replace.Observe(ctx, c.Runner(), inv, host))
	if err != nil {
		return err
	}
	if stop, err := cli.PreviewPlan(o.IO, p, o.JSON, o.DryRun, o.Yes); stop || err != nil {
		return err
	}
	res, runErr := execute(ctx, o, c, inv, p, action, host, plan)
	if res != nil && o.JSON {
		if err := cli.PrintJSON(o.IO.Out, res); err != nil {
			return err
		}
	} else if runErr == nil && res != nil {
		fmt.Fprintf(o.IO.Out, "%s: done in %s\n", action, res.Duration.Round(1e8))
	}
	return runErr
}

// execute holds the plan's leases and runs it. Replacing an app's lease host
// (its first server) ends the lease with the server: the lease covers the
// steps up to the replacement and is released before it; the app's other
// server serves meanwhile, and no deploy can take the lease until the new
// server answers.
func execute(ctx context.Context, o *Options, c Conn, inv *inventory.Inventory, p *replace.Plan, action, host string,
	plan func(*inventory.Inventory, replace.Facts) (*replace.Plan, error)) (*replace.Result, error) {
	hctx, release, err := c.Hold(ctx, p.Apps, action, o.IO.ErrOut)
	if err != nil {
		return nil, fmt.Errorf("%s refused, nothing changed: %w", action, err)
	}
	released := false
	free := func() {
		if !released {
			released = true
			release()
		}
	}
	defer free()
	// Observed again under the leases: the plan must match what holds now.
	if p, err = plan(inv, replace.Observe(hctx, c.Runner(), inv, host)); err != nil {
		return nil, err
	}
	rp, rs, cv, err := o.Wire(o, inv, c, p.Apps)
	if err != nil {
		return nil, err
	}
	// A release copy streams with the plain connections: the source only
	// reads, the receiving host is the replaced one (run unfenced anyway).
	pipe, _ := c.Plain().(replace.Piper)
	env := &replace.Env{Hosts: hostRunner(c, host), Pipe: pipe, Replacer: rp, Resizer: rs, Converger: cv, Out: o.IO.ErrOut, HTTPGet: o.HTTPGet,
		Changed: func(context.Context, string) error {
			// pulumi:<stack> reads the stack output again: a new server's new public address.
			fresh, err := o.Inventory(o.InventoryRef)
			if err != nil {
				return fmt.Errorf("reloading the inventory: %w", err)
			}
			c.SetInventory(fresh)
			return nil
		}}
	cut := -1
	if isLeaseHost(inv, p.Apps, host) {
		cut = slices.IndexFunc(p.Steps, func(s replace.Step) bool { return s.ID == "replace/"+host })
	}
	if cut < 0 {
		return replace.Execute(hctx, env, p, o.From)
	}
	before, after := *p, *p
	before.Steps, after.Steps = p.Steps[:cut], p.Steps[cut:]
	from := o.From
	var res1 *replace.Result
	if from == "" || slices.ContainsFunc(before.Steps, func(s replace.Step) bool { return s.ID == from }) {
		if res1, err = replace.Execute(hctx, env, &before, from); err != nil {
			return res1, err
		}
		from = ""
	}
	free()
	fmt.Fprintf(o.IO.ErrOut, "released the lease: %s is its app's lease host and the lease goes with the old server\n", host)
	env.Hosts = c.Plain()
	res2, err := replace.Execute(ctx, env, &after, from)
	if res1 != nil && res2 != nil {
		res2.Steps = append(res1.Steps, res2.Steps...)
		res2.Duration += res1.Duration
	}
	return res2, err
}

// isLeaseHost reports whether host is the lease host (first server) of one
// of apps, or of one of their cells.
func isLeaseHost(inv *inventory.Inventory, apps []string, host string) bool {
	for _, name := range apps {
		ts, _ := deploy.LeaseTargets(inv, name)
		for _, t := range ts {
			if len(t.App.Hosts) > 0 && t.App.Hosts[0] == host {
				return true
			}
		}
	}
	return false
}

// hostRunner sends commands for the replaced host unfenced: a new server has
// no lease fence file (the app's other servers keep theirs, and the lease
// holds them).
func hostRunner(c Conn, host string) remote.Runner {
	r := c.Runner()
	f, ok := r.(*opsenv.Fenced)
	if !ok || host == "" {
		return r
	}
	plain := &opsenv.Fenced{Runner: f.Runner, Fences: map[string][]*lease.Fence{}}
	for h, fs := range f.Fences {
		if h != host {
			plain.Fences[h] = fs
		}
	}
	return plain
}
