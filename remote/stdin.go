package remote

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"

	"golang.org/x/crypto/ssh"
)

// RunInput runs cmd as the deploy user, with stdin (nil: none) as its
// standard input; Run is RunInput without one. Data that must not appear in
// a process list (a converge bundle holds keys and passwords) goes this way,
// never on a command line. A hung host (cut link) never answers: on
// cancellation the session is killed and the connection forgotten.
func (h *Hosts) RunInput(ctx context.Context, host, cmd string, stdin io.Reader) ([]byte, error) {
	c, err := h.client(ctx, host)
	if err != nil {
		return nil, err
	}
	s, err := c.NewSession()
	if err != nil {
		h.Forget(host)
		return nil, fmt.Errorf("host %s: new session: %w", host, err)
	}
	defer s.Close()
	var out, errb bytes.Buffer
	s.Stdout, s.Stderr = &out, &errb
	if stdin != nil {
		s.Stdin = stdin
	}
	if err := s.Start(cmd); err != nil {
		h.Forget(host)
		return nil, fmt.Errorf("host %s: start %s: %w", host, Summarize(cmd), err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Wait() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = s.Signal(ssh.SIGKILL)
		s.Close()
		h.Forget(host)
		return out.Bytes(), fmt.Errorf("host %s: %s: %w", host, Summarize(cmd), ctx.Err())
	}
	if err != nil {
		if _, ok := err.(*ssh.ExitError); !ok {
			h.Forget(host)
		}
		return out.Bytes(), fmt.Errorf("host %s: `%s`: %w: %s", host, Summarize(cmd), err, strings.TrimSpace(errb.String()))
	}
	return out.Bytes(), nil
}
