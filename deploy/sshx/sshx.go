// Package sshx is the deployer's SSH layer: one strictly verified connection per
// host (pinned host keys, optional known_hosts, optional bastion), keepalives,
// and context-bounded remote commands whose errors carry the remote stderr.
// It knows nothing about releases or plans; deploy/run drives it.
package sshx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"
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

// HostKeyError reports a host key that is not the pinned one; no command ran.
type HostKeyError struct {
	Host string
	Addr string
	// Got is the key the server presented (authorized_keys format).
	Got string
	// Reason says why it was refused (changed key, unknown key).
	Reason string
}

func (e *HostKeyError) Error() string {
	return fmt.Sprintf("host %s (%s): host key refused: %s; server presented %s "+
		"(if the server was rebuilt on purpose, update the inventory's hostKey)", e.Host, e.Addr, e.Reason, strings.TrimSpace(e.Got))
}

// HostKeyCallback builds the strict callback for t: the presented key must equal
// one of t.HostKeys; with no pinned key it must be known in the known_hosts files.
func HostKeyCallback(t Target, knownHostsFiles []string) (ssh.HostKeyCallback, error) {
	var kh ssh.HostKeyCallback
	if len(knownHostsFiles) > 0 {
		var err error
		kh, err = knownhosts.New(knownHostsFiles...)
		if err != nil {
			return nil, fmt.Errorf("known_hosts: %w", err)
		}
	}
	if len(t.HostKeys) == 0 && kh == nil {
		return nil, fmt.Errorf("host %s: no pinned host key and no known_hosts file: refusing to connect unverified", t.Name)
	}
	return func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		got := string(ssh.MarshalAuthorizedKey(key))
		refuse := func(reason string) error {
			return &HostKeyError{Host: t.Name, Addr: t.Addr, Got: got, Reason: reason}
		}
		if len(t.HostKeys) > 0 {
			for _, k := range t.HostKeys {
				if bytes.Equal(k.Marshal(), key.Marshal()) {
					return nil
				}
			}
			for _, k := range t.HostKeys {
				if k.Type() == key.Type() {
					return refuse("CHANGED: it differs from the pinned " + k.Type() + " key " + ssh.FingerprintSHA256(k))
				}
			}
			return refuse("unknown: no pinned key of type " + key.Type())
		}
		if _, _, err := net.SplitHostPort(remote.String()); err != nil {
			// A pipe or unix socket (tests, proxies): known_hosts matches on hostname alone.
			remote = &net.TCPAddr{IP: net.IPv4zero}
		}
		if err := kh(hostname, remote, key); err != nil {
			var ke *knownhosts.KeyError
			if errors.As(err, &ke) && len(ke.Want) > 0 {
				return refuse("CHANGED: known_hosts " + ke.Want[0].Filename + ":" + strconv.Itoa(ke.Want[0].Line) + " has a different key")
			}
			return refuse("unknown: not in known_hosts (" + err.Error() + ")")
		}
		return nil
	}, nil
}

// AuthFromEnv returns key-based auth: the SSH agent at SSH_AUTH_SOCK if set, then
// the given private key files (unencrypted; use the agent for passphrase keys).
// The closer releases the agent connection.
func AuthFromEnv(sock string, keyFiles []string) ([]ssh.AuthMethod, io.Closer, error) {
	var signers []ssh.Signer
	var closer io.Closer = io.NopCloser(nil)
	var methods []ssh.AuthMethod
	if sock != "" {
		conn, err := net.Dial("unix", sock)
		if err != nil {
			return nil, nil, fmt.Errorf("ssh agent SSH_AUTH_SOCK=%s: %w", sock, err)
		}
		closer = conn
		methods = append(methods, ssh.PublicKeysCallback(agent.NewClient(conn).Signers))
	}
	for _, f := range keyFiles {
		pem, err := os.ReadFile(f)
		if err != nil {
			closer.Close()
			return nil, nil, fmt.Errorf("ssh key: %w", err)
		}
		s, err := ssh.ParsePrivateKey(pem)
		if err != nil {
			closer.Close()
			return nil, nil, fmt.Errorf("ssh key %s: %w (passphrase-protected keys: load them into ssh-agent)", f, err)
		}
		signers = append(signers, s)
	}
	if len(signers) > 0 {
		methods = append(methods, ssh.PublicKeys(signers...))
	}
	if len(methods) == 0 {
		return nil, nil, errors.New("ssh auth: no SSH_AUTH_SOCK agent and no --ssh-key file; give one")
	}
	return methods, closer, nil
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
	conn, err := dialVia(ctx, bastion.client, t.Addr)
	if err != nil {
		return nil, fmt.Errorf("host %s: dial %s through bastion %s: %w", t.Name, t.Addr, bastion.Name, err)
	}
	return NewClientConn(ctx, cfg, t, conn)
}

