package main

import (
	"github.com/spf13/cobra"

	"github.com/belay-sh/belay/internal/cli"
	"github.com/belay-sh/belay/internal/cli/initcmd"
)

func init() {
	subcommands = append(subcommands, func(f *cli.Factory) *cobra.Command { return initcmd.NewCmdInit(f, version) })
}
