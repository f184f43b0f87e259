package roles

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/belay-sh/belay/deploy/sshx/sshdtest"
)

// TestStanzaBoundKeysWithSSHD logs in to a real sshd with the rendered
// authorized_keys (the forced command pointed at the rendered wrapper, whose
// pgbackrest is a stub): a dedicated cell's data node key reaches the
// pgBackRest remote of its own stanza and is refused the stack's; the
// stack's key the reverse. sshd passes the stanza as the wrapper's argument.
func TestStanzaBoundKeysWithSSHD(t *testing.T) {
	srv := sshdtest.New(t)
	s := backupSpecCells(t, 1)
	c, _ := renderParsed(t, s)
	dir := t.TempDir()
	for _, d := range []string{dir + "/..", dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	stub := writeTemp(t, dir, "pgbackrest-stub", "#!/bin/sh\necho \"remote $*\"\n", 0o755)
	wrapper := writeTemp(t, dir, "wrapper", strings.ReplaceAll(fileAt(t, c, remoteWrapper).Content, "exec /usr/bin/pgbackrest", "exec "+stub), 0o755)
	ak := strings.ReplaceAll(fileAt(t, c, pgBackRestHome+"/.ssh/authorized_keys").Content, `command="`+remoteWrapper+" ", `command="`+wrapper+" ")
	if err := os.WriteFile(filepath.Join(srv.Dir, "authorized_keys"), []byte(ak), 0o600); err != nil {
		t.Fatal(err)
	}
	remote := func(stanza string) string {
		return "pgbackrest --exec-id=1-ab --log-level-console=off --log-level-file=off --log-level-stderr=error --pg1-path=/var/lib/postgresql/15/main --process=0 --remote-type=repo --repo=1 --stanza=" + stanza + " archive-push:remote"
	}
	for _, tc := range []struct {
		name, key, stanza string
		ok                bool
	}{
		{"cell key, own stanza", "pg-client-shop-c2-db-1", "shop_c2", true},
		{"cell key, the stack's stanza", "pg-client-shop-c2-db-2", "belay", false},
		{"stack key, own stanza", "pg-client-db-1", "belay", true},
		{"stack key, a cell's stanza", "pg-client-db-standby", "shop_c2", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			signer, err := ssh.ParsePrivateKey([]byte(abKey(t, tc.key).PrivatePEM))
			if err != nil {
				t.Fatal(err)
			}
			conn := srv.Conn()
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
			cc, chans, reqs, err := ssh.NewClientConn(conn, "backup", &ssh.ClientConfig{
				User: srv.User, Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)}, HostKeyCallback: ssh.FixedHostKey(srv.HostKey),
			})
			if err != nil {
				t.Fatalf("login: %v", err)
			}
			client := ssh.NewClient(cc, chans, reqs)
			defer client.Close()
			sess, err := client.NewSession()
			if err != nil {
				t.Fatal(err)
			}
			out, err := sess.CombinedOutput(remote(tc.stanza))
			if tc.ok != (err == nil) || tc.ok != strings.HasPrefix(string(out), "remote ") {
				t.Errorf("stanza %s with %s: err %v\n%s", tc.stanza, tc.key, err, out)
			}
			if !tc.ok && !strings.Contains(string(out), "refused: --stanza="+tc.stanza) {
				t.Errorf("refusal does not name the stanza:\n%s", out)
			}
		})
	}
}
