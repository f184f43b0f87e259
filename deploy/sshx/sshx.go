// Package sshx is the deployer's SSH layer: one strictly verified connection per
// host (pinned host keys, optional known_hosts, optional bastion), keepalives,
// and context-bounded remote commands whose errors carry the remote stderr.
// It knows nothing about releases or plans; deploy/run drives it.
package sshx

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// Target is one host to connect to.
type Target struct {
	// Name is the inventory host name, used in messages.
	Name string
	// Addr is host:port.
	Addr string
	User string
	// HostKeys are the pinned keys this host may present; a key not in the list is refused.
	HostKeys []ssh.PublicKey
	// Bastion, if set, is dialled first and Addr is reached through it (ProxyJump).
	Bastion *Target
}

// Config is how every connection authenticates and stays alive.
type Config struct {
	// Auth are the client's methods (see AuthFromEnv); key auth only.
	Auth []ssh.AuthMethod
	// KnownHostsFiles are consulted when a Target has no pinned key, and a key they
	// mark as changed is refused even when none is pinned.
	KnownHostsFiles []string
	// DialTimeout bounds TCP connect plus handshake (default 15 s).
	DialTimeout time.Duration
	// KeepaliveInterval is the keepalive@openssh.com period (default 5 s; negative disables).
	KeepaliveInterval time.Duration
	// KeepaliveMisses unanswered keepalives close the connection (default 3).
	KeepaliveMisses int
}

func (c Config) withDefaults() Config {
	if c.DialTimeout == 0 {
		c.DialTimeout = 15 * time.Second
	}
	if c.KeepaliveInterval == 0 {
		c.KeepaliveInterval = 5 * time.Second
	}
	if c.KeepaliveMisses == 0 {
		c.KeepaliveMisses = 3
	}
	return c
}

// Client is one authenticated connection to a host, shared by all its steps.
type Client struct {
	Name   string
	client *ssh.Client
	via    *Client // bastion connection, closed with this one
	done   chan struct{}
	once   sync.Once
	mu     sync.Mutex
	err    error // why the connection died (keepalive), if it did
}

// Dial connects to t (through its bastion if any), verifying host keys before
// authentication completes, so a refused key means no command ever ran.
func Dial(ctx context.Context, cfg Config, t Target) (*Client, error) {
	cfg = cfg.withDefaults()
	ctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	var via *Client
	var conn net.Conn
	var err error
	_ = via
	if t.Bastion != nil {
		via, err = Dial(ctx, cfg, *t.Bastion)
		if err != nil {
			return nil, fmt.Errorf("host %s: via bastion: %w", t.Name, err)
		}
		c, err := DialThrough(ctx, cfg, via, t)
		if err != nil {
			via.Close()
			return nil, err
		}
		c.via = via
		return c, nil
	}
	var d net.Dialer
	conn, err = d.DialContext(ctx, "tcp", t.Addr)
	if err != nil {
		return nil, fmt.Errorf("host %s: dial %s: %w", t.Name, t.Addr, err)
	}
	return NewClientConn(ctx, cfg, t, conn)
}

// DialThrough reaches t through an open bastion connection (a direct-tcpip
// channel, as ProxyJump does) and verifies t's own pinned key end to end.
func DialThrough(ctx context.Context, cfg Config, bastion *Client, t Target) (*Client, error) {
	cfg = cfg.withDefaults()
	ctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	conn, err := DialVia(ctx, bastion.client, t.Addr)
	if err != nil {
		return nil, fmt.Errorf("host %s: dial %s through bastion %s: %w", t.Name, t.Addr, bastion.Name, err)
	}
	return NewClientConn(ctx, cfg, t, conn)
}

// DialVia opens a TCP connection to addr through via (a bastion), bounded by
// ctx: ssh.Client.Dial takes no context, so a dial that outlives ctx is left
// to finish in the background and its connection closed.
func DialVia(ctx context.Context, via *ssh.Client, addr string) (net.Conn, error) {
	if via == nil {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := via.Dial("tcp", addr)
		ch <- res{c, err}
	}()
	select {
	case r := <-ch:
		return r.c, r.err
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.c != nil {
				r.c.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

// NewClientConn runs the SSH handshake over an existing connection (a TCP socket,
// a channel through a bastion, or a pipe to `sshd -i` in tests) and starts keepalives.
func NewClientConn(ctx context.Context, cfg Config, t Target, conn net.Conn) (*Client, error) {
	cfg = cfg.withDefaults()
	cb, err := HostKeyCallback(t, cfg.KnownHostsFiles)
	if err != nil {
		conn.Close()
		return nil, err
	}
	cc := &ssh.ClientConfig{
		User:            t.User,
		Auth:            cfg.Auth,
		HostKeyCallback: cb,
		Timeout:         cfg.DialTimeout,
	}
	if len(t.HostKeys) > 0 {
		// Ask for the pinned algorithms so a server with several keys shows the pinned one.
		for _, k := range t.HostKeys {
			cc.HostKeyAlgorithms = append(cc.HostKeyAlgorithms, HostKeyAlgorithms(k)...)
		}
	}
	type res struct {
		c   ssh.Conn
		ch  <-chan ssh.NewChannel
		rq  <-chan *ssh.Request
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, chans, reqs, err := ssh.NewClientConn(conn, t.Addr, cc)
		ch <- res{c, chans, reqs, err}
	}()
	var r res
	select {
	case r = <-ch:
	case <-ctx.Done():
		conn.Close()
		<-ch
		return nil, fmt.Errorf("host %s: ssh handshake with %s: %w", t.Name, t.Addr, ctx.Err())
	}
	if r.err != nil {
		conn.Close()
		var hk *HostKeyError
		if errors.As(r.err, &hk) {
			return nil, hk
		}
		return nil, fmt.Errorf("host %s: ssh handshake with %s as %s: %w", t.Name, t.Addr, t.User, r.err)
	}
	c := &Client{Name: t.Name, client: ssh.NewClient(r.c, r.ch, r.rq), done: make(chan struct{})}
	if cfg.KeepaliveInterval > 0 {
		go c.keepalive(cfg.KeepaliveInterval, cfg.KeepaliveMisses)
	}
	return c, nil
}

// keepalive sends keepalive@openssh.com every interval and closes the connection
// after misses unanswered in a row, so a dead host fails its step instead of hanging.
func (c *Client) keepalive(interval time.Duration, misses int) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	missed := 0
	for {
		select {
		case <-c.done:
			return
		case <-tick.C:
		}
		reply := make(chan error, 1)
		go func() {
			_, _, err := c.client.SendRequest("keepalive@openssh.com", true, nil)
			reply <- err
		}()
		select {
		case err := <-reply:
			if err != nil {
				c.fail(fmt.Errorf("host %s: connection lost: %w", c.Name, err))
				return
			}
			missed = 0
		case <-time.After(interval):
			missed++
			if missed >= misses {
				c.fail(fmt.Errorf("host %s: connection lost: %d keepalives unanswered", c.Name, missed))
				return
			}
		case <-c.done:
			return
		}
	}
}

func (c *Client) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.mu.Unlock()
	c.Close()
}

// Err returns why the connection died, if keepalives killed it.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close closes the connection (and its bastion connection).
func (c *Client) Close() error {
	var err error
	c.once.Do(func() {
		close(c.done)
		err = c.client.Close()
		if c.via != nil {
			c.via.Close()
		}
	})
	return err
}
