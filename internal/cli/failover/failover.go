// Package failover is the `belay failover` command group: `site` switches the
// serving site (fence, promote the standby database, start the standby apps,
// move DNS, verify), printing each step and resuming after an interruption.
package failover

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/belay-sh/belay/deploy"
	"github.com/belay-sh/belay/deploy/lease"
	"github.com/belay-sh/belay/failover"
	"github.com/belay-sh/belay/internal/cli"
	"github.com/belay-sh/belay/internal/opsenv"
	"github.com/belay-sh/belay/inventory"
)

// NewCmdFailover returns the `belay failover` group.
func NewCmdFailover(f *cli.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "failover",
		Short: "Switch the serving site of a stack",
	}
	cmd.AddCommand(NewCmdSite(f, nil))
	return cmd
}

// SiteOptions are one `belay failover site` invocation.
type SiteOptions struct {
	IO        cli.IO
	Inventory func(ref string) (*inventory.Inventory, error)
	Getenv    func(string) string
	Open      func(inv *inventory.Inventory, fl opsenv.Flags, getenv func(string) string) (*opsenv.Target, error)
	Geteuid   func() int

	To           string
	InventoryRef string
	Yes          bool
	DryRun       bool
	JSON         bool
	StateFile    string
	Conn         opsenv.Flags
	DNS          opsenv.DNSFlags
}

// NewCmdSite returns `belay failover site`.
func NewCmdSite(f *cli.Factory, runF func(*SiteOptions) error) *cobra.Command {
	opts := &SiteOptions{IO: f.IO, Inventory: f.Inventory, Getenv: f.Getenv, Open: opsenv.Open, Geteuid: os.Geteuid}
	cmd := &cobra.Command{
		Use:   "site --to standby|primary",
		Short: "Switch the apps to the standby site, or back to the primary site",
		Long: `Switch a stack's serving site. --to standby fences the primary site if it is
reachable (apps and PostgreSQL stopped), promotes the standby database, starts
the apps on the standby app servers, points the apps' DNS records at them and
checks that they answer. An app with cells switches as a whole: every cell's
pair and both routers are fenced, every cell's standby server starts, the
standby router's router-sync starts once its database accepts writes and must
report the mapping loaded, and the app's domains point at the standby router
(docs/cells.md, "Site switch"). Every step is printed as it runs; completed steps are
recorded in a state file, so running the same command again after an
interruption resumes where it stopped.

--to primary is the way back after a switch: it fences the primary site again
(it may have come back from a partition still serving), re-creates the
pg_auto_failover formation empty, stops the standby site's apps (downtime
starts), makes the promoted standby read-only and waits until the repository
has all its WAL, restores the first data node from the repository to the end of
the archive (the standby site's writes included; its old data directory is
kept aside as <PGDATA>.before-failback), re-clones the other data node from it,
starts the apps on the primary site, points DNS back at the floating IPs
(downtime ends), then takes a full backup and re-seeds the standby database
from it as a standby again.

The switch holds every app's lease (refused, naming the holder, while a deploy
or a drill holds one). --to standby goes on without the lease of an app whose
lease host is out of reach, and says so.

Without --yes the plan is printed and nothing changes.`,
		Example: `  belay failover site --to standby --dry-run
  belay failover site --to standby --yes
  belay failover site --to primary --yes
  belay failover site --to standby --yes --inventory pulumi:prod --dns-provider hetzner --dns-zone example.com --dns-token-file ~/.hcloud-dns`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(opts)
			}
			return runSite(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.To, "to", "", "site to switch to: standby or primary (required)")
	fl.StringVarP(&opts.InventoryRef, "inventory", "i", "", cli.InventoryUsage)
	fl.BoolVar(&opts.Yes, "yes", false, "perform the switch (without it the plan is printed only)")
	fl.BoolVar(&opts.DryRun, "dry-run", false, "print the plan and exit")
	fl.BoolVar(&opts.JSON, "json", false, "print the plan / result as JSON")
	fl.StringVar(&opts.StateFile, "state-file", "", "where completed steps are recorded (default /var/lib/belay/failover-<stack>.json as root, else ~/.local/state/belay/)")
	opsenv.AddFlags(cmd, &opts.Conn)
	opsenv.AddCAFlag(cmd, &opts.Conn)
	fl.StringVar(&opts.DNS.Provider, "dns-provider", "", "DNS provider of the zone: digitalocean or hetzner (the lab uses its DNS double)")
	fl.StringVar(&opts.DNS.Zone, "dns-zone", "", "the stack's belay:dns.zone (the lab derives it from the app domains)")
	fl.IntVar(&opts.DNS.TTL, "dns-ttl", 60, "TTL of the moved records (seconds, at least 30)")
	fl.StringVar(&opts.DNS.TokenFile, "dns-token-file", "", "file holding the DNS provider's API token")
	_ = cmd.MarkFlagRequired("to")
	return cmd
}

