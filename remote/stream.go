package remote

import (
	"context"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/ssh"
)

// Stream runs cmd as the deploy user like Run, but copies its standard output
// and error to stdout and stderr as they arrive (long jobs such as a backup
// show their progress). A non-zero exit is an error wrapping *ssh.ExitError
// (ExitStatus reads it). Cancelling ctx signals the command and drops the
// connection.
func (h *Hosts) Stream(ctx context.Context, host, cmd string, stdout, stderr io.Writer) error {
	c, err := h.client(ctx, host)
	if err != nil {
		return err
	}
	s, err := c.NewSession()
	if err != nil {
		h.Forget(host)
		return fmt.Errorf("host %s: new session: %w", host, err)
	}
	defer s.Close()
	s.Stdout, s.Stderr = stdout, stderr
	if err := s.Start(cmd); err != nil {
		h.Forget(host)
		return fmt.Errorf("host %s: start %s: %w", host, Summarize(cmd), err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Wait() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		// sudo relays the signal to the command; then the channel goes.
		_ = s.Signal(ssh.SIGTERM)
		s.Close()
		h.Forget(host)
		return fmt.Errorf("host %s: %s: %w", host, Summarize(cmd), ctx.Err())
	}
	if err != nil {
		var ee *ssh.ExitError
		if !errors.As(err, &ee) {
			h.Forget(host)
		}
		return fmt.Errorf("host %s: `%s`: %w", host, Summarize(cmd), err)
	}
	return nil
}

// ExitStatus is the remote command's exit status inside an error of Run or
// Stream (*ssh.ExitError, or any error with an ExitStatus method, as test
// doubles return), and whether there is one (a connection failure has none).
func ExitStatus(err error) (int, bool) {
	var ee interface{ ExitStatus() int }
	if errors.As(err, &ee) {
		return ee.ExitStatus(), true
	}
	return 0, false
}
