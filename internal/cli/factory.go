// Package cli holds what every belay subcommand shares: IO streams, output mode,
// and how the target (the inventory a command acts on) is found: see Prepare
// and internal/cli/target. Subcommands live in internal/cli/<group> and
// follow gh's pattern: an Options struct with injected dependencies, flags parsed
// into it, and a run function that knows nothing about cobra.
package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"

	"github.com/belay-sh/belay/internal/cli/target"
	"github.com/belay-sh/belay/inventory"
)

// IO is the streams a command writes to.
type IO struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer
}

// Factory is shared by every command; tests build one with buffers.
type Factory struct {
	IO IO
	// Inventory loads the inventory named by --inventory (file, "-", or
	// "pulumi:<stack>"), which Prepare fills with the resolved target. In
	// production it is LoadTarget: "" refuses, and the target is announced.
	Inventory func(ref string) (*inventory.Inventory, error)
	// Getenv is os.Getenv, injectable for tests (GITHUB_ACTIONS, GITHUB_STEP_SUMMARY, ...).
	Getenv func(string) string
	// Getwd is os.Getwd: where the search for belay.yaml starts.
	Getwd func() (string, error)
	// Target is the command's target once Prepare resolved it (nil: none);
	// LoadTarget adds the host count.
	Target *target.Target
	// File is the belay.yaml Prepare found, nil if none.
	File *target.File

	announced string // the ref whose target line was printed
}

// DefaultInventory is where `belay lab up` writes the lab's inventory. It is
// never a command's default: the lab is a target only when named ("lab").
const DefaultInventory = target.LabInventory

// InventoryUsage is the help of every command's --inventory flag.
const InventoryUsage = `target: inventory file, "-" for stdin, pulumi:<stack>, or lab (default: --stack, $` + target.EnvVar + `, or target: in the nearest belay.yaml)`

// New returns the production factory.
func New() *Factory {
	f := &Factory{
		Getenv: os.Getenv,
		Getwd:  os.Getwd,
	}
	// stdout knows the target so PrintJSON can add it to every --json document.
	f.IO = IO{In: os.Stdin, Out: &targetWriter{Writer: os.Stdout, f: f}, ErrOut: os.Stderr}
	f.Inventory = f.LoadTarget
	return f
}

// LoadTarget is the production inventory loader: it refuses an empty ref
// (no target), loads the inventory and prints the target as the command's
// first line on stderr, e.g. "target: stack prod (pulumi), 14 hosts (from
// /src/shop/belay.yaml)".
func (f *Factory) LoadTarget(ref string) (*inventory.Inventory, error) {
	if ref == "" {
		e := &target.NoTargetError{}
		if f.File != nil {
			e.File = f.File.Path
		}
		return nil, e
	}
	t := f.Target
	if t == nil || t.Ref != ref {
		// Not resolved by Prepare (a caller that sets the ref itself).
		parsed, err := target.Parse(ref, "--inventory", "")
		if err != nil {
			return nil, err
		}
		t = &parsed
	}
	inv, err := LoadInventory(t.Ref)
	if err != nil {
		if t.Kind == target.KindLab && errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("target lab: %w (is the lab up? belay lab up)", err)
		}
		return nil, err
	}
	t.Hosts = len(inv.Hosts)
	f.Target = t
	// Once per command, even if it reads the inventory again.
	if f.announced != t.Ref {
		f.announced = t.Ref
		fmt.Fprintf(f.IO.ErrOut, "target: %s (from %s)\n", t, t.Source)
	}
	return inv, nil
}

// LoadInventory reads an inventory from a file, "-" (stdin), or "pulumi:<stack>",
// which runs `pulumi stack output inventory --json --show-secrets=false`.
func LoadInventory(ref string) (*inventory.Inventory, error) {
	if ref == target.Lab {
		ref = target.LabInventory
	}
	const prefix = "pulumi:"
	if len(ref) > len(prefix) && ref[:len(prefix)] == prefix {
		stack := ref[len(prefix):]
		out, err := exec.Command("pulumi", "stack", "output", "inventory", "--json", "--stack", stack).Output()
		if err != nil {
			var ee *exec.ExitError
			if ok := asExit(err, &ee); ok {
				return nil, fmt.Errorf("pulumi stack output inventory --stack %s: %w: %s", stack, err, ee.Stderr)
			}
			return nil, fmt.Errorf("pulumi stack output inventory --stack %s: %w", stack, err)
		}
		inv, err := inventory.Parse(out)
		if err != nil {
			return nil, fmt.Errorf("inventory from stack %s: %w", stack, err)
		}
		return inv, nil
	}
	return inventory.Load(ref)
}

func asExit(err error, target **exec.ExitError) bool {
	e, ok := err.(*exec.ExitError)
	if ok {
		*target = e
	}
	return ok
}

// PrintJSON writes v as indented JSON: the --json output every command shares.
// On the production stdout, an object gets the command's target as its first
// key, "target" (see withTarget).
func PrintJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, withTarget(w, b), "", "  "); err != nil {
		return err
	}
	out.WriteByte('\n')
	_, err = w.Write(out.Bytes())
	return err
}

// ExitError ends the command with Code after the command has printed its own message.
type ExitError struct{ Code int }

func (e ExitError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

// Printer is a plan a command shows before performing it.
type Printer interface{ Print(io.Writer) error }

// PreviewPlan shows p (as JSON with asJSON) when a command is not going to
// perform it: dryRun, or no --yes (then it says so on ErrOut). It reports
// whether the command stops here, having changed nothing.
func PreviewPlan(s IO, p Printer, asJSON, dryRun, yes bool) (stop bool, err error) {
	if !dryRun && yes {
		return false, nil
	}
	if asJSON {
		err = PrintJSON(s.Out, p)
	} else {
		err = p.Print(s.Out)
	}
	if err == nil && !dryRun {
		fmt.Fprintln(s.ErrOut, "nothing changed: add --yes to perform it")
	}
	return true, err
}
