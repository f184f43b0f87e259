// Package drill is the `belay drill` command group: inject a fault into a
// stack (the lab first), measure detection and recovery under load, heal, and
// write a report; and `belay runbook`, generated from the same step data.
package drill

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/belay-sh/belay/deploy"
	"github.com/belay-sh/belay/deploy/lease"
	"github.com/belay-sh/belay/drill"
	"github.com/belay-sh/belay/failover"
	"github.com/belay-sh/belay/internal/cli"
	"github.com/belay-sh/belay/internal/opsenv"
	"github.com/belay-sh/belay/inventory"
)

// Options are one `belay drill <kind>` invocation.
type Options struct {
	IO        cli.IO
	Inventory func(ref string) (*inventory.Inventory, error)
	Getenv    func(string) string
	// Open connects to the inventory's hosts (injectable for tests).
	Open func(inv *inventory.Inventory, fl opsenv.Flags, getenv func(string) string) (*opsenv.Target, error)

	Kind         drill.Kind
	Variant      string
	Repeat       int
	App          string
	InventoryRef string
	ReportDir    string
	JSON         bool
	Conn         opsenv.Flags
	DNS          opsenv.DNSFlags
	Now          func() time.Time
}

// NewCmdDrill returns the `belay drill` group.
func NewCmdDrill(f *cli.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "drill <app-node|db-primary|restore|site|cell>",
		Short: "Inject a failure, measure detection and recovery, heal, report",
		Long: `Drills prove the failover paths on a running stack. Each one injects a fault,
measures how long detection and recovery took under load, counts acknowledged
writes that went missing, heals, and writes a report (markdown and JSON).

Every variant runs on the lab (belay lab up). Against a cloud inventory the
variants that need no provider API run, their root commands through
sudo -n as the deploy user (the roles' /etc/sudoers.d/belay-ops allows them):
app-node --variant stop-nginx, db-primary --variant stop-service and restore.
Killing servers, cutting links and partitioning sites would need provider
power-off and network cuts, which belay leaves out on purpose.

A drill holds the lease of the app it drills (app-node) or of every app (the
others), like a deploy: it is refused while a deploy, rollback, site switch or
another drill holds one, naming the holder, and deploys wait for it.

The app-node drill probes the VIP like a browser (kept-alive connections, 5 s
timeout) and reports the first answer, when the app was sustainably back
(>= 99 % answered over 2 s) and the latency added after the failover; see
docs/drills.md.

The cell drill (belay drill cell APP --cell C) kills one cell of an app with
cells under load across every cell: the other cells must answer 100 %.

The steps each drill runs are listed in docs/runbook.md (belay runbook).`,
	}
	for _, k := range drill.Kinds {
		cmd.AddCommand(newCmdKind(f, k, nil))
	}
	cmd.AddCommand(newCmdCell(f, nil))
	return cmd
}

var kindHelp = map[drill.Kind]string{
	drill.AppNode:   "Kill the VIP holder of an app; measure VIP failover as a browser feels it (first answer p50 <= 0.5 s, sustainably back p50 <= 1 s, latency added)",
	drill.DBPrimary: "Kill the PostgreSQL primary under write load; measure time to writable (target <= 15 s) and missing writes",
	drill.Restore:   "Run the restore verification on the repository host (variant corrupt: a damaged backup must be caught)",
	drill.Site:      "Partition the primary site away, switch to the standby site, then back; measure the switch (target <= 5 min), RPO (<= 60 s) and the way back",
}

func newCmdKind(f *cli.Factory, k drill.Kind, runF func(*Options) error) *cobra.Command {
	opts := &Options{IO: f.IO, Inventory: f.Inventory, Getenv: f.Getenv, Open: opsenv.Open, Kind: k, Now: time.Now}
	cmd := &cobra.Command{
		Use:   string(k),
		Short: kindHelp[k],
		Args:  cobra.NoArgs,
		Example: fmt.Sprintf("  belay drill %s --repeat %d\n  belay drill %s --variant %s --json",
			k, map[drill.Kind]int{drill.AppNode: 10, drill.DBPrimary: 3, drill.Restore: 1, drill.Site: 1}[k], k, drill.Variants[k][len(drill.Variants[k])-1]),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(opts)
			}
			return runDrill(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&opts.Repeat, "repeat", 1, "how many times to run the drill")
	fl.StringVar(&opts.Variant, "variant", "", "fault variant: "+strings.Join(drill.Variants[k], ", ")+" (default "+drill.Variants[k][0]+")")
	fl.StringVar(&opts.App, "app", "", "app-node only: the app to drill (default: the inventory's first)")
	fl.StringVarP(&opts.InventoryRef, "inventory", "i", "", cli.InventoryUsage)
	fl.StringVar(&opts.ReportDir, "report-dir", "drill-reports", "directory for the report files (<drill>-<stack>-<time>.md and .json)")
	fl.BoolVar(&opts.JSON, "json", false, "print the report as JSON instead of markdown")
	addConnFlags(cmd, &opts.Conn)
	if k == drill.AppNode || k == drill.Site {
		opsenv.AddCAFlag(cmd, &opts.Conn)
	}
	if k == drill.Site {
		addDNSFlags(cmd, &opts.DNS)
	}
	return cmd
}

func addConnFlags(cmd *cobra.Command, c *opsenv.Flags) {
	opsenv.AddFlags(cmd, c)
	opsenv.AddSeedFlag(cmd, c)
}

