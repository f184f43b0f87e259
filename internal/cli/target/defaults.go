package target

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Check verifies that every default names a command under root and one of
// that command's flags: a key that would do nothing is an error, not a silent
// no-op. It reads the flags through cobra, so a flag any command grows is
// accepted with no change here.
func (f *File) Check(root *cobra.Command) error {
	for _, d := range f.Defaults {
		cmd := findCommand(root, d.Command)
		if cmd == nil {
			return fmt.Errorf("%s:%d: %s: belay has no command %q (commands: %s; a subcommand is written \"backup status\")", f.Path, d.Line, d.Key(), d.Command, strings.Join(commandNames(root), ", "))
		}
		if err := checkFlag(cmd, d.Flag); err != nil {
			return fmt.Errorf("%s:%d: %s: %w", f.Path, d.Line, d.Key(), err)
		}
	}
	return nil
}

// checkFlag refuses flags that are not the command's, and those a default
// must not set: the target has its own key, and help is not a setting.
func checkFlag(cmd *cobra.Command, name string) error {
	switch {
	case name == "help":
		return fmt.Errorf("--help is not a setting")
	case name == "inventory" || name == "stack" && lookup(cmd, "inventory") != nil:
		return fmt.Errorf("the target is set by the top-level `target:` key, not per command")
	case lookup(cmd, name) == nil:
		return fmt.Errorf("belay %s has no flag --%s (see belay %[1]s --help)", commandKey(cmd), name)
	}
	return nil
}

// Apply sets the flags of cmd (the command about to run) that the user did not
// give from the defaults for it. It returns the keys it applied.
func (f *File) Apply(cmd *cobra.Command) ([]string, error) {
	path := commandKey(cmd)
	var applied []string
	for _, d := range f.Defaults {
		if d.Command != path {
			continue
		}
		if err := checkFlag(cmd, d.Flag); err != nil {
			return nil, fmt.Errorf("%s:%d: %s: %w", f.Path, d.Line, d.Key(), err)
		}
		if fl := lookup(cmd, d.Flag); fl.Changed {
			continue // the command line wins
		}
		if err := cmd.Flags().Set(d.Flag, d.Value); err != nil {
			return nil, fmt.Errorf("%s:%d: %s: %q: %w", f.Path, d.Line, d.Key(), d.Value, err)
		}
		applied = append(applied, d.Key())
	}
	return applied, nil
}

// lookup finds a flag of cmd, its own or inherited from a parent.
func lookup(cmd *cobra.Command, name string) *pflag.Flag {
	if fl := cmd.Flags().Lookup(name); fl != nil {
		return fl
	}
	return cmd.InheritedFlags().Lookup(name)
}

// commandKey is cmd's path without the root's name: "deploy", "backup status".
func commandKey(cmd *cobra.Command) string {
	var parts []string
	for c := cmd; c.HasParent(); c = c.Parent() {
		parts = append([]string{c.Name()}, parts...)
	}
	return strings.Join(parts, " ")
}

// findCommand walks root by name (not alias: the key should read like the
// command the user types in docs) and returns nil when a word is not a command.
func findCommand(root *cobra.Command, path string) *cobra.Command {
	cmd := root
	for _, w := range strings.Fields(path) {
		var next *cobra.Command
		for _, c := range cmd.Commands() {
			if c.Name() == w {
				next = c
				break
			}
		}
		if next == nil {
			return nil
		}
		cmd = next
	}
	if cmd == root {
		return nil
	}
	return cmd
}

func commandNames(root *cobra.Command) []string {
	var out []string
	for _, c := range root.Commands() {
		if c.IsAvailableCommand() {
			out = append(out, c.Name())
		}
	}
	return out
}
