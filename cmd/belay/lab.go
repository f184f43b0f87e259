package main

import "github.com/belay-sh/belay/internal/cli/lab"

func init() { subcommands = append(subcommands, lab.NewCmdLab) }