func runSite(ctx context.Context, o *SiteOptions) error {
	if ctx == nil {
		ctx = context.Background()
	}
	to := failover.Direction(o.To)
	if to != failover.ToStandby && to != failover.ToPrimary {
		return fmt.Errorf("--to %q: expected standby or primary", o.To)
	}
	inv, err := o.Inventory(o.InventoryRef)
	if err != nil {
		return err
	}
	plan, err := failover.PlanSite(inv, to)
	if err != nil {
		return err
	}
	if o.DryRun || !o.Yes || plan.Refusal != "" {
		if o.JSON {
			if err := cli.PrintJSON(o.IO.Out, plan); err != nil {
				return err
			}
		} else if err := plan.Print(o.IO.Out); err != nil {
			return err
		}
		if plan.Refusal != "" && !o.DryRun {
			return fmt.Errorf("site switch to the %s site: %w: %s", to, failover.ErrRefused, plan.Refusal)
		}
		if !o.DryRun {
			fmt.Fprintln(o.IO.ErrOut, "nothing changed: add --yes to perform this switch")
		}
		return nil
	}
	t, err := o.Open(inv, o.Conn, o.Getenv)
	if err != nil {
		return err
	}
	defer t.Close()
	statePath := o.StateFile
	if statePath == "" {
		statePath = failover.DefaultStatePath(inv.Stack, o.Geteuid(), o.Getenv)
	}
	env, err := t.SwitchEnv(o.DNS, o.IO.ErrOut, statePath)
	if err != nil {
		return err
	}
	// The switch starts and stops every app: it holds every app's lease, so
	// no deploy, rollback or drill runs beside it. Switching away from a dead
	// site goes on without the leases it cannot reach (the switch fences that
	// site); a lease someone holds is always a refusal.
	ctx, release, err := t.HoldLeases(ctx, opsenv.LeaseOptions{Apps: opsenv.SiteApps(inv), Action: "failover site --to " + string(to),
		Actor: deploy.CurrentActor(o.Getenv), LockDir: lease.DefaultLockDir(o.Getenv), Progress: o.IO.ErrOut, SkipUnreachable: to == failover.ToStandby})
	if err != nil {
		return fmt.Errorf("site switch to the %s site refused, nothing changed: %w", to, err)
	}
	defer release()
	env.Hosts = t.Runner() // every step runs under the leases' fences
	res, runErr := failover.Execute(ctx, env, plan)
	if res != nil && o.JSON {
		if err := cli.PrintJSON(o.IO.Out, res); err != nil {
			return err
		}
	} else if res != nil && runErr == nil {
		fmt.Fprintf(o.IO.Out, "switched stack %s to the %s site in %s (state %s)\n", inv.Stack, to, res.Duration.Round(1e8), statePath)
		for k, v := range res.Facts {
			fmt.Fprintf(o.IO.Out, "  %s: %s\n", k, v)
		}
	}
	return runErr
}
