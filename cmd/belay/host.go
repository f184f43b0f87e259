package main

import "github.com/belay-sh/belay/internal/cli/host"

func init() { subcommands = append(subcommands, host.NewCmdHost) }
