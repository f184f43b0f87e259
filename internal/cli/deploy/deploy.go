package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/belay-sh/belay/deploy"
	"github.com/belay-sh/belay/deploy/analysis"
	"github.com/belay-sh/belay/deploy/plan"
	"github.com/belay-sh/belay/deploy/release"
	"github.com/belay-sh/belay/deploy/traffic"
	"github.com/belay-sh/belay/hostrelease"
	"github.com/belay-sh/belay/internal/cli"
	"github.com/belay-sh/belay/inventory"
)

// DeployOptions are `belay deploy`'s inputs.
type DeployOptions struct {
	deps
	Common
	Artifact string
	Release  string
	// changed reports a flag given on the command line (or by belay.yaml);
	// the others take the stack's belay:deploy values from the inventory.
	changed func(flag string) bool

	WhitelistShops   []string
	WhitelistIPs     []string
	WhitelistHeaders []string // Name=Value
	WhitelistCookies []string // Name=Value
	ShopParam        string
	ShopHeader       string
	ShopCookie       string
	Steps            string
	Sticky           string
	Pause            time.Duration
	MaxWait          time.Duration
	Thresholds       analysis.Thresholds
	Keep             int
	HealthTimeout    time.Duration

	// Artifact limits (hostrelease.Limits); MaxUnpackedSize is parsed by release.ParseSize.
	MaxEntries      int
	MaxUnpackedSize string
	MaxRatio        int64

	Extras Extras
	CellFlags

	StopAfter   string
	DryRun      bool
	Wait        bool
	WaitTimeout time.Duration
}

