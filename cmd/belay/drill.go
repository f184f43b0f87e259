package main

import "github.com/belay-sh/belay/internal/cli/drill"

func init() { subcommands = append(subcommands, drill.NewCmdDrill, drill.NewCmdRunbook) }
