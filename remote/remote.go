// Package remote runs the operator commands (drills, site switch, backup
// status) on an inventory's hosts: one strictly verified SSH connection per
// host (the inventory's pinned host key, key auth only), shell commands as the
// deploy user, commands as root through an injected root path (the lab's
// console, or `sudo -n` on a cloud host), and TCP connections opened from a
// host (SSH direct-tcpip), e.g. to reach PostgreSQL, which only admits app servers.
package remote

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/belay-sh/belay/deploy/sshx"
	"github.com/belay-sh/belay/internal/shq"
	"github.com/belay-sh/belay/inventory"
)

// Runner is what the operator commands need from the hosts; tests swap it.
type Runner interface {
	// Run runs a POSIX shell command line as the host's deploy user and returns its stdout.
	Run(ctx context.Context, host, cmd string) ([]byte, error)
	// RunRoot runs argv as root on host (no shell unless argv asks for one).
	RunRoot(ctx context.Context, host string, argv ...string) ([]byte, error)
	// DialTCP opens a TCP connection to addr from host.
	DialTCP(ctx context.Context, host, addr string) (net.Conn, error)
	// Forget drops the cached connection to host (after it was killed or cut).
	Forget(host string)
}

// RootFunc runs argv as root on host.
type RootFunc func(ctx context.Context, host string, argv ...string) ([]byte, error)

// Hosts is the SSH implementation of Runner.
type Hosts struct {
	Inv  *inventory.Inventory
	Auth []ssh.AuthMethod
	// Root runs commands as root; nil means `sudo -n` over SSH (the host's
	// sudoers must allow the exact command, see docs/runbook.md).
	Root RootFunc
	// DialTimeout bounds TCP connect plus handshake (default 5 s).
	DialTimeout time.Duration

	mu    sync.Mutex
	conns map[string]*ssh.Client
}

var _ Runner = (*Hosts)(nil)

func (h *Hosts) client(ctx context.Context, name string) (*ssh.Client, error) {
	h.mu.Lock()
	if c := h.conns[name]; c != nil {
		h.mu.Unlock()
		return c, nil
	}
	h.mu.Unlock()
	host := h.Inv.Host(name)
	if host == nil {
		return nil, fmt.Errorf("host %q is not in the inventory of stack %s", name, h.Inv.Stack)
	}
	key, err := host.HostPublicKey()
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort(host.SSHAddress, strconv.Itoa(host.SSHPort))
	t := sshx.Target{Name: name, Addr: addr, User: host.DeployUser, HostKeys: []ssh.PublicKey{key}}
	cb, err := sshx.HostKeyCallback(t, nil)
	if err != nil {
		return nil, err
	}
	timeout := h.DialTimeout
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	cfg := &ssh.ClientConfig{User: host.DeployUser, Auth: h.Auth, HostKeyCallback: cb, HostKeyAlgorithms: sshx.HostKeyAlgorithms(key), Timeout: timeout}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(dctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("host %s: dial %s: %w", name, addr, err)
	}
	_ = conn.SetDeadline(time.Now().Add(timeout))
	cc, chans, reqs, err := ssh.NewClientConn(conn, addr, cfg)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("host %s: ssh %s@%s: %w", name, host.DeployUser, addr, err)
	}
	_ = conn.SetDeadline(time.Time{})
	c := ssh.NewClient(cc, chans, reqs)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.conns == nil {
		h.conns = map[string]*ssh.Client{}
	}
	if old := h.conns[name]; old != nil {
		c.Close()
		return old, nil
	}
	h.conns[name] = c
	return c, nil
}

// Run runs cmd as the deploy user. A dead connection is dropped so the next call redials.
func (h *Hosts) Run(ctx context.Context, host, cmd string) ([]byte, error) {
	return h.RunInput(ctx, host, cmd, nil)
}

// RunRoot runs argv as root through h.Root, else `sudo -n` over SSH.
func (h *Hosts) RunRoot(ctx context.Context, host string, argv ...string) ([]byte, error) {
	if h.Root != nil {
		return h.Root(ctx, host, argv...)
	}
	return h.Run(ctx, host, SudoCommand(argv))
}

// SudoCommand is argv quoted for the remote shell behind `sudo -n` (never prompts).
func SudoCommand(argv []string) string {
	return "sudo -n " + shq.Join(argv...)
}

// DialTCP opens addr from host through an SSH direct-tcpip channel.
func (h *Hosts) DialTCP(ctx context.Context, host, addr string) (net.Conn, error) {
	c, err := h.client(ctx, host)
	if err != nil {
		return nil, err
	}
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		conn, err := c.Dial("tcp", addr)
		ch <- res{conn, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			// A refused channel (the host could not connect) leaves the SSH
			// connection fine; anything else means it died: redial next time.
			var oce *ssh.OpenChannelError
			if !errors.As(r.err, &oce) {
				h.Forget(host)
			}
			return nil, fmt.Errorf("host %s: tunnel to %s: %w", host, addr, r.err)
		}
		return r.c, nil
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.c != nil {
				r.c.Close()
			}
		}()
		return nil, fmt.Errorf("host %s: tunnel to %s: %w", host, addr, ctx.Err())
	}
}

// Forget closes and drops host's connection.
func (h *Hosts) Forget(host string) {
	h.mu.Lock()
	c := h.conns[host]
	delete(h.conns, host)
	h.mu.Unlock()
	if c != nil {
		go c.Close() // closing a connection to a dead host may block
	}
}

// Close closes every connection.
func (h *Hosts) Close() {
	h.mu.Lock()
	conns := h.conns
	h.conns = nil
	h.mu.Unlock()
	for _, c := range conns {
		go c.Close()
	}
}

// Summarize shortens a command for messages.
func Summarize(cmd string) string {
	cmd = strings.Join(strings.Fields(cmd), " ")
	if len(cmd) > 120 {
		return cmd[:117] + "..."
	}
	return cmd
}
