package main

import "github.com/belay-sh/belay/internal/cli/appcmd"

func init() {
	subcommands = append(subcommands, appcmd.NewCmdLogs, appcmd.NewCmdExec)
}
