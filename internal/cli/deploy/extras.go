package deploy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/belay-sh/belay/deploy"
	"github.com/belay-sh/belay/deploy/appenv"
	"github.com/belay-sh/belay/deploy/notify"
	"github.com/belay-sh/belay/deploy/plan"
	"github.com/belay-sh/belay/internal/cli/env"
	"github.com/belay-sh/belay/inventory"
)

// Extras are `belay deploy`'s env, release command and notification flags.
type Extras struct {
	EnvOnly        bool
	Env            env.Source
	ReleaseCommand string
	ReleaseTimeout time.Duration
	Webhooks       []string
}

func (x *Extras) flags(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.BoolVar(&x.EnvOnly, "env-only", false, "re-deploy the running release with the app's current env (belay env set) as release <current>.env<serial>, through the canary; no --artifact/--release")
	x.Env.Flags(fl)
	fl.StringVar(&x.ReleaseCommand, "release-command", "", `command inside the release run once per deploy before the canary (e.g. "bin/migrate"), as the app user with the app's env, on the first app host; failure stops the deploy with nothing switched`)
	fl.DurationVar(&x.ReleaseTimeout, "release-timeout", plan.DefaultReleaseTimeout, "stop the release command and the deploy after this long")
	webhookFlag(cmd, &x.Webhooks)
}

// check validates the flags alone (before any file or host is read).
func (x *Extras) check(o *DeployOptions) ([]string, error) {
	if x.EnvOnly {
		if o.Artifact != "" || o.Release != "" {
			return nil, errors.New("--env-only: re-deploys the running release under a new id; drop --artifact and --release")
		}
	}
	var words []string
	if x.ReleaseCommand != "" {
		w, err := plan.ParseReleaseCommand(x.ReleaseCommand)
		if err != nil {
			return nil, fmt.Errorf("--release-command: %w", err)
		}
		words = w
	}
	if x.ReleaseTimeout == 0 {
		x.ReleaseTimeout = plan.DefaultReleaseTimeout
	}
	if x.ReleaseTimeout < time.Second || x.ReleaseTimeout > 24*time.Hour {
		return nil, fmt.Errorf("--release-timeout %s: expected 1s-24h", x.ReleaseTimeout)
	}
	return words, nil
}

// notifier builds the webhook notifier from --webhook and $BELAY_WEBHOOK.
func (x *Extras) notifier(d deps) (*notify.Notifier, error) { return newNotifier(d, x.Webhooks) }

// webhookFlag adds --webhook (deploy and rollback share it).
func webhookFlag(cmd *cobra.Command, to *[]string) {
	cmd.Flags().StringArrayVar(to, "webhook", nil, "POST deploy events as JSON to this https URL (repeatable; also $BELAY_WEBHOOK, space-separated); never fails the deploy")
}

func newNotifier(d deps, flagURLs []string) (*notify.Notifier, error) {
	urls := append([]string(nil), flagURLs...)
	urls = append(urls, strings.Fields(d.Getenv("BELAY_WEBHOOK"))...)
	return notify.New(urls, notify.Options{Warn: func(f string, a ...any) {
		fmt.Fprintf(d.IO.ErrOut, "belay: warning: "+f+"\n", a...)
	}})
}

// loadEnv opens the app's sealed env (empty if none is set).
func (x *Extras) loadEnv(d deps, inv *inventory.Inventory, app string) (*appenv.Env, error) {
	e, _, err := x.Env.Load(inv.Stack, app, d.Getenv)
	if err != nil {
		return nil, fmt.Errorf("env of %s: %w", app, err)
	}
	return e, nil
}

func webhooks(n *notify.Notifier) string {
	if t := n.Targets(); len(t) > 0 {
		return "; events to " + strings.Join(t, ", ")
	}
	return ""
}

// runEnvOnly re-deploys the running release with the app's current env.
func runEnvOnly(ctx context.Context, o *DeployOptions, hook []string) error {
	st, err := o.strategy()
	if err != nil {
		return err
	}
	nt, err := o.Extras.notifier(o.deps)
	if err != nil {
		return err
	}
	inv, err := o.Inventory(o.InventoryRef)
	if err != nil {
		return err
	}
	if err := o.ResolveApp(inv); err != nil {
		return err
	}
	o.stackDefaults(inv, &st)
	e, err := o.Extras.loadEnv(o.deps, inv, o.App)
	if err != nil {
		return err
	}
	if e.Serial == 0 {
		return fmt.Errorf("--env-only: app %s has no env set in %s (belay env set %s KEY=VALUE)", o.App, o.Extras.Env.Dir, o.App)
	}
	in := plan.Input{Inventory: inv, App: o.App, Strategy: st, SkipStandby: o.SkipStandby, ReleaseCommand: hook, ReleaseTimeout: o.Extras.ReleaseTimeout}
	if o.cellsMode(inv) {
		return runEnvOnlyCells(ctx, o, in, e, nt)
	}
	if o.DryRun {
		in.CopyFrom, in.Release, in.Env = "CURRENT", plan.EnvRelease("CURRENT", e.Serial), true
		p, err := plan.Deploy(in)
		if err != nil {
			return err
		}
		fmt.Fprintf(o.IO.ErrOut, "env-only: CURRENT is the release every host runs (read from the hosts at deploy time)\n")
		plan.Print(o.IO.Out, p)
		return nil
	}
	s, err := open(ctx, o.deps, &o.Common, o.IO.ErrOut)
	if err != nil {
		return ghFail(o.deps, "deploy", err)
	}
	defer s.close()
	s.d.Wait, s.d.WaitTimeout = o.Wait, o.WaitTimeout
	s.d.Runner.Judge = deploy.Judge(o.Thresholds)
	s.d.Runner.Env, s.d.Notify, s.d.Stack = e.Render(), nt, inv.Stack
	defer nt.Close(10 * time.Second)
	fmt.Fprintf(o.IO.ErrOut, "deploying the env of %s (serial %d) with its running release: %s%s\n", o.App, e.Serial, describeStrategy(in), webhooks(nt))
	out, err := s.d.DeployEnvOnly(ctx, in, e.Serial)
	return report(o.deps, o.JSON, "deploy", out, err)
}

func describeStrategy(in plan.Input) string {
	in.CopyFrom, in.Release, in.Env = "x", "x.env1", true
	p, err := plan.Deploy(in)
	if err != nil {
		return ""
	}
	return p.Strategy
}
