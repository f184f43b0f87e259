package sshx_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/belay-sh/belay/deploy/sshx"
	"github.com/belay-sh/belay/deploy/sshx/sshdtest"
)

// TestAuthFromEnv logs in to a real sshd with the agent and with a key file,
// and refuses an encrypted key file with a pointer to the agent.
func TestAuthFromEnv(t *testing.T) {
	srv := sshdtest.New(t)
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := ssh.NewSignerFromKey(priv)
	os.WriteFile(filepath.Join(srv.Dir, "authorized_keys"), ssh.MarshalAuthorizedKey(signer.PublicKey()), 0o600)
	dir := t.TempDir()

	// An agent holding the key, on a unix socket like ssh-agent's.
	sock := filepath.Join(dir, "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	kr := agent.NewKeyring()
	kr.Add(agent.AddedKey{PrivateKey: priv})
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go agent.ServeAgent(kr, c)
		}
	}()
	blk, _ := ssh.MarshalPrivateKey(priv, "")
	keyFile := filepath.Join(dir, "id_ed25519")
	os.WriteFile(keyFile, pem.EncodeToMemory(blk), 0o600)
	encBlk, _ := ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte("secret"))
	encFile := filepath.Join(dir, "id_encrypted")
	os.WriteFile(encFile, pem.EncodeToMemory(encBlk), 0o600)

	tests := []struct {
		name    string
		sock    string
		files   []string
		wantErr string
	}{
		{"agent", sock, nil, ""},
		{"key file", "", []string{keyFile}, ""},
		{"encrypted key file", "", []string{encFile}, "load them into ssh-agent"},
		{"nothing", "", nil, "no SSH_AUTH_SOCK agent and no --ssh-key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			auth, closer, err := sshx.AuthFromEnv(tc.sock, tc.files)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("want %q, got %v", tc.wantErr, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer closer.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			c, err := sshx.NewClientConn(ctx, sshx.Config{Auth: auth, KeepaliveInterval: -1},
				sshx.Target{Name: "shop-1", Addr: "shop-1.test:22", User: srv.User, HostKeys: []ssh.PublicKey{srv.HostKey}}, srv.Conn())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if res, err := c.Run(ctx, "echo in", nil); err != nil || string(res.Stdout) != "in\n" {
				t.Fatalf("%q %v", res.Stdout, err)
			}
		})
	}
}
