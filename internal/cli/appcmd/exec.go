package appcmd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/belay-sh/belay/deploy/sshx"
	"github.com/belay-sh/belay/internal/cli"
	clideploy "github.com/belay-sh/belay/internal/cli/deploy"
	"github.com/belay-sh/belay/internal/shq"
	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/roles"
)

// ExecOptions are `belay exec`'s inputs.
type ExecOptions struct {
	deps
	clideploy.ConnFlags
	Host        string
	Cell        string
	Interactive bool
	Argv        []string
}

// NewCmdExec returns `belay exec`.
func NewCmdExec(f *cli.Factory) *cobra.Command {
	o := &ExecOptions{deps: depsOf(f)}
	cmd := &cobra.Command{
		Use:   "exec [APP] [--host H] [-it] -- CMD [ARG...]",
		Short: "Run a one-off command on an app server as the app user, with the app's environment, in the current release",
		Long: `Run CMD on one app server of APP (--host, else the first reachable of the
primary group) as the app user belay-app — never as root — with the
environment the app's units get (its environment file, BELAY_RELEASE; not
PORT), in the current release's directory. Output is streamed; the exit status
is CMD's. Without -it, CMD gets no stdin. -it gives it a terminal: a console.

It goes over the pinned SSH connection as the deploy user, who runs
` + "`sudo -n belay host exec APP -- CMD`" + ` (one sudoers line per app): that root helper
reads the environment, sets no_new_privs, drops every group and becomes
belay-app before it runs CMD, so sudo and setuid programs cannot raise it
again. Every argument is shell-quoted; CMD runs without a shell unless it is one.

An app with cells: --cell C (each cell has its own database and release) or
--host is required; --cell picks the first reachable server of that cell.`,
		Example: `  belay exec shop -- bin/rails db:migrate:status
  belay exec shop --host app-2 -it -- bin/rails console
  belay exec shop -- sh -c 'echo $BELAY_RELEASE'
  belay exec shops --cell c2 -- bin/rails db:migrate:status`,
		RunE: func(cmd *cobra.Command, args []string) error {
			dash := cmd.ArgsLenAtDash()
			if dash < 0 {
				return errors.New("CMD: expected -- and the command to run, e.g. belay exec shop -- id")
			}
			if dash > 1 {
				return fmt.Errorf("expected at most one APP before --, got %q", args[:dash])
			}
			if dash == 1 {
				o.App = args[0]
			}
			o.Argv = args[dash:]
			return runExec(cmd.Context(), o)
		},
	}
	o.ConnFlags.AddFlagsExec(cmd)
	cmd.Flags().StringVar(&o.Host, "host", "", "app server to run on (default: the first reachable of the app's primary group)")
	cmd.Flags().StringVar(&o.Cell, "cell", "", "app with cells: run on the first reachable server of this cell (required unless --host)")
	// -i and -t both mean it, so the familiar -it works.
	cmd.Flags().BoolVarP(&o.Interactive, "interactive", "i", false, "give CMD a terminal and this terminal's input: a console (-it, -i and -t are the same)")
	cmd.Flags().BoolVarP(&o.Interactive, "tty", "t", false, "same as --interactive")
	return cmd
}

// ExecCommand is the remote command line of belay exec (the sudoers line pins
// `belay host exec APP -- `; everything is quoted by shq).
func ExecCommand(app string, argv []string) string {
	return shq.Join(append([]string{"sudo", "-n", roles.BelayBinary, "host", "exec", app, "--"}, argv...)...)
}

func runExec(ctx context.Context, o *ExecOptions) error {
	if len(o.Argv) == 0 || o.Argv[0] == "" {
		return errors.New("CMD: empty, expected the program to run after --")
	}
	inv, err := o.Inventory(o.InventoryRef)
	if err != nil {
		return err
	}
	if err := o.ResolveApp(inv); err != nil {
		return err
	}
	var cells []string
	if o.Cell != "" {
		cells = []string{o.Cell}
	}
	if strings.Contains(o.Cell, ",") {
		return fmt.Errorf("--cell %q: exec runs on one server, name one cell", o.Cell)
	}
	sv, err := appHosts(inv, o.App, o.Host, cells)
	if err != nil {
		return err
	}
	// An app with cells has no "first server": each cell runs its own
	// database and release, so the operator names the cell (or the host).
	if a := inv.App(o.App); len(a.Cells) > 0 && o.Cell == "" && o.Host == "" {
		return fmt.Errorf("--cell: required, app %s has cells (%s): name the cell to run in, or --host", o.App, strings.Join(cellNames(a), ", "))
	}
	hosts := sv.Primary // the standby serves nothing until a site switch
	if o.Host != "" {
		hosts = sv.All
	}
	pool, closeFn, err := o.Connect(ctx, inv, o.InventoryRef, o.SSH, o.Getenv)
	if err != nil {
		return err
	}
	defer closeFn()
	var c *sshx.Client
	var errs []error
	for _, h := range hosts {
		if c, err = pool.Get(ctx, h); err == nil {
			break
		}
		errs = append(errs, err)
	}
	if c == nil {
		return fmt.Errorf("no app server of %s reachable: %w", o.App, errors.Join(errs...))
	}
	where := ""
	if cell := sv.Cell[c.Name]; cell != "" {
		where = " (cell " + cell + ")"
	}
	fmt.Fprintf(o.IO.ErrOut, "belay: running on %s%s as %s in %s's current release\n", c.Name, where, roles.AppUser, o.App)
	line := ExecCommand(o.App, o.Argv)
	var code int
	if o.Interactive {
		code, err = interactive(ctx, c, line, o)
	} else {
		code, err = c.Stream(ctx, line, nil, o.IO.Out, o.IO.ErrOut)
	}
	var ce *sshx.CommandError
	if errors.As(err, &ce) {
		return cli.ExitError{Code: ce.Code} // CMD's own status; its stderr was streamed
	}
	if err != nil {
		return err
	}
	if code != 0 {
		return cli.ExitError{Code: code}
	}
	return nil
}

// interactive runs line on a remote terminal with the local one in raw mode.
func interactive(ctx context.Context, c *sshx.Client, line string, o *ExecOptions) (int, error) {
	in, ok := o.IO.In.(*os.File)
	if !ok || !term.IsTerminal(int(in.Fd())) {
		return -1, errors.New("-it: standard input is not a terminal (run without -it to stream output only)")
	}
	fd := int(in.Fd())
	w, h, err := term.GetSize(fd)
	if err != nil {
		w, h = 80, 24
	}
	old, err := term.MakeRaw(fd)
	if err != nil {
		return -1, fmt.Errorf("-it: terminal raw mode: %w", err)
	}
	defer term.Restore(fd, old)
	resize := make(chan [2]int, 1)
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, syscall.SIGWINCH)
	defer signal.Stop(winch)
	go func() {
		for range winch {
			if w, h, err := term.GetSize(fd); err == nil {
				select {
				case resize <- [2]int{w, h}:
				default:
				}
			}
		}
	}()
	t := o.Getenv("TERM")
	if t == "" {
		t = "xterm-256color"
	}
	return c.Interactive(ctx, line, sshx.PTY{Term: t, Width: w, Height: h, Resize: resize}, in, o.IO.Out)
}

func cellNames(a *inventory.App) []string {
	var out []string
	for _, c := range a.Cells {
		out = append(out, c.Name)
	}
	return out
}
