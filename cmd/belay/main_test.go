package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/belay-sh/belay/internal/cli"
	"github.com/belay-sh/belay/internal/cli/initcmd"
	"github.com/belay-sh/belay/internal/cli/target"
)

func testRoot(t *testing.T, env map[string]string) (*cobra.Command, *bytes.Buffer) {
	t.Helper()
	return testRootIn(t, t.TempDir(), env)
}

func testRootIn(t *testing.T, dir string, env map[string]string) (*cobra.Command, *bytes.Buffer) {
	t.Helper()
	var out, errb bytes.Buffer
	f := cli.New()
	f.IO = cli.IO{In: &bytes.Buffer{}, Out: &out, ErrOut: &errb}
	f.Getenv = func(k string) string { return env[k] }
	f.Getwd = func() (string, error) { return dir, nil }
	return newRootCmd(f), &errb
}

// A broken belay.yaml fails every command, except init --force (which replaces
// it) and help.
func TestBrokenBelayYAML(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "belay.yaml"), []byte("target: lab\ndefaults:\n  deploy:\n    stepz: 5\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args    []string
		wantErr string
	}{
		{[]string{"status", "--inventory", "lab"}, "belay.yaml:4: defaults.deploy.stepz: belay deploy has no flag --stepz"},
		{[]string{"lab", "status", "--json"}, "defaults.deploy.stepz"},
		{[]string{"help", "deploy"}, ""},
		{[]string{"init", "--lab", "--dir", dir, "--force"}, ""},
		{[]string{"status", "--inventory", "-"}, "inventory"}, // the file is fixed now: the error is about stdin
	} {
		root, _ := testRootIn(t, dir, nil)
		root.SetArgs(tt.args)
		root.SetOut(&bytes.Buffer{})
		err := root.Execute()
		if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("%v: err = %v, want %q", tt.args, err, tt.wantErr)
		}
	}
}

// Every command that reads an inventory also takes --stack, whoever wrote it.
func TestEveryInventoryCommandHasStack(t *testing.T) {
	root, _ := testRoot(t, nil)
	n := 0
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Flags().Lookup("inventory") != nil {
			n++
			if c.Flags().Lookup("stack") == nil {
				t.Errorf("belay %s: --inventory without --stack", c.CommandPath())
			}
		}
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(root)
	if n < 5 {
		t.Fatalf("only %d commands with --inventory: the walk is broken", n)
	}
}

// The defaults `belay init` writes name real commands and flags.
func TestInitDefaultsNameRealFlags(t *testing.T) {
	root, _ := testRoot(t, nil)
	files, err := initcmd.Render(&initcmd.Options{Stack: "acme/prod", App: "shop", NoWorkflow: true,
		WhitelistShops: []string{"a.example"}, WhitelistIPs: []string{"198.51.100.0/24"},
		SSHAccess: "bastion", Bastion: "u@b.example", BastionHostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILMANJ4qj6uGe4pZV0TFAvSORJACth9tw13/F7yvVA8h"})
	if err != nil {
		t.Fatal(err)
	}
	f, err := target.ParseFile("belay.yaml", files[0].Content)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Defaults) == 0 {
		t.Fatal("no defaults rendered for --app")
	}
	if err := f.Check(root); err != nil {
		t.Fatal(err)
	}
	if len(f.Defaults) < 12 {
		t.Fatalf("only %d defaults rendered: %+v", len(f.Defaults), f.Defaults)
	}
}

// Without a target, commands that reach hosts refuse and touch nothing.
func TestCommandsRefuseWithoutTarget(t *testing.T) {
	for _, args := range [][]string{
		{"status"},
		{"rollback", "--abandon"},
		{"releases"},
		{"deploy", "--artifact", "/nonexistent", "--release", "v1", "--inventory", "lab", "--stack", "prod"},
	} {
		root, errb := testRoot(t, nil)
		root.SetArgs(args)
		err := root.Execute()
		var nt *target.NoTargetError
		switch {
		case args[0] == "deploy":
			if err == nil || !bytes.Contains([]byte(err.Error()), []byte("give one target")) {
				t.Errorf("%v: %v, want a refusal of two targets", args, err)
			}
		case errors.As(err, &nt):
			if errb.Len() != 0 {
				t.Errorf("%v printed %q before refusing", args, errb.String())
			}
		default:
			// Commands that report their own failure (rollback writes a job
			// summary) print the refusal themselves and exit non-zero.
			var exit cli.ExitError
			if !errors.As(err, &exit) || !bytes.HasPrefix(errb.Bytes(), []byte("belay: no target: ")) {
				t.Errorf("%v: %v, stderr %q: want the no-target refusal", args, err, errb.String())
			}
		}
	}
}
