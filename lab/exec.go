package lab

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// Cmd is one host command as data: built by pure functions (so a plan can be
// tested and printed) and run by a Runner.
type Cmd struct {
	Argv []string
	// IgnoreFail marks teardown steps whose failure only means "already gone".
	IgnoreFail bool
}

func (c Cmd) String() string { return strings.Join(c.Argv, " ") }

// Runner executes host commands; tests and dry runs swap it.
type Runner interface {
	Run(ctx context.Context, c Cmd) ([]byte, error)
}

// ExecRunner runs commands on this host with os/exec.
type ExecRunner struct{}

// Run executes c and returns its stdout; a failure carries the command's stderr.
func (ExecRunner) Run(ctx context.Context, c Cmd) ([]byte, error) {
	if len(c.Argv) == 0 {
		return nil, fmt.Errorf("lab: empty command")
	}
	cmd := exec.CommandContext(ctx, c.Argv[0], c.Argv[1:]...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if c.IgnoreFail {
			return stdout.Bytes(), nil
		}
		return stdout.Bytes(), fmt.Errorf("%s: %w: %s", c, err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// runAll runs cmds in order and stops at the first failure.
func runAll(ctx context.Context, r Runner, cmds []Cmd) error {
	for _, c := range cmds {
		if _, err := r.Run(ctx, c); err != nil {
			return err
		}
	}
	return nil
}

func cmd(argv ...string) Cmd { return Cmd{Argv: argv} }

func tryCmd(argv ...string) Cmd { return Cmd{Argv: argv, IgnoreFail: true} }
