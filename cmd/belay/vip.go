package main

import "github.com/belay-sh/belay/internal/cli/vip"

func init() { subcommands = append(subcommands, vip.NewCmdVIP) }
