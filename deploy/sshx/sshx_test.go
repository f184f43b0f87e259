package sshx_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/belay-sh/belay/deploy/sshx"
	"github.com/belay-sh/belay/deploy/sshx/sshdtest"
	"github.com/belay-sh/belay/internal/shq"
)

func connect(t *testing.T, srv *sshdtest.Server, keys []ssh.PublicKey, cfg sshx.Config) (*sshx.Client, error) {
	t.Helper()
	cfg.Auth = []ssh.AuthMethod{ssh.PublicKeys(srv.ClientSigner)}
	if cfg.KeepaliveInterval == 0 {
		cfg.KeepaliveInterval = -1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := sshx.NewClientConn(ctx, cfg, sshx.Target{Name: "shop-1", Addr: "shop-1.test:22", User: srv.User, HostKeys: keys}, srv.Conn())
	if c != nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, err
}

func TestHostKeyRefusedBeforeAnyCommand(t *testing.T) {
	srv := sshdtest.New(t)
	marker := filepath.Join(t.TempDir(), "ran")
	// A ForceCommand would run on ANY session: if the handshake let us through,
	// the marker would appear even before our own command.
	srv2 := sshdtest.New(t, "ForceCommand touch "+marker)
	other, _ := sshdtest.NewKey(t)
	rsaLike := srv.HostKey // same type, different key below
	_ = rsaLike
	tests := []struct {
		name   string
		srv    *sshdtest.Server
		keys   []ssh.PublicKey
		reason string
	}{
		{"changed key", srv2, []ssh.PublicKey{other.PublicKey()}, "CHANGED"},
		{"pinned key of another server", srv2, []ssh.PublicKey{srv.HostKey}, "CHANGED"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := connect(t, tc.srv, tc.keys, sshx.Config{})
			var hk *sshx.HostKeyError
			if !errors.As(err, &hk) {
				t.Fatalf("want HostKeyError, got client=%v err=%v", c, err)
			}
			if !strings.Contains(err.Error(), tc.reason) || !strings.Contains(err.Error(), "shop-1") {
				t.Errorf("error %q should name the host and say %s", err, tc.reason)
			}
			if _, err := os.Stat(marker); err == nil {
				t.Fatal("a command ran on a host whose key was refused")
			}
		})
	}
	t.Run("no pinned key and no known_hosts", func(t *testing.T) {
		_, err := connect(t, srv2, nil, sshx.Config{})
		if err == nil || !strings.Contains(err.Error(), "no pinned host key") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("unknown to known_hosts", func(t *testing.T) {
		kh := filepath.Join(t.TempDir(), "known_hosts")
		os.WriteFile(kh, []byte("otherhost "+string(ssh.MarshalAuthorizedKey(other.PublicKey()))), 0o600)
		_, err := connect(t, srv2, nil, sshx.Config{KnownHostsFiles: []string{kh}})
		var hk *sshx.HostKeyError
		if !errors.As(err, &hk) || !strings.Contains(hk.Reason, "unknown") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("changed in known_hosts", func(t *testing.T) {
		kh := filepath.Join(t.TempDir(), "known_hosts")
		os.WriteFile(kh, []byte("shop-1.test "+string(ssh.MarshalAuthorizedKey(other.PublicKey()))), 0o600)
		_, err := connect(t, srv2, nil, sshx.Config{KnownHostsFiles: []string{kh}})
		var hk *sshx.HostKeyError
		if !errors.As(err, &hk) || !strings.Contains(hk.Reason, "CHANGED") {
			t.Fatalf("got %v", err)
		}
	})
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("a command ran on a host whose key was refused")
	}
	t.Run("rebuilt server refused until the pin is updated", func(t *testing.T) {
		old := srv.HostKey
		if _, err := connect(t, srv, []ssh.PublicKey{old}, sshx.Config{}); err != nil {
			t.Fatalf("pinned key: %v", err)
		}
		fresh := srv.SetHostKey()
		if _, err := connect(t, srv, []ssh.PublicKey{old}, sshx.Config{}); err == nil {
			t.Fatal("changed host key accepted")
		}
		if _, err := connect(t, srv, []ssh.PublicKey{fresh}, sshx.Config{}); err != nil {
			t.Fatalf("new pin: %v", err)
		}
	})
}

func TestKnownHostsAccepts(t *testing.T) {
	srv := sshdtest.New(t)
	kh := filepath.Join(t.TempDir(), "known_hosts")
	os.WriteFile(kh, []byte("shop-1.test "+string(ssh.MarshalAuthorizedKey(srv.HostKey))), 0o600)
	c, err := connect(t, srv, nil, sshx.Config{KnownHostsFiles: []string{kh}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Run(context.Background(), "true", nil); err != nil {
		t.Fatal(err)
	}
}

func TestRunCapturesOutputAndExitCode(t *testing.T) {
	srv := sshdtest.New(t)
	c, err := connect(t, srv, []ssh.PublicKey{srv.HostKey}, sshx.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tests := []struct {
		cmd            string
		stdout, stderr string
		code           int
	}{
		{"echo out; echo err >&2", "out\n", "err\n", 0},
		{"printf abc; echo boom >&2; exit 7", "abc", "boom\n", 7},
		{"printf '%s' " + shq.Quote("it's $HOME `x`"), "it's $HOME `x`", "", 0},
	}
	// All on ONE connection: sessions are reused per host.
	for _, tc := range tests {
		res, err := c.Run(ctx, tc.cmd, nil)
		if string(res.Stdout) != tc.stdout || string(res.Stderr) != tc.stderr || res.ExitCode != tc.code {
			t.Errorf("%q: got out=%q err=%q code=%d", tc.cmd, res.Stdout, res.Stderr, res.ExitCode)
		}
		var ce *sshx.CommandError
		if tc.code != 0 {
			if !errors.As(err, &ce) || ce.Code != tc.code || !strings.Contains(err.Error(), strings.TrimSpace(tc.stderr)) {
				t.Errorf("%q: error %v should carry code and stderr", tc.cmd, err)
			}
		} else if err != nil {
			t.Errorf("%q: %v", tc.cmd, err)
		}
	}
}

func TestStreamingChecksum(t *testing.T) {
	srv := sshdtest.New(t)
	c, err := connect(t, srv, []ssh.PublicKey{srv.HostKey}, sshx.Config{})
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("belay-artifact-"), 300000) // ~4.5 MB
	sum := sha256.Sum256(data)
	dst := filepath.Join(t.TempDir(), "upload")
	res, err := c.Run(context.Background(), "cat > "+shq.Quote(dst)+" && sha256sum "+shq.Quote(dst), bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Fields(string(res.Stdout))[0]; got != hex.EncodeToString(sum[:]) {
		t.Fatalf("remote sha256 %s, want %x", got, sum)
	}
	onDisk, _ := os.ReadFile(dst)
	if !bytes.Equal(onDisk, data) {
		t.Fatal("uploaded bytes differ")
	}
}

func TestContextTimeoutStopsCommand(t *testing.T) {
	srv := sshdtest.New(t)
	c, err := connect(t, srv, []ssh.PublicKey{srv.HostKey}, sshx.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err = c.Run(ctx, "echo started >&2; sleep 30", nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want deadline exceeded, got %v", err)
	}
	// The connection is still usable for the next step.
	if _, err := c.Run(context.Background(), "true", nil); err != nil {
		t.Fatalf("connection unusable after a timed-out step: %v", err)
	}
}

func TestKeepaliveDetectsHungHost(t *testing.T) {
	srv := sshdtest.New(t)
	c, err := connect(t, srv, []ssh.PublicKey{srv.HostKey}, sshx.Config{KeepaliveInterval: 100 * time.Millisecond, KeepaliveMisses: 3})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Run(context.Background(), "true", nil); err != nil {
		t.Fatal(err)
	}
	srv.Signal(syscall.SIGSTOP) // the host stops answering, TCP stays up
	t.Cleanup(func() { srv.Signal(syscall.SIGCONT) })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = c.Run(ctx, "true", nil)
	if err == nil || errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "keepalive") {
		t.Fatalf("want a keepalive failure, got %v", err)
	}
}

func TestBastion(t *testing.T) {
	bastion := sshdtest.New(t)
	target := sshdtest.New(t)
	// One client key for both, as with a real deploy key.
	os.WriteFile(filepath.Join(target.Dir, "authorized_keys"), []byte(bastion.AuthorizedKey()), 0o600)
	addr := target.Listen()
	cfg := sshx.Config{Auth: []ssh.AuthMethod{ssh.PublicKeys(bastion.ClientSigner)}, KeepaliveInterval: -1}
	ctx := context.Background()
	dialBastion := func(keys []ssh.PublicKey) sshx.Target {
		return sshx.Target{Name: "bastion", Addr: "pipe", User: bastion.User, HostKeys: keys}
	}
	// sshx.Dial dials TCP for the bastion; here the bastion is an inetd pipe, so
	// hop manually: connect to the bastion, then NewClientConn over its channel.
	b, err := sshx.NewClientConn(ctx, cfg, dialBastion([]ssh.PublicKey{bastion.HostKey}), bastion.Conn())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	c, err := sshx.DialThrough(ctx, cfg, b, sshx.Target{Name: "shop-1", Addr: addr, User: target.User, HostKeys: []ssh.PublicKey{target.HostKey}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Run(ctx, "echo via-bastion", nil)
	if err != nil || string(res.Stdout) != "via-bastion\n" {
		t.Fatalf("got %q %v", res.Stdout, err)
	}
	c.Close()
	other, _ := sshdtest.NewKey(t)
	if _, err := sshx.DialThrough(ctx, cfg, b, sshx.Target{Name: "shop-1", Addr: addr, User: target.User, HostKeys: []ssh.PublicKey{other.PublicKey()}}); err == nil {
		t.Fatal("target behind bastion accepted with a wrong pinned key")
	}
	if _, err := sshx.NewClientConn(ctx, cfg, dialBastion([]ssh.PublicKey{other.PublicKey()}), bastion.Conn()); err == nil {
		t.Fatal("bastion accepted with a wrong pinned key")
	}
}

// TestRSAHostKeyPin: a host pinned by its RSA key is reached although the
// real sshd (OpenSSH 8.8+) signs only with rsa-sha2-256/512; with the SHA-1
// algorithm alone the handshake fails, which is what the pin used to ask for.
func TestRSAHostKeyPin(t *testing.T) {
	srv := sshdtest.New(t)
	pub := srv.SetHostKeyRSA()
	if got := sshx.HostKeyAlgorithms(pub); got[0] != ssh.KeyAlgoRSASHA512 || got[1] != ssh.KeyAlgoRSASHA256 {
		t.Fatalf("HostKeyAlgorithms(rsa) = %v, want rsa-sha2-512, rsa-sha2-256 first", got)
	}
	c, err := connect(t, srv, []ssh.PublicKey{pub}, sshx.Config{})
	if err != nil {
		t.Fatalf("RSA-pinned host refused: %v", err)
	}
	if res, err := c.Run(context.Background(), "echo ok", nil); err != nil || strings.TrimSpace(string(res.Stdout)) != "ok" {
		t.Fatalf("run over the RSA-pinned connection: %+v %v", res, err)
	}
	// The SHA-1-only request the old code made: a modern sshd has nothing to offer.
	cfg := &ssh.ClientConfig{User: srv.User, Auth: []ssh.AuthMethod{ssh.PublicKeys(srv.ClientSigner)},
		HostKeyCallback: ssh.FixedHostKey(pub), HostKeyAlgorithms: []string{ssh.KeyAlgoRSA}, Timeout: 10 * time.Second}
	if cc, _, _, err := ssh.NewClientConn(srv.Conn(), "shop-1.test:22", cfg); err == nil {
		cc.Close()
		t.Log("this sshd still signs with SHA-1 ssh-rsa (OpenSSH < 8.8); the negative half proves nothing here")
	}
}
