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
	// DialTimeout bounds TCP connect plus handshake (default 5 s), per hop.
	DialTimeout time.Duration
	// Bastion, if set, is the jump host every other host is reached through
	// (an SSH direct-tcpip channel, as ProxyJump); its own key is verified
	// like any host's. A host of the inventory named like it is dialled directly.
	Bastion *sshx.Target
	// KnownHostsFiles verify a bastion with no pinned key (see sshx.HostKeyCallback).
	KnownHostsFiles []string

	mu      sync.Mutex
	conns   map[string]*ssh.Client
	bastion *ssh.Client
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
	var via *ssh.Client
	if h.Bastion != nil && h.Bastion.Name != name {
		if via, err = h.bastionClient(ctx); err != nil {
			return nil, fmt.Errorf("host %s: via %s: %w", name, h.Bastion.Name, err)
		}
	}
	c, err := h.dial(ctx, t, via)
	if err != nil {
		if via != nil && !alive(via) {
			// A dead bastion fails every host: redial it next time. A live one
			// stays: other hosts' connections run through it.
			h.forgetBastion(via)
		}
		return nil, err
	}
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

// dial connects to t directly, or through via (a bastion connection).
func (h *Hosts) dial(ctx context.Context, t sshx.Target, via *ssh.Client) (*ssh.Client, error) {
	cb, err := sshx.HostKeyCallback(t, h.KnownHostsFiles)
	if err != nil {
		return nil, err
	}
	timeout := h.DialTimeout
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	cfg := &ssh.ClientConfig{User: t.User, Auth: h.Auth, HostKeyCallback: cb, Timeout: timeout}
	for _, k := range t.HostKeys {
		cfg.HostKeyAlgorithms = append(cfg.HostKeyAlgorithms, sshx.HostKeyAlgorithms(k)...)
	}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := sshx.DialVia(dctx, via, t.Addr)
	if err != nil {
		if via != nil {
			return nil, fmt.Errorf("host %s: dial %s through the bastion: %w", t.Name, t.Addr, err)
		}
		return nil, fmt.Errorf("host %s: dial %s: %w", t.Name, t.Addr, err)
	}
	_ = conn.SetDeadline(time.Now().Add(timeout))
	cc, chans, reqs, err := ssh.NewClientConn(conn, t.Addr, cfg)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("host %s: ssh %s@%s: %w", t.Name, t.User, t.Addr, err)
	}
	_ = conn.SetDeadline(time.Time{})
	return ssh.NewClient(cc, chans, reqs), nil
}

// bastionClient returns the shared bastion connection, dialling it once.
func (h *Hosts) bastionClient(ctx context.Context) (*ssh.Client, error) {
	h.mu.Lock()
	if b := h.bastion; b != nil {
		h.mu.Unlock()
		return b, nil
	}
	h.mu.Unlock()
	b, err := h.dial(ctx, *h.Bastion, nil)
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.bastion != nil {
		b.Close()
		return h.bastion, nil
	}
	h.bastion = b
	return b, nil
}

// alive asks c for a keepalive reply, waiting at most 3 s.
func alive(c *ssh.Client) bool {
	ch := make(chan error, 1)
	go func() {
		_, _, err := c.SendRequest("keepalive@openssh.com", true, nil)
		ch <- err
	}()
	select {
	case err := <-ch:
		return err == nil
	case <-time.After(3 * time.Second):
		return false
	}
}

func (h *Hosts) forgetBastion(b *ssh.Client) {
	h.mu.Lock()
	if h.bastion == b {
		h.bastion = nil
	}
	h.mu.Unlock()
	go b.Close()
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
	b := h.bastion
	h.bastion = nil
	h.mu.Unlock()
	for _, c := range conns {
		go c.Close()
	}
	if b != nil {
		go b.Close()
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