// NewCmdDeploy returns `belay deploy`.
func NewCmdDeploy(f *cli.Factory) *cobra.Command {
	o := &DeployOptions{deps: depsOf(f)}
	cmd := &cobra.Command{
		Use:   "deploy --artifact FILE --release ID",
		Short: "Roll a release out: whitelist canary, % steps, all — rolling back on failure",
		Long: `Deploy a release to every app server of an app over SSH.

The artifact (a tarball whose root holds an executable "start", or a single
executable) is checked locally first: sha256, and no entry may escape the
release directory. It is then streamed once to each host, verified again there,
unpacked under /srv/<app>/releases/<id>, started as the canary on port+1 and
health-checked. Traffic moves in stages — whitelisted shops/IPs/headers, then
the --steps percentages, then everything — with the access logs analysed after
each stage (--pause). Then "current" switches, the stable unit restarts on the
new release and the canary stops.

The first failure rolls EVERY host back (traffic to stable, previous release).
A per-host journal lets the next deploy or rollback converge all hosts if this
process dies mid-rollout. One deploy per app at a time (a lease on the first app
host); --wait queues behind a running one.

An app with cells is deployed cell by cell, each cell through this same
pipeline on its own servers (verdicts at its own nginx): the canary cell
(--canary-cell, default the first) first, then the others --wave-size at a
time; --cells limits the deploy to those cells. The first failure rolls back
EVERY cell touched, each to its own previous release; later cells are never
touched. The lease of every chosen cell is taken first, in name order.`,
		Example: `  # see the plan without touching a host
  belay deploy --app shop --artifact shop.tar.gz --release v42 --dry-run

  # whitelist two shops for 5 minutes, then 10 % and 50 % for 2 minutes each
  belay deploy --app shop --artifact shop.tar.gz --release v42 \
    --whitelist-shops alpha.example.com,beta.example.com --steps 10,50 --pause 2m

  # an app with cells: canary cell c2, then the others two at a time
  belay deploy --app shop --artifact shop.tar.gz --release v42 --canary-cell c2 --wave-size 2

  # in CI: wait for a running deploy, stop after the whitelist stage
  belay deploy --inventory pulumi:prod --artifact shop.tar.gz --release "$GITHUB_SHA" --wait`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.changed = cmd.Flags().Changed
			return early(o.deps, "deploy", o.App, o.Release, runDeploy(cmd.Context(), o))
		},
	}
	o.Common.flags(cmd)
	o.Common.skipStandbyFlag(cmd)
	o.Common.drainFlag(cmd)
	fl := cmd.Flags()
	fl.StringVar(&o.Artifact, "artifact", "", "release artifact: .tar/.tar.gz with ./start at its root, or one executable (required)")
	fl.StringVar(&o.Release, "release", "", "release id, e.g. v42 or a git sha (required)")
	fl.StringSliceVar(&o.WhitelistShops, "whitelist-shops", nil, "shops (domains) sent to the canary first")
	fl.StringSliceVar(&o.WhitelistIPs, "whitelist-ips", nil, "client IPs/CIDRs sent to the canary first")
	fl.StringSliceVar(&o.WhitelistHeaders, "whitelist-headers", nil, "Name=Value request headers sent to the canary first")
	fl.StringSliceVar(&o.WhitelistCookies, "whitelist-cookies", nil, "Name=Value cookies sent to the canary first")
	fl.StringVar(&o.ShopParam, "shop-param", traffic.DefaultShopParam, "query parameter naming the shop (default: the stack's belay:deploy.shopParam)")
	fl.StringVar(&o.ShopHeader, "shop-header", traffic.DefaultShopHeader, "header naming the shop (default: the stack's belay:deploy.shopHeader)")
	fl.StringVar(&o.ShopCookie, "shop-cookie", traffic.DefaultShopCookie, "cookie naming the shop (default: the stack's belay:deploy.shopCookie)")
	fl.StringVar(&o.Steps, "steps", "10,50", `canary percentages after the whitelist, ascending ("" or "none": straight to 100 %)`)
	fl.StringVar(&o.Sticky, "sticky", string(traffic.ByClientIP), `what keeps a client on one side in % steps: "ip" or "shop"`)
	fl.DurationVar(&o.Pause, "pause", 2*time.Minute, "observe each stage this long before it passes; judged every second, a failing canary rolls back at once (0: no analysis)")
	fl.DurationVar(&o.MaxWait, "max-wait", 0, "wait up to this long for enough canary requests (default 3 x --pause)")
	def0 := analysis.DefaultThresholds()
	fl.Int64Var(&o.Thresholds.MinRequests, "min-requests", def0.MinRequests, "canary requests needed for a pass (at least 1)")
	fl.Float64Var(&o.Thresholds.MaxErrorDelta, "max-error-delta", def0.MaxErrorDelta, "max canary 5xx rate above stable, in percentage points (0 or more)")
	fl.Float64Var(&o.Thresholds.MaxSlowDelta, "max-slow-delta", def0.MaxSlowDelta, "max canary slow-request share above stable, in points (0 or more)")
	fl.DurationVar(&o.Thresholds.SlowAbsolute, "slow", 0, "a request slower than this is slow (default: 2 x stable p95, at least 50ms)")
	fl.IntVar(&o.Keep, "keep", 5, "releases kept on each host (at least 2; the running and the last known-good are never deleted; default: the stack's belay:deploy.keepReleases)")
	fl.DurationVar(&o.HealthTimeout, "health-timeout", 30*time.Second, "how long a new instance may take to pass its health check (polled 50 ms apart, backing off to 1 s)")
	def := hostrelease.DefaultLimits()
	fl.IntVar(&o.MaxEntries, "max-entries", def.MaxEntries, "refuse an artifact with more archive entries than this (checked locally and again on each host)")
	fl.StringVar(&o.MaxUnpackedSize, "max-unpacked-size", "4GiB", "refuse an artifact whose files add up to more than this (bytes, or K/M/G/T, powers of 1024)")
	fl.Int64Var(&o.MaxRatio, "max-ratio", def.MaxRatio, "refuse an artifact that unpacks to more than this many times its size (applied above 64 MiB unpacked)")
	fl.StringVar(&o.StopAfter, "stop-after", "", `stop after this stage ("whitelist" or a step such as "10%") with the canary serving it; deploy the same release again to continue`)
	fl.BoolVar(&o.DryRun, "dry-run", false, "verify the artifact and print the plan; touch no host")
	fl.BoolVar(&o.Wait, "wait", false, "wait for another deploy's lease instead of failing")
	fl.DurationVar(&o.WaitTimeout, "wait-timeout", 30*time.Minute, "give up waiting for the lease after this long")
	o.Extras.flags(cmd)
	o.CellFlags.flags(cmd)
	return cmd
}

