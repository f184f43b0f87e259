package lab

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/belay-sh/belay/inventory"
)

// SSHArgs is the OpenSSH command line for `belay lab ssh`: the lab's admin key
// only, the lab's known_hosts only, strict host-key checking (pinned keys; no
// trust on first use), no password prompts.
func SSHArgs(p Paths, h inventory.Host, command []string, tty bool) []string {
	args := []string{"ssh",
		"-i", p.adminKey(),
		"-o", "IdentitiesOnly=yes",
		"-o", "StrictHostKeyChecking=yes",
		"-o", "UserKnownHostsFile=" + p.knownHosts(),
		"-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "PasswordAuthentication=no",
		"-o", "KbdInteractiveAuthentication=no",
		"-o", "ConnectTimeout=5",
		"-p", strconv.Itoa(h.SSHPort),
		"-l", h.DeployUser,
	}
	if tty {
		args = append(args, "-t")
	}
	args = append(args, h.SSHAddress)
	if len(command) > 0 {
		args = append(args, "--")
		args = append(args, command...)
	}
	return args
}

// Dial opens an SSH connection to a lab host as its deploy user with the lab's
// admin key, accepting only the host key pinned in the inventory.
func Dial(ctx context.Context, p Paths, h inventory.Host) (*ssh.Client, error) {
	signer, err := AdminSigner(p)
	if err != nil {
		return nil, err
	}
	pinned, err := h.HostPublicKey()
	if err != nil {
		return nil, err
	}
	cfg := &ssh.ClientConfig{
		User:              h.DeployUser,
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback:   ssh.FixedHostKey(pinned),
		HostKeyAlgorithms: []string{pinned.Type()},
		Timeout:           5 * time.Second,
	}
	addr := net.JoinHostPort(h.SSHAddress, strconv.Itoa(h.SSHPort))
	d := net.Dialer{Timeout: 5 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("ssh %s (%s): %w", h.Name, addr, err)
	}
	c, chans, reqs, err := ssh.NewClientConn(conn, addr, cfg)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("ssh %s (%s): %w", h.Name, addr, err)
	}
	return ssh.NewClient(c, chans, reqs), nil
}

// RunTimeout bounds one Run: a machine killed mid-command must not hang the caller.
const RunTimeout = 2 * time.Minute

// Run runs one command over c and returns its stdout; a failure carries stderr.
func Run(c *ssh.Client, command string) ([]byte, error) {
	s, err := c.NewSession()
	if err != nil {
		return nil, err
	}
	defer s.Close()
	t := time.AfterFunc(RunTimeout, func() { _ = c.Close() })
	defer t.Stop()
	var out, errb bytes.Buffer
	s.Stdout, s.Stderr = &out, &errb
	if err := s.Run(command); err != nil {
		return out.Bytes(), fmt.Errorf("%q: %w: %s", command, err, bytes.TrimSpace(errb.Bytes()))
	}
	return out.Bytes(), nil
}
