// Package target decides which hosts a belay command acts on. The target comes
// from, in this order: --inventory, --stack, $BELAY_INVENTORY, then the
// `target:` of the nearest belay.yaml (searched from the working directory
// upwards, like git finds .git). There is no fallback: a command that reaches
// hosts without a target refuses, and the local lab is used only when named
// ("lab"), so a command meant for the lab can never land on production or the
// other way round.
package target

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
)

// EnvVar names the environment variable that picks the target.
const EnvVar = "BELAY_INVENTORY"

// Lab is the name that selects the local lab.
const Lab = "lab"

// LabInventory is where `belay lab up` writes the lab's inventory.
const LabInventory = "/var/lib/belay/lab/inventory.json"

// Kind is what sort of target it is.
type Kind string

// The kinds of target.
const (
	KindLab    Kind = "lab"
	KindPulumi Kind = "pulumi"
	KindFile   Kind = "file"
	KindStdin  Kind = "stdin"
)

// Target is a resolved target: what the inventory loader reads and where the
// choice came from (shown to the user on every command's first line).
type Target struct {
	Kind Kind `json:"kind"`
	// Name is the stack name, the inventory file or "lab".
	Name string `json:"name"`
	// Ref is what the inventory loader reads: a file, "-" or "pulumi:<stack>".
	Ref string `json:"ref"`
	// Source is "--inventory", "--stack", "BELAY_INVENTORY" or the belay.yaml path.
	Source string `json:"source"`
	// Hosts is the number of hosts in the inventory, once loaded.
	Hosts int `json:"hosts"`
}

// Parse reads a target reference: "lab", "-", "pulumi:<stack>" or an inventory
// file (relative to baseDir when baseDir is set: a belay.yaml's directory).
func Parse(ref, source, baseDir string) (Target, error) {
	t := Target{Source: source}
	switch {
	case strings.TrimSpace(ref) == "":
		return t, fmt.Errorf("%s: empty, expected lab, pulumi:<stack> or an inventory file", source)
	case ref == Lab:
		t.Kind, t.Name, t.Ref = KindLab, Lab, LabInventory
	case ref == "-":
		t.Kind, t.Name, t.Ref = KindStdin, "-", "-"
	case strings.HasPrefix(ref, "pulumi:"):
		stack := strings.TrimPrefix(ref, "pulumi:")
		if err := checkStack(stack); err != nil {
			return t, fmt.Errorf("%s %q: %w", source, ref, err)
		}
		t.Kind, t.Name, t.Ref = KindPulumi, stack, ref
	default:
		p := ref
		if baseDir != "" && !filepath.IsAbs(p) {
			p = filepath.Join(baseDir, p)
		}
		p = filepath.Clean(p)
		t.Kind, t.Name, t.Ref = KindFile, p, p
		if p == LabInventory {
			t.Kind, t.Name = KindLab, Lab // the lab named by its path is still the lab
		}
	}
	return t, nil
}

// checkStack accepts what `pulumi stack select` does: [org/[project/]]stack,
// with no blanks (the name reaches a command line and the job summary).
func checkStack(s string) error {
	if s == "" {
		return errors.New("empty stack name, expected pulumi:<stack> or pulumi:<org>/<stack>")
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./", r)) {
			return fmt.Errorf("stack name %q: character %q, expected letters, digits, - _ . /", s, r)
		}
	}
	if strings.Count(s, "/") > 2 || strings.HasPrefix(s, "/") || strings.HasSuffix(s, "/") {
		return fmt.Errorf("stack name %q: expected stack, org/stack or org/project/stack", s)
	}
	return nil
}

// Inputs are the places a target can come from.
type Inputs struct {
	// Inventory is --inventory, InventorySet whether the user gave it.
	Inventory    string
	InventorySet bool
	// Stack is --stack, StackSet whether the user gave it.
	Stack    string
	StackSet bool
	// Env is $BELAY_INVENTORY.
	Env string
	// File is the nearest belay.yaml, nil if none.
	File *File
}

// Resolve picks the target by precedence: --inventory, --stack,
// $BELAY_INVENTORY, belay.yaml. ok is false when nothing names one.
func Resolve(in Inputs) (t Target, ok bool, err error) {
	switch {
	case in.InventorySet && in.StackSet:
		return t, false, errors.New("--inventory and --stack: give one target, not both")
	case in.InventorySet:
		t, err = Parse(in.Inventory, "--inventory", "")
	case in.StackSet:
		if err := checkStack(in.Stack); err != nil {
			return t, false, fmt.Errorf("--stack: %w", err)
		}
		t, err = Parse("pulumi:"+in.Stack, "--stack", "")
	case in.Env != "":
		t, err = Parse(in.Env, EnvVar, "")
	case in.File != nil && in.File.Target != "":
		t, err = Parse(in.File.Target, in.File.Path, filepath.Dir(in.File.Path))
		if err != nil {
			err = fmt.Errorf("%s: target: %w", in.File.Path, err)
		}
	default:
		return t, false, nil
	}
	return t, err == nil, err
}

// String is the target as every command's first line shows it, e.g.
// "stack prod (pulumi), 14 hosts".
func (t Target) String() string {
	var what string
	switch t.Kind {
	case KindLab:
		what = "lab"
	case KindPulumi:
		what = "stack " + t.Name + " (pulumi)"
	case KindStdin:
		what = "inventory from stdin"
	default:
		what = "inventory " + t.Name
	}
	n := "hosts"
	if t.Hosts == 1 {
		n = "host"
	}
	return fmt.Sprintf("%s, %d %s", what, t.Hosts, n)
}

// NoTargetError is the refusal of a command that would reach hosts without a
// target. It says how to pick one.
type NoTargetError struct {
	// File is a belay.yaml found without a target, "" if none was found.
	File string
}

func (e *NoTargetError) Error() string {
	why := "no target: no --inventory or --stack, no " + EnvVar + ", and no " + FileName + " here or in a parent directory"
	if e.File != "" {
		why = "no target: " + e.File + " has no `target:` and neither --inventory, --stack nor " + EnvVar + " is set"
	}
	return why + `.
belay does not guess which hosts to act on. Pick one:
  belay init --stack <stack>                  writes belay.yaml (found from any subdirectory)
  --stack <stack> or --inventory <file>       for one command
  ` + EnvVar + `=pulumi:<stack>|<file>|lab   for a shell or a CI job
The local lab is a target like any other: --inventory lab or ` + EnvVar + `=lab.`
}
