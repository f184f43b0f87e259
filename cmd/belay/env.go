package main

import "github.com/belay-sh/belay/internal/cli/env"

func init() {
	subcommands = append(subcommands, env.NewCmdEnv)
}