func dialVia(ctx context.Context, via *ssh.Client, addr string) (net.Conn, error) {
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

// HostKeyAlgorithms are the handshake algorithms to ask for when k is the
// pinned host key. An RSA key is one key type but three signature algorithms:
// rsa-sha2-512/256 first (OpenSSH 8.8+ servers offer nothing else), SHA-1
// ssh-rsa last for servers older than OpenSSH 7.2.
func HostKeyAlgorithms(k ssh.PublicKey) []string {
	if k.Type() == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	}
	return []string{k.Type()}
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

// Result is what a remote command produced.
type Result struct {
	Stdout []byte
	Stderr []byte
	// ExitCode is the remote exit status (-1 if the command did not exit normally).
	ExitCode int
}

// CommandError is a remote command that exited non-zero; Error includes its stderr.
type CommandError struct {
	Host   string
	Cmd    string
	Code   int
	Stderr string
}

func (e *CommandError) Error() string {
	msg := strings.TrimSpace(e.Stderr)
	if len(msg) > 2000 {
		msg = "…" + msg[len(msg)-2000:]
	}
	if msg == "" {
		msg = "(no stderr)"
	}
	return fmt.Sprintf("host %s: `%s` exited %d: %s", e.Host, summarize(e.Cmd), e.Code, msg)
}

func summarize(cmd string) string {
	cmd = strings.Join(strings.Fields(cmd), " ")
	if len(cmd) > 120 {
		return cmd[:117] + "..."
	}
	return cmd
}

// Run executes cmd (a POSIX shell command line) with stdin (may be nil), capturing
// stdout and stderr. A non-zero exit returns *CommandError; ctx cancellation
// signals the remote process and closes the session.
func (c *Client) Run(ctx context.Context, cmd string, stdin io.Reader) (Result, error) {
	var out, errb bytes.Buffer
	code, err := c.Stream(ctx, cmd, stdin, &out, &errb)
	res := Result{Stdout: out.Bytes(), Stderr: errb.Bytes(), ExitCode: code}
	return res, err
}

// Stream is Run with caller-provided output writers (stderr is also kept for the error).
func (c *Client) Stream(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	if err := c.Err(); err != nil {
		return -1, err
	}
	s, err := c.client.NewSession()
	if err != nil {
		if e := c.Err(); e != nil {
			return -1, e
		}
		return -1, fmt.Errorf("host %s: new session: %w", c.Name, err)
	}
	defer s.Close()
	var tail tailBuffer
	s.Stdout = stdout
	s.Stderr = io.MultiWriter(stderr, &tail)
	if stdin != nil {
		s.Stdin = stdin
	}
	done := make(chan error, 1)
	if err := s.Start(cmd); err != nil {
		return -1, fmt.Errorf("host %s: start `%s`: %w", c.Name, summarize(cmd), err)
	}
	go func() { done <- s.Wait() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = s.Signal(ssh.SIGKILL)
		s.Close()
		// The signal reaches the remote shell, not its children, which may hold the
		// channel open; do not wait for them (plan steps bound themselves with
		// timeout(1) on the host as well).
		select {
		case <-done:
		case <-time.After(2 * time.Second):
		}
		return -1, fmt.Errorf("host %s: `%s`: %w (stderr so far: %s)", c.Name, summarize(cmd), ctx.Err(), strings.TrimSpace(tail.String()))
	}
	if err == nil {
		return 0, nil
	}
	var ee *ssh.ExitError
	if errors.As(err, &ee) {
		return ee.ExitStatus(), &CommandError{Host: c.Name, Cmd: cmd, Code: ee.ExitStatus(), Stderr: tail.String()}
	}
	if e := c.Err(); e != nil {
		return -1, fmt.Errorf("`%s`: %w", summarize(cmd), e)
	}
	return -1, fmt.Errorf("host %s: `%s`: %w (stderr: %s)", c.Name, summarize(cmd), err, strings.TrimSpace(tail.String()))
}

// tailBuffer keeps the last 8 KiB written, enough for an error message.
type tailBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > 8192 {
		t.b = t.b[len(t.b)-8192:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// PTY asks for a terminal for Interactive.
type PTY struct {
	Term          string
	Width, Height int
	// Resize delivers new sizes (SIGWINCH) while the command runs; may be nil.
	Resize <-chan [2]int
}

// Interactive runs cmd on a remote terminal (pty) with in as its keyboard and
// returns its exit status. Unlike Stream it never waits for in to end (a
// console's stdin is a terminal that does not): the session ends when the
// remote command does, or when ctx is cancelled.
func (c *Client) Interactive(ctx context.Context, cmd string, pty PTY, in io.Reader, out io.Writer) (int, error) {
	if err := c.Err(); err != nil {
		return -1, err
	}
	s, err := c.client.NewSession()
	if err != nil {
		return -1, fmt.Errorf("host %s: new session: %w", c.Name, err)
	}
	defer s.Close()
	modes := ssh.TerminalModes{ssh.ECHO: 1, ssh.TTY_OP_ISPEED: 38400, ssh.TTY_OP_OSPEED: 38400}
	if err := s.RequestPty(pty.Term, pty.Height, pty.Width, modes); err != nil {
		return -1, fmt.Errorf("host %s: request pty: %w", c.Name, err)
	}
	s.Stdout, s.Stderr = out, out
	w, err := s.StdinPipe()
	if err != nil {
		return -1, err
	}
	if err := s.Start(cmd); err != nil {
		return -1, fmt.Errorf("host %s: start `%s`: %w", c.Name, summarize(cmd), err)
	}
	go func() { _, _ = io.Copy(w, in); _ = w.Close() }()
	done := make(chan error, 1)
	go func() { done <- s.Wait() }()
	for {
		select {
		case sz := <-pty.Resize:
			_ = s.WindowChange(sz[1], sz[0])
			continue
		case err = <-done:
		case <-ctx.Done():
			_ = s.Signal(ssh.SIGHUP)
			s.Close()
			return -1, fmt.Errorf("host %s: `%s`: %w", c.Name, summarize(cmd), ctx.Err())
		}
		break
	}
	if err == nil {
		return 0, nil
	}
	var ee *ssh.ExitError
	if errors.As(err, &ee) {
		return ee.ExitStatus(), &CommandError{Host: c.Name, Cmd: cmd, Code: ee.ExitStatus()}
	}
	return -1, fmt.Errorf("host %s: `%s`: %w", c.Name, summarize(cmd), err)
}