func (o *DeployOptions) strategy() (plan.Strategy, error) {
	st := plan.Strategy{
		Rules:  traffic.Rules{Shops: o.WhitelistShops, Clients: o.WhitelistIPs},
		Keys:   traffic.Keys{Param: o.ShopParam, Header: o.ShopHeader, Cookie: o.ShopCookie},
		Sticky: traffic.Sticky(o.Sticky), Pause: o.Pause, MaxWait: o.MaxWait,
		KeepReleases: o.Keep, HealthTimeout: o.HealthTimeout, StopAfter: o.StopAfter,
		DrainTimeout: o.DrainTimeout,
	}
	if st.StopAfter != "" && st.StopAfter != "whitelist" && !strings.HasSuffix(st.StopAfter, "%") {
		st.StopAfter += "%"
	}
	var err error
	if st.Steps, err = parseSteps(o.Steps); err != nil {
		return st, err
	}
	if st.Rules.Headers, err = matches("--whitelist-headers", o.WhitelistHeaders); err != nil {
		return st, err
	}
	if st.Rules.Cookies, err = matches("--whitelist-cookies", o.WhitelistCookies); err != nil {
		return st, err
	}
	if st.Sticky != traffic.ByClientIP && st.Sticky != traffic.ByShop {
		return st, fmt.Errorf("--sticky %q: expected ip or shop", o.Sticky)
	}
	if o.Keep < 2 {
		return st, fmt.Errorf("--keep %d: at least 2 (the running release and one to roll back to)", o.Keep)
	}
	if o.HealthTimeout < 100*time.Millisecond {
		return st, fmt.Errorf("--health-timeout %s: at least 100ms", o.HealthTimeout)
	}
	if err := o.checkDrain(); err != nil {
		return st, err
	}
	if err := o.checkThresholds(); err != nil {
		return st, err
	}
	return st, o.checkParallel()
}

// checkThresholds refuses verdict thresholds that would judge nothing or
// everything: the analysis would otherwise take 0 for "use the default".
func (o *DeployOptions) checkThresholds() error {
	t := o.Thresholds
	switch {
	case t.MinRequests < 1:
		return fmt.Errorf("--min-requests %d: expected at least 1 (a verdict needs canary requests)", t.MinRequests)
	case t.MaxErrorDelta < 0:
		return fmt.Errorf("--max-error-delta %g: expected 0 or more percentage points", t.MaxErrorDelta)
	case t.MaxSlowDelta < 0:
		return fmt.Errorf("--max-slow-delta %g: expected 0 or more percentage points", t.MaxSlowDelta)
	case t.SlowAbsolute < 0:
		return fmt.Errorf("--slow %s: expected 0 (derived from stable) or more", t.SlowAbsolute)
	case o.Pause < 0:
		return fmt.Errorf("--pause %s: expected 0 or more", o.Pause)
	case o.MaxWait < 0:
		return fmt.Errorf("--max-wait %s: expected 0 or more", o.MaxWait)
	}
	return nil
}

// parseSteps reads "10,50" (or "" / "none" for no percent stages).
func parseSteps(s string) ([]int, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "none" {
		return nil, nil
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(f), "%"))
		if err != nil {
			return nil, fmt.Errorf("--steps %q: %q is not a percentage; expected e.g. 10,50", s, f)
		}
		out = append(out, n)
	}
	return out, nil
}

func matches(flag string, vals []string) ([]traffic.Match, error) {
	var out []traffic.Match
	for _, v := range vals {
		n, val, ok := strings.Cut(v, "=")
		if !ok || n == "" || val == "" {
			return nil, fmt.Errorf("%s %q: expected Name=Value", flag, v)
		}
		out = append(out, traffic.Match{Name: n, Value: val})
	}
	return out, nil
}

