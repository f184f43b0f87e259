package main

import "github.com/belay-sh/belay/internal/cli/maintenance"

func init() { subcommands = append(subcommands, maintenance.NewCmdMaintenance) }
