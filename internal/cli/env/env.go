package env

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/belay-sh/belay/deploy/appenv"
	"github.com/belay-sh/belay/internal/cli"
	"github.com/belay-sh/belay/inventory"
)

// Options are the inputs every env subcommand shares.
type Options struct {
	IO           cli.IO
	Inventory    func(string) (*inventory.Inventory, error)
	Getenv       func(string) string
	InventoryRef string
	Source       Source

	App    string
	Args   []string
	Secret bool
	Reveal bool
	JSON   bool
}

// NewCmdEnv returns `belay env`.
func NewCmdEnv(f *cli.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "env",
		Short: "App config and secrets, sealed with the stack; applied by the next deploy",
		Long: `An app's environment variables, stored encrypted in <env-dir>/<stack>/<app>.json
(commit it next to the stack: names are readable in diffs, values are sealed
with a key derived from belay:hostKeySeed).

Changing the env touches no host. A config change is a release: the next
"belay deploy" carries it, or "belay deploy --env-only" re-deploys the running
artifact with the new env as release <release>.env<serial>, canary first; a bad
verdict rolls the env back with the release.

DATABASE_URL, PORT and BELAY_* are belay's and cannot be set.`,
	}
	for _, sub := range []func(*cli.Factory) *cobra.Command{newCmdSet, newCmdUnset, newCmdList} {
		cmd.AddCommand(sub(f))
	}
	return cmd
}

func options(f *cli.Factory, cmd *cobra.Command) *Options {
	o := &Options{IO: f.IO, Inventory: f.Inventory, Getenv: f.Getenv}
	cmd.Flags().StringVar(&o.InventoryRef, "inventory", "", cli.InventoryUsage)
	o.Source.Flags(cmd.Flags())
	return o
}

func newCmdSet(f *cli.Factory) *cobra.Command {
	var o *Options
	cmd := &cobra.Command{
		Use:   "set APP KEY=VALUE...",
		Short: "Set variables (all or none: a bad one changes nothing)",
		Example: `  belay env set shop LOG_LEVEL=info FEATURE_X=on
  belay env set shop STRIPE_KEY="$STRIPE_KEY" --secret
  belay deploy --app shop --env-only`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.App, o.Args = args[0], args[1:]
			return RunSet(o)
		},
	}
	o = options(f, cmd)
	cmd.Flags().BoolVar(&o.Secret, "secret", false, "mark the values secret: env list masks them unless --reveal")
	return cmd
}

func newCmdUnset(f *cli.Factory) *cobra.Command {
	var o *Options
	cmd := &cobra.Command{
		Use:   "unset APP KEY...",
		Short: "Remove variables (each must be set: a missing one changes nothing)",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.App, o.Args = args[0], args[1:]
			return RunUnset(o)
		},
	}
	o = options(f, cmd)
	return cmd
}

func newCmdList(f *cli.Factory) *cobra.Command {
	var o *Options
	cmd := &cobra.Command{
		Use:   "list APP",
		Short: "List variables (secret values masked unless --reveal)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.App = args[0]
			return RunList(o)
		},
	}
	o = options(f, cmd)
	cmd.Flags().BoolVar(&o.Reveal, "reveal", false, "print secret values too")
	cmd.Flags().BoolVar(&o.JSON, "json", false, "print JSON")
	return cmd
}

// target resolves the stack (from the inventory) and checks the app is in it.
func (o *Options) target() (string, error) {
	inv, err := o.Inventory(o.InventoryRef)
	if err != nil {
		return "", err
	}
	if inv.App(o.App) == nil {
		var names []string
		for _, a := range inv.Apps {
			names = append(names, a.Name)
		}
		return "", fmt.Errorf("app %q: not in the inventory of stack %s (apps: %s)", o.App, inv.Stack, strings.Join(names, ", "))
	}
	return inv.Stack, nil
}

// RunSet validates every assignment, then seals and writes the file once.
func RunSet(o *Options) error {
	as, err := appenv.ParseAssignments(o.Args)
	if err != nil {
		return err
	}
	e, p, changed, err := o.edit(func(e *appenv.Env) (bool, error) { return e.Set(as, o.Secret), nil })
	if err != nil {
		return err
	}
	if !changed {
		fmt.Fprintf(o.IO.ErrOut, "env of %s unchanged (serial %d)\n", o.App, e.Serial)
		return nil
	}
	var keys []string
	for _, a := range as {
		keys = append(keys, a.Key)
	}
	fmt.Fprintf(o.IO.ErrOut, "set %s in %s (serial %d); no host changed: run `belay deploy --app %s --env-only` (or the next deploy) to roll it out through the canary\n",
		strings.Join(keys, ", "), p, e.Serial, o.App)
	return nil
}

// RunUnset removes keys.
func RunUnset(o *Options) error {
	for _, k := range o.Args {
		if err := appenv.ValidateKey(k); err != nil {
			return err
		}
	}
	e, p, _, err := o.edit(func(e *appenv.Env) (bool, error) { return true, e.Unset(o.Args) })
	if err != nil {
		return err
	}
	fmt.Fprintf(o.IO.ErrOut, "unset %s in %s (serial %d); no host changed: run `belay deploy --app %s --env-only` to roll it out\n", strings.Join(o.Args, ", "), p, e.Serial, o.App)
	return nil
}

// edit loads the app's env, applies change and, when it changed something,
// seals and writes the file once; a failing change writes nothing. The seed is
// asked for only then: a missing env file loads without one, and a change
// refused on it (unset of a key that is not set) says so rather than asking
// for the seed.
func (o *Options) edit(change func(*appenv.Env) (bool, error)) (e *appenv.Env, path string, changed bool, err error) {
	stack, err := o.target()
	if err != nil {
		return nil, "", false, err
	}
	e, path, err = o.Source.Load(stack, o.App, o.Getenv)
	if err != nil {
		return nil, path, false, err
	}
	if changed, err = change(e); err != nil || !changed {
		return e, path, false, err
	}
	seed, err := o.Source.Seed(stack, o.Getenv)
	if err != nil {
		return e, path, false, err
	}
	if err := appenv.Save(path, e, seed); err != nil {
		return e, path, false, err
	}
	return e, path, true, nil
}

type listed struct {
	Key    string `json:"key"`
	Value  string `json:"value"`
	Secret bool   `json:"secret"`
}

// RunList prints the env, secret values masked unless Reveal.
func RunList(o *Options) error {
	stack, err := o.target()
	if err != nil {
		return err
	}
	e, _, err := o.Source.Load(stack, o.App, o.Getenv)
	if err != nil {
		return err
	}
	var rows []listed
	for _, v := range e.Sorted() {
		val := v.Value
		if v.Secret && !o.Reveal {
			val = appenv.Mask
		}
		rows = append(rows, listed{v.Key, val, v.Secret})
	}
	if o.JSON {
		return cli.PrintJSON(o.IO.Out, map[string]any{"stack": stack, "app": o.App, "serial": e.Serial, "vars": orEmpty(rows)})
	}
	if len(rows) == 0 {
		fmt.Fprintf(o.IO.ErrOut, "app %s (stack %s) has no env set\n", o.App, stack)
		return nil
	}
	for _, r := range rows {
		tag := ""
		if r.Secret {
			tag = "  (secret)"
		}
		fmt.Fprintf(o.IO.Out, "%s=%s%s\n", r.Key, r.Value, tag)
	}
	return nil
}

func orEmpty(r []listed) []listed {
	if r == nil {
		return []listed{}
	}
	return r
}