func runDeploy(ctx context.Context, o *DeployOptions) error {
	hook, err := o.Extras.check(o)
	if err != nil {
		return err
	}
	if o.Extras.EnvOnly {
		return runEnvOnly(ctx, o, hook)
	}
	if o.Artifact == "" {
		return errors.New("--artifact: required (a .tar.gz with ./start at its root, or one executable)")
	}
	if o.Release == "" {
		return errors.New("--release: required (e.g. v42 or a git sha)")
	}
	if err := hostrelease.ValidateID(o.Release); err != nil {
		return fmt.Errorf("--release: %w", err)
	}
	st, err := o.strategy()
	if err != nil {
		return err
	}
	nt, err := o.Extras.notifier(o.deps)
	if err != nil {
		return err
	}
	lim := hostrelease.Limits{MaxEntries: o.MaxEntries, MaxRatio: o.MaxRatio}
	if lim.MaxUnpacked, err = release.ParseSize(o.MaxUnpackedSize); err != nil {
		return fmt.Errorf("--max-unpacked-size: %w", err)
	}
	// Verify the artifact before anything else: a bad archive never reaches a host.
	a, err := release.InspectLimits(o.Artifact, lim)
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
	in := plan.Input{Inventory: inv, App: o.App, Release: o.Release, Artifact: a, Strategy: st, SkipStandby: o.SkipStandby,
		Env: true, ReleaseCommand: hook, ReleaseTimeout: o.Extras.ReleaseTimeout}
	if o.cellsMode(inv) {
		return runDeployCells(ctx, o, in, a, e, nt)
	}
	p, err := plan.Deploy(in)
	if err != nil {
		return err
	}
	if o.DryRun {
		if o.JSON {
			b, err := plan.JSON(p)
			if err != nil {
				return err
			}
			return cli.PrintJSON(o.IO.Out, json.RawMessage(b)) // adds the target
		}
		plan.Print(o.IO.Out, p)
		return nil
	}
	s, err := open(ctx, o.deps, &o.Common, o.IO.ErrOut)
	if err != nil {
		return err // early() annotates it
	}
	defer s.close()
	s.d.Wait, s.d.WaitTimeout = o.Wait, o.WaitTimeout
	s.d.Runner.Judge = deploy.Judge(o.Thresholds)
	s.d.Runner.Artifact = deploy.OpenArtifact(a)
	s.d.Runner.Env, s.d.Notify, s.d.Stack = e.Render(), nt, inv.Stack
	defer nt.Close(10 * time.Second)
	fmt.Fprintf(o.IO.ErrOut, "deploying %s %s (%s, sha256 %s, env serial %d) to %s: %s%s\n", o.App, o.Release, a.Kind, a.SHA256[:12], e.Serial, strings.Join(p.Hosts, ", "), p.Strategy, webhooks(nt))
	out, err := s.d.Deploy(ctx, in)
	return report(o.deps, o.JSON, "deploy", out, err)
}

// report prints an outcome (text or JSON), writes the GitHub job summary and
// annotations when running in Actions, and turns failure into exit status 1.
func report(d deps, asJSON bool, what string, out *deploy.Outcome, err error) error {
	if out != nil {
		if asJSON {
			if perr := cli.PrintJSON(d.IO.Out, out); perr != nil {
				return perr
			}
		} else {
			fmt.Fprintf(d.IO.Out, "%s %s %s: %s", out.Action, out.App, out.Release, out.Result)
			if out.Previous != "" {
				fmt.Fprintf(d.IO.Out, " (previous %s)", out.Previous)
			}
			if out.Duration != "" {
				fmt.Fprintf(d.IO.Out, " in %s", out.Duration)
			}
			if out.Rollback != "" {
				fmt.Fprintf(d.IO.Out, " (the rollback of every host took %s%s)", out.Rollback, out.Detection.Summary())
			}
			fmt.Fprintln(d.IO.Out)
			if out.Recovery != "" {
				fmt.Fprintf(d.IO.Out, "recovered an unfinished rollout first: %s\n", out.Recovery)
			}
			if out.Result == "paused" {
				fmt.Fprintf(d.IO.Out, "paused after the %s stage: the canary keeps serving it. Continue with the same --release and --artifact (without --stop-after), or `belay rollback`.\n", out.PausedAfter)
			}
		}
		summary(d, out)
	}
	if err != nil {
		return ghFail(d, what, err)
	}
	return nil
}

