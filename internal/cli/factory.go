// Package cli holds what every belay subcommand shares: IO streams, output mode,
// and how the inventory is found. Subcommands live in internal/cli/<group> and
// follow gh's pattern: an Options struct with injected dependencies, flags parsed
// into it, and a run function that knows nothing about cobra.
package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"

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
	// Inventory loads the inventory named by --inventory (file, "-", or "pulumi:<stack>").
	Inventory func(ref string) (*inventory.Inventory, error)
	// Getenv is os.Getenv, injectable for tests (GITHUB_ACTIONS, GITHUB_STEP_SUMMARY, ...).
	Getenv func(string) string
}

// DefaultInventory is where `belay lab up` writes the lab's inventory and where
// every command looks when --inventory is not given.
const DefaultInventory = "/var/lib/belay/lab/inventory.json"

// New returns the production factory.
func New() *Factory {
	return &Factory{
		IO:        IO{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr},
		Inventory: LoadInventory,
		Getenv:    os.Getenv,
	}
}

// LoadInventory reads an inventory from a file, "-" (stdin), or "pulumi:<stack>",
// which runs `pulumi stack output inventory --json --show-secrets=false`.
func LoadInventory(ref string) (*inventory.Inventory, error) {
	if ref == "" {
		ref = DefaultInventory
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
func PrintJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// ExitError ends the command with Code after the command has printed its own message.
type ExitError struct{ Code int }

func (e ExitError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }
