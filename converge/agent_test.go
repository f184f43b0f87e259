package converge_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/belay-sh/belay/converge"
	"github.com/belay-sh/belay/hostspec"
	"github.com/belay-sh/belay/lab"
	"github.com/belay-sh/belay/roles"
	"github.com/belay-sh/belay/topology"
)

// hostsWithAgent renders the lab's default stack as a cloud would (every
// host downloads the belay binary named by belay:agent) with checksum sha.
func hostsWithAgent(t *testing.T, sha string) map[string]converge.Host {
	t.Helper()
	cfg, err := lab.LoadStack(lab.StackInput{}, testSeed, adminKey)
	if err != nil {
		t.Fatal(err)
	}
	topo, err := topology.Plan(cfg)
	if err != nil {
		t.Fatal(err)
	}
	env, err := hostspec.DefaultEnv(cfg, topo, true)
	if err != nil {
		t.Fatal(err)
	}
	specs, err := hostspec.Build(cfg, topo, lab.StackName, env)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]converge.Host{}
	for name, s := range specs {
		s.Agent = &roles.Agent{URL: "https://example.com/belay-linux-amd64", SHA256: sha}
		ud, err := roles.Render(s)
		if err != nil {
			t.Fatal(err)
		}
		h, err := converge.FromUserData(name, ud)
		if err != nil {
			t.Fatal(err)
		}
		out[name] = h
	}
	return out
}

// TestAgentBumpInstallsTheBinary: a belay:agent change reaches every running
// host as one changed file, /etc/belay/agent, whose effect is the install
// script first boot runs (download, SHA-256 check, rename), after every other
// activation; the script is allowed on the host side and nothing else reloads.
func TestAgentBumpInstallsTheBinary(t *testing.T) {
	before := hostsWithAgent(t, strings.Repeat("ab", 32))
	after := hostsWithAgent(t, strings.Repeat("cd", 32))
	if !converge.Allowed(roles.AgentFile) {
		t.Fatalf("%s is not a path converge may write", roles.AgentFile)
	}
	for name, h := range before {
		p := converge.PlanHost(after[name].Files, onDisk(h))
		var paths []string
		for _, c := range p.Changes {
			paths = append(paths, c.Path)
		}
		if !slices.Equal(paths, []string{roles.AgentFile}) {
			t.Errorf("%s: changed %q, expected only %s", name, paths, roles.AgentFile)
		}
		if len(p.Activate) != 1 || !slices.Equal([]string(p.Activate[0]), roles.AgentInstallCmd()) || len(p.Validate) != 0 {
			t.Errorf("%s: validate %v activate %v, expected only the agent install", name, p.Validate, p.Activate)
		}
	}
	// With other changes, the install runs last (a failed download restores
	// the host's files after the cheap checks already passed).
	mixed := converge.PlanHost(append(append([]converge.File{}, after["db-1"].Files...), converge.File{Path: "/etc/systemd/system/belay-x.timer", Content: "x", Owner: "root:root", Mode: 0o644}), onDisk(before["db-1"]))
	if n := len(mixed.Activate); n < 2 || mixed.Activate[n-1][len(mixed.Activate[n-1])-1] != roles.AgentInstallName {
		t.Errorf("db-1: activation order %v, expected the agent install last", mixed.Activate)
	}
}
