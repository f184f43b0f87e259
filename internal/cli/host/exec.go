package host

import (
	"github.com/spf13/cobra"

	"github.com/belay-sh/belay/hostexec"
	"github.com/belay-sh/belay/internal/cli"
)

// ExecOptions are the inputs of `belay host exec`.
type ExecOptions struct {
	IO    cli.IO
	App   string
	Argv  []string
	Paths hostexec.Paths
	User  string
}

// NewCmdExec returns `belay host exec APP -- CMD...`, the root side of `belay exec`.
func NewCmdExec(f *cli.Factory, runF func(*ExecOptions) error) *cobra.Command {
	o := &ExecOptions{IO: f.IO, Paths: hostexec.DefaultPaths, User: hostexec.AppUser}
	cmd := &cobra.Command{
		Use:   "exec APP -- CMD [ARG...]",
		Short: "Run one command as belay-app with the app's environment in its current release (run by belay exec through sudo)",
		Long: `Run CMD as the app user (` + hostexec.AppUser + `), never as root: the app's environment
file is read as root, then the helper sets no_new_privs (sudo and setuid
programs cannot raise privileges again), drops every group, takes ` + hostexec.AppUser + `'s
uid and gid, changes to /srv/APP/current's release directory and executes CMD
(no shell unless CMD is one). BELAY_RELEASE names the release; PORT is not set.
The exit status is CMD's. The deploy user may run it for its apps only
(/etc/sudoers.d/belay-APP).`,
		Example: `  sudo -n belay host exec shop -- bin/rails db:migrate:status`,
		Args:    cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			// Everything after APP is the command, flags included.
			o.App, o.Argv = args[0], args[1:]
			if o.Argv[0] == "--" { // belay exec always sends it (the sudoers line pins it)
				o.Argv = o.Argv[1:]
			}
			if runF != nil {
				return runF(o)
			}
			return RunExec(o)
		},
	}
	// Nothing after APP is ours: `belay host exec shop ls -la` runs `ls -la`.
	cmd.Flags().SetInterspersed(false)
	return cmd
}

// RunExec validates, reads the environment and replaces this process with the
// command; it returns only when that failed, before the command ran.
func RunExec(o *ExecOptions) error {
	p, err := hostexec.Prepare(o.Paths, o.App, o.Argv)
	if err != nil {
		return err
	}
	return hostexec.Exec(p, o.User)
}
