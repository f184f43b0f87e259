package host

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/belay-sh/belay/converge"
	"github.com/belay-sh/belay/hostconverge"
	"github.com/belay-sh/belay/internal/cli"
)

// ConvergeOptions are the inputs of `belay host converge`.
type ConvergeOptions struct {
	IO   cli.IO
	Host hostconverge.Options
}

// NewCmdConverge returns `belay host converge`.
func NewCmdConverge(f *cli.Factory, runF func(context.Context, *ConvergeOptions) error) *cobra.Command {
	o := &ConvergeOptions{IO: f.IO}
	return &cobra.Command{
		Use:   "converge",
		Short: "Apply the signed converge bundle on stdin to this server (run by belay converge through sudo)",
		Long: `Reads a bundle from belay converge on stdin. Nothing in it is trusted before its
ed25519 signature verifies with the stack's converge key (` + "/etc/belay/converge.pub" + `,
written root-only at first boot; only the holder of belay:hostKeySeed can sign).
Refused: another host's bundle, a serial not above the last accepted one
(replays), a path the roles do not render, a symlink on a target's path.

A dry-run bundle reports what differs. Otherwise only changed files are
written; their checks run (sshd -t, nginx -t, nft -c, visudo -c, keepalived -t)
before anything reloads, then only the reloads those files need. A failed check
or reload puts every previous file back. Prints the result as JSON on stdout.`,
		Example: `  # what belay converge runs on each host, as the deploy user:
  printf %s "$BUNDLE_BASE64" | base64 -d | sudo -n /usr/local/bin/belay host converge`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return RunConverge(cmd.Context(), o)
		},
	}
}

// RunConverge reads the bundle and applies it; the JSON result is printed
// whether it succeeded or not, and a failure also exits non-zero.
func RunConverge(ctx context.Context, o *ConvergeOptions) error {
	data, err := io.ReadAll(io.LimitReader(o.IO.In, converge.MaxBundle+1))
	if err != nil {
		return fmt.Errorf("reading the bundle from stdin: %w", err)
	}
	if len(data) > converge.MaxBundle {
		return fmt.Errorf("bundle on stdin: more than %d bytes", converge.MaxBundle)
	}
	res, runErr := hostconverge.Apply(ctx, data, o.Host)
	if runErr != nil {
		res.Error = runErr.Error()
	}
	if err := json.NewEncoder(o.IO.Out).Encode(res); err != nil {
		return err
	}
	return runErr
}
