// Package sshdtest runs a real OpenSSH sshd for tests without a port: each
// connection is a fresh `sshd -i` (inetd mode) on one end of a socketpair, so
// x/crypto/ssh talks to the real server with its real host-key, auth and exec
// behaviour. It needs /usr/sbin/sshd; tests skip when it is absent.
package sshdtest

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// Binary is the sshd the tests run.
const Binary = "/usr/sbin/sshd"

// Server is one sshd configuration: host key, authorized client key, login user.
type Server struct {
	t       *testing.T
	Dir     string
	Config  string
	HostKey ssh.PublicKey
	// ClientSigner is authorized for User.
	ClientSigner ssh.Signer
	User         string

	mu    sync.Mutex
	procs []*exec.Cmd
}

// New writes an sshd config under t.TempDir with fresh ed25519 keys. extra lines
// are appended to sshd_config.
func New(t *testing.T, extra ...string) *Server {
	t.Helper()
	if _, err := os.Stat(Binary); err != nil {
		t.Skipf("no OpenSSH server (%v); apt-get install openssh-server", err)
	}
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	if u.Uid == "0" {
		// sshd as root insists on its privilege-separation directory.
		if _, err := os.Stat("/run/sshd"); os.IsNotExist(err) {
			if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
				t.Skipf("cannot create /run/sshd: %v", err)
			}
		}
	}
	dir := t.TempDir()
	hostSigner, hostPEM := NewKey(t)
	clientSigner, _ := NewKey(t)
	write(t, filepath.Join(dir, "host_ed25519"), hostPEM, 0o600)
	write(t, filepath.Join(dir, "authorized_keys"), ssh.MarshalAuthorizedKey(clientSigner.PublicKey()), 0o600)
	conf := []string{
		"HostKey " + filepath.Join(dir, "host_ed25519"),
		"AuthorizedKeysFile " + filepath.Join(dir, "authorized_keys"),
		"PermitRootLogin prohibit-password",
		"UsePAM no",
		"StrictModes no",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"PidFile none",
		"LogLevel ERROR",
		"AllowTcpForwarding yes",
	}
	conf = append(conf, extra...)
	s := &Server{t: t, Dir: dir, Config: filepath.Join(dir, "sshd_config"), HostKey: hostSigner.PublicKey(),
		ClientSigner: clientSigner, User: u.Username}
	write(t, s.Config, []byte(strings.Join(conf, "\n")+"\n"), 0o600)
	t.Cleanup(s.stopAll)
	return s
}

// SetHostKey replaces the server's host key (a "rebuilt server") and returns the new public key.
func (s *Server) SetHostKey() ssh.PublicKey {
	s.t.Helper()
	signer, p := NewKey(s.t)
	write(s.t, filepath.Join(s.Dir, "host_ed25519"), p, 0o600)
	s.HostKey = signer.PublicKey()
	return s.HostKey
}

// SetHostKeyRSA replaces the server's host key with a fresh 2048-bit RSA key
// and returns it: OpenSSH 8.8+ then signs only with rsa-sha2-256/512, never
// the SHA-1 "ssh-rsa" algorithm, which is what a client pinning RSA must ask for.
func (s *Server) SetHostKeyRSA() ssh.PublicKey {
	s.t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		s.t.Fatal(err)
	}
	p := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
	write(s.t, filepath.Join(s.Dir, "host_ed25519"), p, 0o600) // the file name is just the configured path
	pub, err := ssh.NewPublicKey(&k.PublicKey)
	if err != nil {
		s.t.Fatal(err)
	}
	s.HostKey = pub
	return pub
}

// Conn starts `sshd -i` for one connection and returns the client end.
func (s *Server) Conn() net.Conn {
	s.t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		s.t.Fatal(err)
	}
	srv := os.NewFile(uintptr(fds[0]), "sshd-side")
	cli := os.NewFile(uintptr(fds[1]), "client-side")
	cmd := exec.Command(Binary, "-f", s.Config, "-i", "-e")
	cmd.Stdin, cmd.Stdout = srv, srv
	cmd.Stderr = &logWriter{t: s.t}
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	srv.Close()
	s.mu.Lock()
	s.procs = append(s.procs, cmd)
	s.mu.Unlock()
	go cmd.Wait()
	c, err := net.FileConn(cli)
	cli.Close()
	if err != nil {
		s.t.Fatal(err)
	}
	return c
}

// Signal sends sig to every sshd this server started (SIGSTOP simulates a hung host).
func (s *Server) Signal(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.procs {
		if p.Process != nil {
			_ = p.Process.Signal(sig)
		}
	}
}

// Listen runs a daemon sshd on a free loopback port (for bastion tests) and returns host:port.
func (s *Server) Listen() string {
	s.t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		s.t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(Binary, "-f", s.Config, "-D", "-e", "-o", "ListenAddress="+addr)
	cmd.Stderr = &logWriter{t: s.t}
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.mu.Lock()
	s.procs = append(s.procs, cmd)
	s.mu.Unlock()
	go cmd.Wait()
	// Wait until it accepts.
	for i := 0; i < 200; i++ {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return addr
		}
		sleep()
	}
	s.t.Fatalf("sshd on %s did not start", addr)
	return ""
}

func (s *Server) stopAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.procs {
		if p.Process != nil {
			_ = p.Process.Signal(syscall.SIGCONT)
			_ = p.Process.Kill()
		}
	}
}

// NewKey returns a fresh ed25519 signer and its OpenSSH PEM private key.
func NewKey(t *testing.T) (ssh.Signer, []byte) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	blk, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return signer, pem.EncodeToMemory(blk)
}

func write(t *testing.T, path string, b []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, b, mode); err != nil {
		t.Fatal(err)
	}
}

type logWriter struct{ t *testing.T }

func (w *logWriter) Write(p []byte) (int, error) {
	defer func() { _ = recover() }() // the test may have finished while sshd still logs
	w.t.Logf("sshd: %s", strings.TrimSpace(string(p)))
	return len(p), nil
}

// AuthorizedKey is the client key in authorized_keys format.
func (s *Server) AuthorizedKey() string {
	return fmt.Sprintf("%s", ssh.MarshalAuthorizedKey(s.ClientSigner.PublicKey()))
}

func sleep() { time.Sleep(25 * time.Millisecond) }