func addDNSFlags(cmd *cobra.Command, d *opsenv.DNSFlags) {
	fl := cmd.Flags()
	fl.StringVar(&d.Provider, "dns-provider", "", "DNS provider of the zone: digitalocean or hetzner (the lab uses its DNS double)")
	fl.StringVar(&d.Zone, "dns-zone", "", "the stack's belay:dns.zone (the lab derives it from the app domains)")
	fl.IntVar(&d.TTL, "dns-ttl", 60, "TTL of the moved records (seconds, at least 30)")
	fl.StringVar(&d.TokenFile, "dns-token-file", "", "file holding the DNS provider's API token")
}

func runDrill(ctx context.Context, o *Options) error {
	if ctx == nil {
		ctx = context.Background()
	}
	variant, err := drill.CheckVariant(o.Kind, o.Variant)
	if err != nil {
		return err
	}
	if o.Repeat < 1 {
		return fmt.Errorf("--repeat %d: expected at least 1", o.Repeat)
	}
	// Only the app-node drill acts on one app; the others act on the whole
	// stack, where --app would be silently ignored.
	if o.App != "" && o.Kind != drill.AppNode {
		return fmt.Errorf("--app %s: applies to the app-node drill only (%s acts on the whole stack)", o.App, o.Kind)
	}
	inv, err := o.Inventory(o.InventoryRef)
	if err != nil {
		return err
	}
	if _, err := drill.Steps(inv, o.Kind, variant, o.App); err != nil {
		return err
	}
	if !opsenv.IsLab(inv) {
		// Refuse before connecting anywhere.
		if err := drill.Supported(&drill.Env{Inv: inv}, o.Kind, variant); err != nil {
			return err
		}
	}
	t, err := o.Open(inv, o.Conn, o.Getenv)
	if err != nil {
		return err
	}
	defer t.Close()
	env := &drill.Env{Inv: inv, Hosts: t.Hosts, Lab: t.Lab, Progress: o.IO.ErrOut, App: o.App}
	if env.Roots, err = t.Roots(); err != nil {
		return err
	}
	if t.Faults != nil {
		env.Faults = t.Faults
	} else {
		// Outside the lab: the service-stop variants, over `sudo -n` (see drill.Supported).
		env.Faults = &drill.ServiceFaults{Hosts: t.Hosts}
	}
	if o.Kind == drill.DBPrimary || o.Kind == drill.Site {
		if env.Seed, err = t.Seed(); err != nil {
			return err
		}
	}
	if o.Kind == drill.Site {
		statePath := failover.DefaultStatePath(inv.Stack, os.Geteuid(), o.Getenv)
		env.Switch = t.SiteSwitch(o.DNS, statePath)
	}
	// A drill is a change like a deploy: it holds the lease of the app it
	// drills (app-node) or of every app (the others are site-wide), so it
	// never runs beside a deploy, rollback, failover or another drill.
	apps := opsenv.SiteApps(inv)
	if o.Kind == drill.AppNode {
		apps = []string{drillApp(inv, o.App)}
	}
	ctx, release, err := t.HoldLeases(ctx, opsenv.LeaseOptions{Apps: apps, Action: "drill " + string(o.Kind) + "/" + variant,
		Actor: deploy.CurrentActor(o.Getenv), LockDir: lease.DefaultLockDir(o.Getenv), Progress: o.IO.ErrOut})
	if err != nil {
		return fmt.Errorf("drill %s refused, nothing was injected: %w", o.Kind, err)
	}
	defer release()
	// Every host command from here on runs under the leases' fences.
	env.Hosts = t.Runner()
	if sf, ok := env.Faults.(*drill.ServiceFaults); ok {
		sf.Hosts = t.Runner()
	}
	rep, runErr := drill.Execute(ctx, env, drill.Options{Kind: o.Kind, Variant: variant, Repeat: o.Repeat})
	if rep == nil {
		return runErr
	}
	if o.ReportDir != "" {
		md, js, err := WriteReportFiles(rep, o.ReportDir, o.Now())
		if err != nil {
			return err
		}
		fmt.Fprintf(o.IO.ErrOut, "report: %s, %s\n", md, js)
	}
	if o.JSON {
		err = rep.WriteJSON(o.IO.Out)
	} else {
		err = rep.WriteMarkdown(o.IO.Out)
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

// drillApp is the app a drill acts on: --app, else the inventory's first.
func drillApp(inv *inventory.Inventory, app string) string {
	if app != "" || len(inv.Apps) == 0 {
		return app
	}
	return inv.Apps[0].Name
}

// WriteReportFiles writes rep as <dir>/<drill>-<stack>-<time>.{md,json}.
func WriteReportFiles(rep *drill.Report, dir string, now time.Time) (md, js string, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", fmt.Errorf("--report-dir: %w", err)
	}
	base := filepath.Join(dir, fmt.Sprintf("%s-%s-%s", strings.ReplaceAll(rep.Drill, "/", "-"), rep.Target, now.UTC().Format("20060102T150405Z")))
	md, js = base+".md", base+".json"
	for _, f := range []struct {
		path  string
		write func(io.Writer) error
	}{{md, rep.WriteMarkdown}, {js, rep.WriteJSON}} {
		fh, err := os.Create(f.path)
		if err != nil {
			return "", "", fmt.Errorf("report: %w", err)
		}
		if err := f.write(fh); err != nil {
			fh.Close()
			return "", "", fmt.Errorf("report %s: %w", f.path, err)
		}
		if err := fh.Close(); err != nil {
			return "", "", err
		}
	}
	return md, js, nil
}
