package main

import "github.com/belay-sh/belay/internal/cli/backup"

func init() { subcommands = append(subcommands, backup.NewCmdBackup) }
