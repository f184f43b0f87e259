package main

import (
	"github.com/spf13/cobra"

	"github.com/belay-sh/belay/internal/cli"
	"github.com/belay-sh/belay/internal/cli/replace"
)

func init() {
	subcommands = append(subcommands,
		func(f *cli.Factory) *cobra.Command { return replace.NewCmdReplace(f, nil) },
		replace.NewCmdDB)
}
