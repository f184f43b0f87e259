package main

import "github.com/belay-sh/belay/internal/cli/failover"

func init() { subcommands = append(subcommands, failover.NewCmdFailover) }
