package lab

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"time"
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
	killGroupOnCancel(cmd)
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

// killGroupOnCancel makes a cancelled context end cmd and everything it
// started, and makes Wait return. Why: most lab commands are `nsenter ...`,
// which forks the command inside the machine; the context kills only nsenter,
// the forked child keeps the stdout pipe open, and Run would wait on the pipe
// for ever (CI hit the 30-minute package timeout on a `cloud-init status
// --wait` whose 6-minute bound had fired). The child stays in nsenter's
// process group across setns, so killing the group reaches it; WaitDelay
// bounds the wait for pipes a daemonised grandchild might still hold.
func killGroupOnCancel(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
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
