package deploy

import (
	"os"
	"os/user"
	"strings"
)

// CurrentActor says who runs this process, for the lease and the audit log:
// $USER (or the OS user) at this host, the GitHub actor and run URL in Actions.
func CurrentActor(getenv func(string) string) Actor {
	who := getenv("USER")
	if u, err := user.Current(); err == nil && who == "" {
		who = u.Username
	}
	if gh := getenv("GITHUB_ACTOR"); gh != "" && getenv("GITHUB_ACTIONS") == "true" {
		who = gh + " (github actions)"
	}
	host, _ := os.Hostname()
	a := Actor{Who: who + "@" + host, From: host, PID: os.Getpid()}
	if getenv("GITHUB_ACTIONS") == "true" && getenv("GITHUB_RUN_ID") != "" {
		a.CI = strings.TrimSuffix(getenv("GITHUB_SERVER_URL"), "/") + "/" + getenv("GITHUB_REPOSITORY") + "/actions/runs/" + getenv("GITHUB_RUN_ID")
	}
	return a
}
