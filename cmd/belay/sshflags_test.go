package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/belay-sh/belay/internal/cli"
)

// Commands with --inventory that never open SSH: they read or write the
// stack's config or render text.
var noHostCommands = map[string]string{
	"belay env list":  "stack config only",
	"belay env set":   "stack config only",
	"belay env unset": "stack config only",
	"belay runbook":   "renders the runbook",
	"belay init":      "writes belay.yaml",
}

// hostCommands walks the tree for the commands that reach hosts.
func hostCommands(t *testing.T, root *cobra.Command) []*cobra.Command {
	t.Helper()
	var out []*cobra.Command
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Flags().Lookup("inventory") != nil && noHostCommands[c.CommandPath()] == "" {
			out = append(out, c)
		}
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(root)
	if len(out) < 20 {
		t.Fatalf("only %d host commands: the walk is broken", len(out))
	}
	return out
}

// Every command that reaches hosts has the same connection flags: -i for
// --inventory (exec's -i is --interactive, as in docker exec), --ssh-key,
// --known-hosts, --bastion, --bastion-host-key and --connect-timeout, with
// the shared help text (one definition, cli.AddSSHFlags).
func TestEveryHostCommandHasSSHFlags(t *testing.T) {
	root, _ := testRoot(t, nil)
	for _, c := range hostCommands(t, root) {
		path := c.CommandPath()
		inv := c.Flags().Lookup("inventory")
		if want := "i"; path != "belay exec" && inv.Shorthand != want {
			t.Errorf("%s: --inventory has shorthand %q, want -i", path, inv.Shorthand)
		}
		for _, name := range cli.SSHFlagNames {
			f := c.Flags().Lookup(name)
			if f == nil {
				t.Errorf("%s: no --%s", path, name)
				continue
			}
			if !strings.Contains(sharedUsage(t, name), f.Usage) {
				t.Errorf("%s: --%s has its own help %q, want the shared one", path, name, f.Usage)
			}
		}
	}
}

func sharedUsage(t *testing.T, name string) string {
	t.Helper()
	c := &cobra.Command{}
	cli.AddSSHFlags(c, &cli.SSHFlags{}, 0)
	return c.Flags().Lookup(name).Usage
}

// The flags reach the dialer: each host command, given a cloud inventory and
// an impossible --connect-timeout or an unknown --bastion, fails with the
// connection layer's refusal of that value (cli.SSHFlags.CheckTimeout /
// BastionTarget run where the SSH connections are built), not a parse error
// and not silence.
func TestSSHFlagsReachTheDialer(t *testing.T) {
	invFile := cloudInventory(t)
	artifact := filepath.Join(t.TempDir(), "app")
	if err := os.WriteFile(artifact, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	args := map[string][]string{
		"belay audit":            {},
		"belay backup now":       {},
		"belay backup status":    {},
		"belay cells":            {"shop", "--router", "shop-1"},
		"belay deploy":           {"--artifact", artifact, "--release", "v1"},
		"belay drill app-node":   {"--variant", "stop-nginx"},
		"belay drill db-primary": {"--variant", "stop-service"},
		"belay drill restore":    {},
		"belay exec":             {"shop", "--", "true"},
		"belay failover site":    {"--to", "standby", "--yes"},
		"belay lease break":      {"--app", "shop", "--reason", "test"},
		"belay logs":             {"shop"},
		"belay maintenance off":  {"shop"},
		"belay maintenance on":   {"shop"},
		"belay releases":         {},
		"belay rollback":         {},
		"belay shop assign":      {"a.example", "--app", "shop", "--cell", "c1", "--router", "shop-1"},
		"belay shop audit":       {"--app", "shop", "--router", "shop-1"},
		"belay shop certs":       {"--app", "shop", "--router", "shop-1"},
		"belay shop tls":         {"a.example", "on", "--app", "shop", "--router", "shop-1"},
		"belay shop move":        {"a.example", "--app", "shop", "--to", "c2", "--router", "shop-1"},
		"belay status":           {},
		"belay replace":          {"shop-2", "--yes"},
		"belay db resize":        {"--size", "cpx31", "--yes"},
	}
	// Commands that refuse a cloud inventory before connecting; their
	// flags reach opsenv.Open like the others' (same Flags field).
	labOnly := map[string]string{
		"belay converge":   "reads a cloud stack through pulumi (--stack), never an inventory file",
		"belay drill site": "fault injection is lab-only",
		"belay drill cell": "needs an app with cells (this inventory has none)",
		"belay db copy":    "needs a dedicated cell (this inventory has none); the flags reach opsenv.Open through dbcopy.Open",
	}
	root, _ := testRoot(t, nil)
	for _, c := range hostCommands(t, root) {
		path := c.CommandPath()
		if why := labOnly[path]; why != "" {
			continue
		}
		extra, ok := args[path]
		if !ok {
			t.Errorf("%s: no arguments in the table: add it", path)
			continue
		}
		for _, tc := range []struct {
			flags []string
			want  string
		}{
			{[]string{"--connect-timeout", "1ms"}, "--connect-timeout 1ms"},
			{[]string{"--bastion", "nosuch"}, `--bastion "nosuch"`},
		} {
			r, errb := testRoot(t, map[string]string{"HOME": t.TempDir()})
			argv := append(strings.Fields(strings.TrimPrefix(path, "belay ")), "--inventory", invFile)
			argv = append(argv, tc.flags...)
			argv = append(argv, extra...)
			r.SetArgs(argv)
			err := r.Execute()
			if err == nil || !strings.Contains(err.Error()+errb.String(), tc.want) {
				t.Errorf("belay %s: %v (stderr %q): want the connection layer's refusal of %s", strings.Join(argv, " "), err, errb.String(), tc.want)
			}
		}
	}
}

// cloudInventory is the failover test inventory moved to a cloud provider
// (the lab path would use the lab's own keys).
func cloudInventory(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "failover", "testdata", "inventory.json"))
	if err != nil {
		t.Fatal(err)
	}
	var inv map[string]any
	if err := json.Unmarshal(b, &inv); err != nil {
		t.Fatal(err)
	}
	for _, s := range inv["sites"].(map[string]any) {
		s.(map[string]any)["provider"] = "hetzner"
	}
	out, _ := json.Marshal(inv)
	p := filepath.Join(t.TempDir(), "inventory.json")
	if err := os.WriteFile(p, out, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
