// Package remotetest is a scripted remote.Runner for unit tests: it records
// every command and answers from a handler, without any network.
package remotetest

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"

	"github.com/belay-sh/belay/remote"
)

// Call is one recorded command.
type Call struct {
	Host string
	Root bool
	Cmd  string
}

func (c Call) String() string {
	who := "deploy"
	if c.Root {
		who = "root"
	}
	return c.Host + " (" + who + "): " + c.Cmd
}

// Runner answers commands with Handle (nil = empty output, success).
type Runner struct {
	Handle func(c Call) ([]byte, error)
	mu     sync.Mutex
	Calls  []Call
	Forgot []string
}

var _ remote.Runner = (*Runner)(nil)

func (r *Runner) do(c Call) ([]byte, error) {
	r.mu.Lock()
	r.Calls = append(r.Calls, c)
	r.mu.Unlock()
	if r.Handle == nil {
		return nil, nil
	}
	return r.Handle(c)
}

// Run records a deploy-user command.
func (r *Runner) Run(ctx context.Context, host, cmd string) ([]byte, error) {
	return r.do(Call{Host: host, Cmd: cmd})
}

// RunRoot records a root command (argv joined by spaces).
func (r *Runner) RunRoot(ctx context.Context, host string, argv ...string) ([]byte, error) {
	return r.do(Call{Host: host, Root: true, Cmd: strings.Join(argv, " ")})
}

// DialTCP is not scripted: tests of tunnels use the lab.
func (r *Runner) DialTCP(ctx context.Context, host, addr string) (net.Conn, error) {
	return nil, errors.New("remotetest: no tunnels")
}

// Forget records the host.
func (r *Runner) Forget(host string) {
	r.mu.Lock()
	r.Forgot = append(r.Forgot, host)
	r.mu.Unlock()
}

// Snapshot returns the calls so far.
func (r *Runner) Snapshot() []Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Call(nil), r.Calls...)
}
