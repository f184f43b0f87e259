package sshx

// Running commands on a connected Client: captured (Run), streamed (Stream)
// and interactive with a PTY (Interactive).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

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
