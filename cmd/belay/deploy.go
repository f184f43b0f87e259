package main

import "github.com/belay-sh/belay/internal/cli/deploy"

func init() {
	subcommands = append(subcommands, deploy.NewCmdDeploy, deploy.NewCmdRollback, deploy.NewCmdStatus, deploy.NewCmdReleases, deploy.NewCmdAudit, deploy.NewCmdLease)
}
