package replace

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/belay-sh/belay/deploy"
	"github.com/belay-sh/belay/deploy/lease"
	"github.com/belay-sh/belay/internal/cli"
	convergecli "github.com/belay-sh/belay/internal/cli/converge"
	"github.com/belay-sh/belay/internal/opsenv"
	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/lab"
	"github.com/belay-sh/belay/remote"
	"github.com/belay-sh/belay/replace"
	"github.com/belay-sh/belay/roles"
)

// target is the production Conn: opsenv's SSH hosts and leases.
type target struct {
	t      *opsenv.Target
	getenv func(string) string
}

// Open opens inv's hosts (opsenv.Open).
func Open(inv *inventory.Inventory, fl opsenv.Flags, getenv func(string) string) (Conn, error) {
	t, err := opsenv.Open(inv, fl, getenv)
	if err != nil {
		return nil, err
	}
	return &target{t: t, getenv: getenv}, nil
}

func (c *target) Runner() remote.Runner { return c.t.Runner() }
func (c *target) Plain() remote.Runner  { return c.t.Hosts }
func (c *target) Lab() bool             { return c.t.Lab }
func (c *target) Close()                { c.t.Close() }

// SetInventory swaps the inventory the SSH connections resolve hosts in
// (between steps: nothing connects meanwhile).
func (c *target) SetInventory(inv *inventory.Inventory) { c.t.Hosts.Inv, c.t.Inv = inv, inv }

func (c *target) Hold(ctx context.Context, apps []string, action string, progress io.Writer) (context.Context, func(), error) {
	return c.t.HoldLeases(ctx, opsenv.LeaseOptions{Apps: apps, Action: action, Actor: deploy.CurrentActor(c.getenv),
		LockDir: lease.DefaultLockDir(c.getenv), Progress: progress})
}

// Wire picks the replacer, resizer and converger of the target: the lab's
// `belay lab replace` and converge, or targeted Pulumi runs on a cloud stack.
func Wire(o *Options, inv *inventory.Inventory, c Conn, _ []string) (replace.Replacer, replace.Resizer, replace.Converger, error) {
	if c.Lab() {
		self, err := os.Executable()
		if err != nil {
			return nil, nil, nil, fmt.Errorf("belay lab replace: finding this binary: %w", err)
		}
		// LabReplacer runs `belay lab replace HOST`; the lead connects the
		// lab package's function here once it is merged.
		return replace.LabReplacer{Call: replace.ExecLab(self, ExecCommand(o.IO.ErrOut))}, nil, labConverger(o, inv), nil
	}
	stack := o.PulumiStack
	if stack == "" {
		stack = inv.Stack
	}
	p := &replace.Pulumi{Stack: stack, Dir: o.PulumiDir, Run: ExecCommand(nil), Progress: o.IO.ErrOut}
	// A replaced cloud server boots from user data the program rendered from
	// the current config (ignoreChanges only spares running servers), so it
	// is converged already (belay converge --stack is for the servers that
	// keep running).
	conv := replace.ConvergeFunc(func(_ context.Context, host string) error {
		fmt.Fprintf(o.IO.ErrOut, "  %s booted from user data rendered from the current stack config: nothing to converge\n", host)
		return nil
	})
	return p, p, conv, nil
}

// ExecCommand runs argv with its stdout returned (and streamed to w if not
// nil for commands whose output is progress) and stderr in the error.
func ExecCommand(w io.Writer) replace.CommandRunner {
	return func(ctx context.Context, dir string, argv ...string) ([]byte, error) {
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Dir = dir
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if w != nil {
			cmd.Stdout = io.MultiWriter(&out, w)
			cmd.Stderr = io.MultiWriter(&errb, w)
		}
		if err := cmd.Run(); err != nil {
			return out.Bytes(), fmt.Errorf("%w: %s", err, strings.TrimSpace(lastLines(errb.String(), 20)))
		}
		return out.Bytes(), nil
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// labConverger converges one lab host in process (belay converge limited to
// it): the replacement holds the leases already, so converge takes none.
func labConverger(o *Options, inv *inventory.Inventory) replace.Converger {
	return replace.ConvergeFunc(func(ctx context.Context, host string) error {
		co := &convergecli.Options{
			IO: cli.IO{Out: o.IO.ErrOut, ErrOut: o.IO.ErrOut}, Getenv: o.Getenv,
			Inventory:    func(string) (*inventory.Inventory, error) { return inv, nil },
			InventoryRef: o.InventoryRef, StackFile: o.StackFile, Apps: o.Apps, LabPaths: lab.DefaultPaths, Parallel: 1, Now: time.Now,
			Source: func(ctx context.Context, co *convergecli.Options) (*convergecli.Source, error) {
				src, err := convergecli.LoadSource(ctx, co)
				if err != nil {
					return nil, err
				}
				return onlyHost(src, host)
			},
			Connect: func(inv *inventory.Inventory) (convergecli.Runner, func(), error) {
				t, err := opsenv.Open(inv, o.Conn, o.Getenv)
				if err != nil {
					return nil, nil, err
				}
				return t.Hosts, t.Close, nil
			},
			Hold: func(ctx context.Context, _ remote.Runner, _ *inventory.Inventory, _ io.Writer) (context.Context, func(), error) {
				return ctx, func() {}, nil
			},
		}
		err := convergecli.Run(ctx, co)
		var exit cli.ExitError
		if errors.As(err, &exit) {
			return fmt.Errorf("belay converge of %s failed (see above)", host)
		}
		return err
	})
}

// onlyHost narrows a converge source to one host.
func onlyHost(src *convergecli.Source, host string) (*convergecli.Source, error) {
	spec := src.Specs[host]
	h := src.Inv.Host(host)
	if spec == nil || h == nil {
		return nil, fmt.Errorf("converge: %s is not in both the stack config and the inventory", host)
	}
	inv := *src.Inv
	inv.Hosts = []inventory.Host{*h}
	out := *src
	out.Inv = &inv
	out.Specs = map[string]*roles.Spec{host: spec}
	out.Order = []string{host}
	return &out, nil
}
