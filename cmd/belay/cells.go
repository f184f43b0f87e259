package main

import "github.com/belay-sh/belay/internal/cli/cells"

func init() { subcommands = append(subcommands, cells.NewCmdCells, cells.NewCmdShop) }
