package lab

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/belay-sh/belay/internal/cli"
	thelab "github.com/belay-sh/belay/lab"
)

// ReplaceOptions are `belay lab replace`'s inputs.
type ReplaceOptions struct {
	*Options
	Host string
}

func newCmdReplace(o *Options) *cobra.Command {
	r := &ReplaceOptions{Options: o}
	cmd := &cobra.Command{
		Use:   "replace HOST",
		Short: "Replace one machine like a cloud replaces a server: new root, same user data, data disk kept",
		Long: `Stops HOST, throws its root away (the overlay's upper layer and its disk) and
boots a new root from the same lab image, the same NoCloud seed (user data,
meta-data, network config) and the same belay binary, then waits for
cloud-init. A stateful machine (db-1, db-2, db-standby, backup) keeps its
second disk: the role finds the filesystem there and mounts it without
formatting, as a cloud server keeps its volume.

This is what the deliberate-replacement drill uses on the lab. It does not move
traffic or the primary away first: that is the drill's job. A kill fault on HOST
is healed by the replacement; any other fault on it must be healed first.
Progress goes to stderr. Needs root.`,
		Example: `  sudo belay lab replace db-2
  sudo belay lab replace backup --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r.Host = args[0]
			return RunReplace(cmd.Context(), r)
		},
	}
	cmd.Flags().BoolVar(&o.JSON, "json", false, "print a JSON summary")
	return cmd
}

// RunReplace is `belay lab replace` without cobra.
func RunReplace(ctx context.Context, r *ReplaceOptions) error {
	sum, err := r.Deps.Replace(ctx, thelab.ReplaceOptions{Paths: r.Paths, Host: r.Host, Progress: r.IO.ErrOut})
	if sum == nil {
		return err
	}
	if r.JSON {
		if perr := cli.PrintJSON(r.IO.Out, sum); perr != nil && err == nil {
			err = perr
		}
		return err
	}
	disk := "no data disk"
	if sum.DataDisk != "" {
		disk = "data disk kept: " + sum.DataDisk
	}
	fmt.Fprintf(r.IO.Out, "lab replace: %s replaced in %.1fs (cloud-init %s; %s)\n", sum.Host, sum.Seconds, sum.CloudInit, disk)
	return err
}
