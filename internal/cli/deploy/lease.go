package deploy

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/belay-sh/belay/internal/cli"
)

// LeaseBreakOptions are `belay lease break`'s inputs.
type LeaseBreakOptions struct {
	deps
	Common
	Reason string
	// Cell picks the cell of an app with cells (each cell has its own lease).
	Cell string
}

// NewCmdLease returns the `belay lease` group.
func NewCmdLease(f *cli.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "lease",
		Short: "The per-app lease every change (deploy, rollback, failover, drill) holds",
	}
	cmd.AddCommand(newCmdLeaseBreak(f, nil))
	return cmd
}

func newCmdLeaseBreak(f *cli.Factory, runF func(*LeaseBreakOptions) error) *cobra.Command {
	o := &LeaseBreakOptions{deps: depsOf(f)}
	cmd := &cobra.Command{
		Use:   "break --app APP --reason TEXT",
		Short: "Free an app's lease whose holder is certainly gone (audited)",
		Long: `Remove the app's lease whoever holds it, and fence every server of the app
against its holder: if the holder is in fact alive, its next step is refused on
every host and its next renewal fails, so it stops. A step under way is waited
for. The reason, the holder (who, pid, machine, CI run, action, since) and the
result go to the audit log on every app host (belay audit).

Use it for a holder on another machine that is known to be gone (a CI runner
that was killed) when waiting for the lease to expire is not an option. A dead
deployer on this machine needs no break: its free local lock proves it gone and
the next run takes over. Then run belay deploy or belay rollback: an
unfinished rollout is converged first.`,
		Example: `  belay lease break --app shop --reason "runner 4711 killed by OOM, see INC-88"
  belay lease break --app shop --cell c2 --reason "runner 4711 killed by OOM, see INC-88"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(o)
			}
			return runLeaseBreak(cmd.Context(), o)
		},
	}
	o.Common.flags(cmd)
	o.Common.skipStandbyFlag(cmd)
	cmd.Flags().StringVar(&o.Cell, "cell", "", "app with cells: the cell whose lease to break (each cell has its own)")
	cmd.Flags().StringVar(&o.Reason, "reason", "", "why the holder is known to be gone (required; written to the audit log)")
	return cmd
}

func runLeaseBreak(ctx context.Context, o *LeaseBreakOptions) error {
	o.Reason = strings.TrimSpace(o.Reason)
	if o.Reason == "" {
		return fmt.Errorf("--reason: required (it goes to the audit log: why the holder is known to be gone)")
	}
	s, err := open(ctx, o.deps, &o.Common, io.Discard)
	if err != nil {
		return err
	}
	defer s.close()
	d, what := s.d, s.d.App
	if a := d.Inv.App(d.App); a != nil && len(a.Cells) > 0 && o.Cell == "" {
		return fmt.Errorf("--cell: required, app %s has cells and each has its own lease", d.App)
	}
	if o.Cell != "" {
		if d, err = s.d.ForCell(o.Cell); err != nil {
			return fmt.Errorf("--cell: %w", err)
		}
		what += " cell " + o.Cell
	}
	held, err := d.BreakLease(ctx, o.Reason)
	if err != nil {
		return err
	}
	if o.JSON {
		return cli.PrintJSON(o.IO.Out, map[string]any{"app": s.d.App, "cell": o.Cell, "broken": held.Owner, "expires": held.Expires, "reason": o.Reason})
	}
	fmt.Fprintf(o.IO.Out, "broke the lease of %s held by %s (pid %d on %s: %s, until %s); every server is fenced against it\n",
		what, held.Owner.Who, held.Owner.PID, held.Owner.Host, held.Owner.Action, held.Expires.UTC().Format(time.RFC3339))
	return nil
}
