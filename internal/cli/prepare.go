package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/belay-sh/belay/internal/cli/target"
)

// AddTargetFlags gives every command that has --inventory a --stack flag too.
// It runs once on the finished command tree, so commands added by any group
// get it without code of their own.
func AddTargetFlags(root *cobra.Command) {
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Flags().Lookup("inventory") != nil && c.Flags().Lookup("stack") == nil {
			c.Flags().String("stack", "", "target: the Pulumi stack to act on (same as --inventory pulumi:STACK)")
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// Prepare runs before every command (the root's PersistentPreRunE): it reads
// the nearest belay.yaml, checks its keys against the command tree, applies its
// defaults to the flags the user did not set, and, for a command with
// --inventory, resolves the target and writes it into that flag, so the
// command's own InventoryRef is the resolved one. With no target the flag is
// left empty and LoadTarget refuses when the command reaches for hosts.
func (f *Factory) Prepare(root, cmd *cobra.Command) error {
	if skipsProjectFile(cmd) {
		return nil
	}
	wd, err := f.Getwd()
	if err != nil {
		return fmt.Errorf("working directory: %w", err)
	}
	file, err := target.Find(wd)
	if err != nil {
		return err
	}
	f.File = file
	if file != nil {
		if err := file.Check(root); err != nil {
			return err
		}
		if _, err := file.Apply(cmd); err != nil {
			return err
		}
	}
	inv := cmd.Flags().Lookup("inventory")
	if inv == nil {
		return nil // the command does not read an inventory
	}
	in := target.Inputs{Inventory: inv.Value.String(), InventorySet: inv.Changed, Env: f.Getenv(target.EnvVar), File: file}
	if st := cmd.Flags().Lookup("stack"); st != nil {
		in.Stack, in.StackSet = st.Value.String(), st.Changed
	}
	t, ok, err := target.Resolve(in)
	if err != nil {
		return err
	}
	ref := ""
	if ok {
		f.Target = &t
		ref = t.Ref
	}
	// Also when !ok: a flag default (say the lab's path) must not become a target.
	if err := inv.Value.Set(ref); err != nil {
		return fmt.Errorf("--inventory: %w", err)
	}
	return nil
}

// NoProjectFile is the annotation of a command that must not read belay.yaml:
// `belay init`, which has to be able to replace a broken one (--force).
const NoProjectFile = "belay/no-project-file"

// skipsProjectFile is true for init and cobra's own help and completion
// commands, which must work whatever belay.yaml holds.
func skipsProjectFile(cmd *cobra.Command) bool {
	for c := cmd; c != nil; c = c.Parent() {
		if c.Annotations[NoProjectFile] == "true" {
			return true
		}
		switch c.Name() {
		case "help", cobra.ShellCompRequestCmd, cobra.ShellCompNoDescRequestCmd:
			return c.HasParent() && !c.Parent().HasParent()
		case "completion":
			if c.HasParent() && !c.Parent().HasParent() {
				return true
			}
		}
	}
	return false
}

// targetWriter is the production stdout: it carries the factory so PrintJSON
// can add the resolved target to a command's --json document without every
// command (they change in parallel) threading it through.
type targetWriter struct {
	io.Writer
	f *Factory
}

// withTarget adds "target" as the first key of a JSON object when w is the
// production stdout and a target was loaded. Arrays and documents that already
// have a "target" key are left as they are.
func withTarget(w io.Writer, doc []byte) []byte {
	tw, ok := w.(*targetWriter)
	if !ok || tw.f.Target == nil {
		return doc
	}
	trimmed := bytes.TrimSpace(doc)
	if len(trimmed) < 2 || trimmed[0] != '{' {
		return doc
	}
	var keys map[string]json.RawMessage
	if json.Unmarshal(trimmed, &keys) != nil {
		return doc
	}
	if _, has := keys["target"]; has {
		return doc
	}
	t, err := json.Marshal(tw.f.Target)
	if err != nil {
		return doc
	}
	rest := bytes.TrimSpace(trimmed[1:])
	out := append([]byte(`{"target":`), t...)
	if len(rest) > 0 && rest[0] != '}' {
		out = append(out, ',')
	}
	return append(out, rest...)
}