// early reports a failure that happened before any host was touched (bad
// flag, bad artifact, unreadable inventory, unreachable host) like a failed
// outcome: ::error annotation and job summary in GitHub Actions, then exit 1.
// Errors report() already handled arrive as cli.ExitError and pass through.
func early(d deps, what, app, rel string, err error) error {
	var ee cli.ExitError
	if err == nil || errors.As(err, &ee) {
		return err
	}
	summary(d, &deploy.Outcome{Action: what, App: app, Release: rel, Result: "failed", Error: err.Error()})
	return ghFail(d, what, err)
}

func ghFail(d deps, what string, err error) error {
	if d.Getenv("GITHUB_ACTIONS") == "true" {
		// Annotations are one line; %0A is GitHub's escaped newline.
		msg := strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A").Replace(err.Error())
		// stderr: stdout may carry the --json document, which must stay parseable.
		fmt.Fprintf(d.IO.ErrOut, "::error title=belay %s::%s\n", what, msg)
	}
	fmt.Fprintln(d.IO.ErrOut, "belay:", err)
	return cli.ExitError{Code: 1}
}

// summary appends a Markdown job summary in GitHub Actions.
func summary(d deps, out *deploy.Outcome) {
	path := d.Getenv("GITHUB_STEP_SUMMARY")
	if d.Getenv("GITHUB_ACTIONS") != "true" || path == "" {
		return
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		fmt.Fprintf(d.IO.ErrOut, "belay: job summary %s: %v\n", path, err)
		return
	}
	defer f.Close()
	writeSummary(f, out)
}

func writeSummary(w io.Writer, out *deploy.Outcome) {
	icon := map[string]string{"ok": "✅", "paused": "⏸️", "rolled-back": "↩️", "rollback-failed": "🛑", "failed": "❌"}[out.Result]
	fmt.Fprintf(w, "### %s belay %s `%s` %s: %s\n\n", icon, out.Action, out.App, out.Release, out.Result)
	fmt.Fprintf(w, "| | |\n|---|---|\n")
	if len(out.Hosts) > 0 {
		fmt.Fprintf(w, "| hosts | %s |\n", strings.Join(out.Hosts, ", "))
	}
	if out.Previous != "" {
		fmt.Fprintf(w, "| previous | %s |\n", out.Previous)
	}
	if out.DeployID != "" {
		fmt.Fprintf(w, "| deploy id | %s |\n| duration | %s |\n", out.DeployID, out.Duration)
	} else {
		fmt.Fprintf(w, "| hosts touched | none (failed before the rollout began) |\n")
	}
	if out.Rollback != "" {
		fmt.Fprintf(w, "| rollback took | %s |\n", out.Rollback)
	}
	if dt := out.Detection; dt != nil {
		if dt.FirstBad != "" {
			fmt.Fprintf(w, "| first bad | %s at %s |\n| first bad to rollback start / end | %s / %s |\n", dt.What, dt.FirstBad, dt.FirstBadToRollbackStart, dt.FirstBadToRollbackEnd)
		}
		fmt.Fprintf(w, "| detected to every host back | %s |\n", dt.DetectedToRollbackEnd)
	}
	if out.Recovery != "" {
		fmt.Fprintf(w, "| recovery | %s |\n", out.Recovery)
	}
	if out.Error != "" {
		fmt.Fprintf(w, "\n```\n%s\n```\n", out.Error)
	}
	fmt.Fprintln(w)
}

// stackDefaults applies the stack's belay:deploy keys (carried by the
// inventory) to the flags not given: --keep, --shop-param, --shop-header,
// --shop-cookie. A flag given wins; an inventory without the section (older
// stacks) leaves the built-in defaults.
func (o *DeployOptions) stackDefaults(inv *inventory.Inventory, st *plan.Strategy) {
	d := inv.Deploy
	if d == nil || o.changed == nil {
		return
	}
	if !o.changed("keep") {
		st.KeepReleases = d.KeepReleases
	}
	if !o.changed("shop-param") {
		st.Keys.Param = d.ShopParam
	}
	if !o.changed("shop-header") {
		st.Keys.Header = d.ShopHeader
	}
	if !o.changed("shop-cookie") {
		st.Keys.Cookie = d.ShopCookie
	}
}
