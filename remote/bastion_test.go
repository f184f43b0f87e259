package remote_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/belay-sh/belay/deploy/sshx"
	"github.com/belay-sh/belay/deploy/sshx/sshdtest"
	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/remote"
)

// TestBastion reaches an inventory host through a bastion (two real sshd on
// loopback): the command runs, and the bastion's key is checked like any
// host's: with a wrong pinned bastion key the host is not reached at all.
func TestBastion(t *testing.T) {
	bastion := sshdtest.New(t)
	target := sshdtest.New(t)
	// One client key for both, as with a real deploy key.
	if err := os.WriteFile(filepath.Join(target.Dir, "authorized_keys"), []byte(bastion.AuthorizedKey()), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := target.Listen()
	host, portStr, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(portStr)
	inv := &inventory.Inventory{Stack: "test", Hosts: []inventory.Host{{
		Name: "shop-1", SSHAddress: host, SSHPort: port, DeployUser: target.User,
		HostKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(target.HostKey))),
	}}}
	bt := &sshx.Target{Name: "bastion", Addr: bastion.Listen(), User: bastion.User, HostKeys: []ssh.PublicKey{bastion.HostKey}}
	auth := []ssh.AuthMethod{ssh.PublicKeys(bastion.ClientSigner)}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	h := &remote.Hosts{Inv: inv, Auth: auth, DialTimeout: 20 * time.Second, Bastion: bt}
	out, err := h.Run(ctx, "shop-1", "echo via-bastion")
	if err != nil || strings.TrimSpace(string(out)) != "via-bastion" {
		t.Fatalf("through the bastion: %q %v", out, err)
	}
	h.Close()

	other, _ := sshdtest.NewKey(t)
	wrong := *bt
	wrong.HostKeys = []ssh.PublicKey{other.PublicKey()}
	h = &remote.Hosts{Inv: inv, Auth: auth, DialTimeout: 20 * time.Second, Bastion: &wrong}
	defer h.Close()
	_, err = h.Run(ctx, "shop-1", "echo via-bastion")
	if err == nil || !strings.Contains(err.Error(), "via bastion") || !strings.Contains(err.Error(), "host key refused") {
		t.Fatalf("bastion with a wrong pinned key: %v, want its host key refused", err)
	}
}

// TestDialTimeout: a host that accepts TCP but never speaks SSH fails after
// DialTimeout (the --connect-timeout of the operator commands), not later.
func TestDialTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // silent: no SSH banner
		}
	}()
	_, portStr, _ := net.SplitHostPort(ln.Addr().String())
	port, _ := strconv.Atoi(portStr)
	key, _ := sshdtest.NewKey(t)
	inv := &inventory.Inventory{Stack: "test", Hosts: []inventory.Host{{Name: "mute", SSHAddress: "127.0.0.1", SSHPort: port, DeployUser: "u",
		HostKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key.PublicKey())))}}}
	h := &remote.Hosts{Inv: inv, DialTimeout: 300 * time.Millisecond}
	defer h.Close()
	t0 := time.Now()
	_, err = h.Run(context.Background(), "mute", "true")
	if err == nil {
		t.Fatal("a mute host answered")
	}
	if d := time.Since(t0); d > 3*time.Second {
		t.Fatalf("failed after %s, want about the 300ms dial timeout", d)
	}
}
