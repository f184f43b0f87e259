package sshx_test

import (
	"context"
	"errors"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/belay-sh/belay/deploy/sshx"
	"github.com/belay-sh/belay/deploy/sshx/sshdtest"
)

func TestPoolOneConnectionPerHostAndRedialAfterDeath(t *testing.T) {
	srv := sshdtest.New(t)
	var dials atomic.Int32
	pool := sshx.NewPool(func(ctx context.Context, host string) (*sshx.Client, error) {
		dials.Add(1)
		cfg := sshx.Config{Auth: []ssh.AuthMethod{ssh.PublicKeys(srv.ClientSigner)}, KeepaliveInterval: 100 * time.Millisecond, KeepaliveMisses: 3}
		return sshx.NewClientConn(ctx, cfg, sshx.Target{Name: host, Addr: host + ":22", User: srv.User, HostKeys: []ssh.PublicKey{srv.HostKey}}, srv.Conn())
	})
	t.Cleanup(pool.Close)
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		c, err := pool.Get(ctx, "shop-1")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Run(ctx, "true", nil); err != nil {
			t.Fatal(err)
		}
	}
	if dials.Load() != 1 {
		t.Fatalf("%d dials for 5 steps, want 1", dials.Load())
	}
	c, _ := pool.Get(ctx, "shop-1")
	srv.Signal(syscall.SIGSTOP)
	deadline := time.Now().Add(10 * time.Second)
	for c.Err() == nil && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	srv.Signal(syscall.SIGCONT)
	if c.Err() == nil {
		t.Fatal("keepalive did not notice the hung server")
	}
	c2, err := pool.Get(ctx, "shop-1")
	if err != nil || c2 == c || dials.Load() != 2 {
		t.Fatalf("want a fresh connection after the old one died: %v, dials %d", err, dials.Load())
	}
	if _, err := c2.Run(ctx, "true", nil); err != nil {
		t.Fatal(err)
	}
}

func TestPoolRemembersRefusedKey(t *testing.T) {
	srv := sshdtest.New(t)
	other, _ := sshdtest.NewKey(t)
	var dials atomic.Int32
	pool := sshx.NewPool(func(ctx context.Context, host string) (*sshx.Client, error) {
		dials.Add(1)
		cfg := sshx.Config{Auth: []ssh.AuthMethod{ssh.PublicKeys(srv.ClientSigner)}, KeepaliveInterval: -1}
		return sshx.NewClientConn(ctx, cfg, sshx.Target{Name: host, Addr: host + ":22", User: srv.User, HostKeys: []ssh.PublicKey{other.PublicKey()}}, srv.Conn())
	})
	t.Cleanup(pool.Close)
	for i := 0; i < 3; i++ {
		_, err := pool.Get(context.Background(), "shop-1")
		var hk *sshx.HostKeyError
		if !errors.As(err, &hk) {
			t.Fatalf("want HostKeyError, got %v", err)
		}
	}
	if dials.Load() != 1 {
		t.Fatalf("a refused host was dialled %d times", dials.Load())
	}
}

func TestParallelBounded(t *testing.T) {
	var running, peak atomic.Int32
	hosts := []string{"a", "b", "c", "d", "e", "f"}
	errs := sshx.Parallel(context.Background(), hosts, 2, func(ctx context.Context, h string) error {
		n := running.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
		running.Add(-1)
		if h == "c" {
			return errors.New("c failed")
		}
		return nil
	})
	if peak.Load() > 2 {
		t.Errorf("%d hosts at once, limit 2", peak.Load())
	}
	if len(errs) != len(hosts) || errs["c"] == nil || errs["a"] != nil {
		t.Errorf("errors by host: %v", errs)
	}
}
