// Command belay provisions, deploys and drills HA web apps. See README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/belay-sh/belay/internal/cli"
)

// version is set by the release build (-ldflags "-X main.version=...");
// otherwise buildVersion reads the module version and VCS revision Go embeds.
var version = ""

// buildVersion is the -X version, else the module version (go install
// ...@v1.2.3), else the VCS revision (a build from a checkout), marked
// "+dirty" when the tree had changes.
func buildVersion(x string, info *debug.BuildInfo, ok bool) string {
	if x != "" {
		return x
	}
	if !ok {
		return "unknown (no build info)"
	}
	v := info.Main.Version
	var rev, modified, when string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		case "vcs.time":
			when = s.Value
		}
	}
	if v != "" && v != "(devel)" {
		return v
	}
	if rev == "" {
		return "(devel), no VCS revision"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	out := "(devel) " + rev
	if modified == "true" {
		out += "+dirty"
	}
	if when != "" {
		out += " " + when
	}
	return out
}

func main() {
	// A group that adds its own PersistentPreRunE must not skip the root's,
	// which resolves the target and applies belay.yaml's defaults.
	cobra.EnableTraverseRunHooks = true
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	f := cli.New()
	root := newRootCmd(f)
	if err := root.ExecuteContext(ctx); err != nil {
		var exit cli.ExitError
		if errors.As(err, &exit) {
			os.Exit(exit.Code)
		}
		fmt.Fprintln(f.IO.ErrOut, "belay:", err)
		os.Exit(1)
	}
}

func newRootCmd(f *cli.Factory) *cobra.Command {
	info, ok := debug.ReadBuildInfo()
	root := &cobra.Command{
		Use:   "belay",
		Short: "Provision, deploy and drill highly available web apps",
		Long: `belay keeps small SaaS teams out of the 5-hour outage: every app on its own HA
pair, PostgreSQL with automatic failover, a standby site at a second provider,
canary deploys with automatic rollback, and drills that prove it all.

Every command that reaches hosts acts on one target and names it on its first
line (stderr) and in --json output. The target is, first found: --inventory,
--stack, $BELAY_INVENTORY, or "target:" in the nearest belay.yaml (searched from
the working directory upwards). Without one such a command refuses; the local
lab is used only when named (--inventory lab). belay.yaml may also hold
per-command flag defaults; "belay init" writes one.`,
		Example: `  belay init --stack prod       # belay.yaml + .github/workflows/deploy.yml
  belay deploy --app shop --artifact shop.tar.gz --release v42
  belay lab up                 # the whole topology as real machines on this box
  BELAY_INVENTORY=lab belay status
  belay drill db-primary --repeat 10`,
		Version:       buildVersion(version, info, ok),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	for _, add := range subcommands {
		root.AddCommand(add(f))
	}
	cli.AddTargetFlags(root)
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error { return f.Prepare(root, cmd) }
	return root
}

// subcommands lists each command group's constructor; groups register in their own file.
var subcommands []func(*cli.Factory) *cobra.Command
