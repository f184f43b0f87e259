package remote_test

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/belay-sh/belay/deploy/sshx/sshdtest"
	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/remote"
)

// TestPinnedHostKeyTypes runs a command through Hosts against a real sshd on
// loopback whose host key is pinned in the inventory: ed25519, and RSA, which
// a modern sshd signs only with rsa-sha2-256/512 (a pin that asked for SHA-1
// "ssh-rsa" alone could not connect).
func TestPinnedHostKeyTypes(t *testing.T) {
	for _, typ := range []string{"ed25519", "rsa"} {
		t.Run(typ, func(t *testing.T) {
			srv := sshdtest.New(t)
			if typ == "rsa" {
				srv.SetHostKeyRSA()
			}
			addr := srv.Listen()
			hostPart, portPart, _ := net.SplitHostPort(addr)
			port, _ := strconv.Atoi(portPart)
			inv := &inventory.Inventory{Stack: "test", Hosts: []inventory.Host{{
				Name: "shop-1", SSHAddress: hostPart, SSHPort: port, DeployUser: srv.User,
				HostKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(srv.HostKey))),
			}}}
			h := &remote.Hosts{Inv: inv, Auth: []ssh.AuthMethod{ssh.PublicKeys(srv.ClientSigner)}, DialTimeout: 20 * time.Second}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			out, err := h.Run(ctx, "shop-1", "echo ok")
			if err != nil || strings.TrimSpace(string(out)) != "ok" {
				t.Fatalf("run on %s-pinned host: %q %v", typ, out, err)
			}
			h.Forget("shop-1")
			// A different pinned key of the same type is refused.
			other := sshdtest.New(t)
			if typ == "rsa" {
				other.SetHostKeyRSA()
			}
			inv.Hosts[0].HostKey = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(other.HostKey)))
			if _, err := h.Run(ctx, "shop-1", "echo ok"); err == nil {
				t.Fatal("a host with another key than the pinned one was accepted")
			}
		})
	}
}
