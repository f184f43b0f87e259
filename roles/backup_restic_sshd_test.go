package roles

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/belay-sh/belay/deploy/sshx/sshdtest"
	"github.com/belay-sh/belay/seedkeys"
	"golang.org/x/crypto/ssh"
)

// TestResticCertLogin runs the real sshd (inetd mode, root only: it must
// authenticate other users) with the rendered restic block. The system users
// daemon and bin stand in for restic-a and restic-b (their groups replace
// belay-restic, so the test creates no account on the machine); sshd's own
// authorized_keys file authorizes the plain key for everyone, so only the
// block's AuthorizedKeysFile none keeps it out.
func TestResticCertLogin(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("sshd can only authenticate other users as root")
	}
	c, _ := renderParsed(t, abBackupSpec(t))
	dir := t.TempDir()
	caFile := writeTemp(t, dir, "ca.pub", fileAt(t, c, ResticCAFile).Content, 0o644)
	block := strings.NewReplacer(
		"Match Group "+ResticGroup, "Match Group daemon,bin",
		"TrustedUserCAKeys "+ResticCAFile, "TrustedUserCAKeys "+caFile,
	).Replace(fileAt(t, c, "/etc/ssh/sshd_config.d/20-belay-restic.conf").Content)
	if !strings.Contains(block, "Match Group daemon,bin\n") || !strings.Contains(block, caFile) {
		t.Fatalf("rendered block changed shape:\n%s", block)
	}
	srv := sshdtest.New(t, block)

	key := abKey(t, "restic-web")
	plain, err := ssh.ParsePrivateKey([]byte(key.PrivatePEM))
	if err != nil {
		t.Fatal(err)
	}
	withCert := func(ca seedkeys.Key, principal string) ssh.Signer {
		t.Helper()
		line, err := seedkeys.UserCert(ca, key.Public, principal)
		if err != nil {
			t.Fatal(err)
		}
		k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
		if err != nil {
			t.Fatal(err)
		}
		s, err := ssh.NewCertSigner(k.(*ssh.Certificate), plain)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	ca := abKey(t, "restic-ca")
	cases := []struct {
		name   string
		user   string
		signer ssh.Signer
		ok     bool
	}{
		{"own certificate", "daemon", withCert(ca, "daemon"), true},
		{"other user's certificate", "bin", withCert(ca, "daemon"), false},
		{"key without certificate", "daemon", plain, false},
		{"sshd's authorized key", "daemon", srv.ClientSigner, false},
		{"certificate of another CA", "daemon", withCert(abKey(t, "other-ca"), "daemon"), false},
		// Outside the block the CA is not trusted: it cannot sign any other login.
		{"certificate for a user outside the group", "nobody", withCert(ca, "nobody"), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := dialAs(t, srv, tc.user, tc.signer)
			if tc.ok && err != nil {
				t.Errorf("login as %s refused: %v", tc.user, err)
			}
			if !tc.ok && err == nil {
				t.Errorf("login as %s accepted", tc.user)
			}
			if !tc.ok && err != nil && !strings.Contains(err.Error(), "unable to authenticate") {
				t.Errorf("login as %s failed for another reason than authentication: %v", tc.user, err)
			}
		})
	}
}

func dialAs(t *testing.T, srv *sshdtest.Server, user string, signer ssh.Signer) error {
	t.Helper()
	conn := srv.Conn()
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	cc, chans, reqs, err := ssh.NewClientConn(conn, "backup", &ssh.ClientConfig{
		User:            user,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.FixedHostKey(srv.HostKey),
	})
	if err != nil {
		return err
	}
	ssh.NewClient(cc, chans, reqs).Close()
	return nil
}

// TestBackupUserDataPerApp: the backup host's user data grows by one short
// line per app (Hetzner caps user data at 32 KiB; it used to grow ~1.1 KB
// per app, so 6 apps were the most a Hetzner backup host could serve).
func TestBackupUserDataPerApp(t *testing.T) {
	size := func(n int) int {
		s := abBackupSpec(t)
		s.Backup.ResticApps = nil
		for i := 1; i <= n; i++ {
			s.Backup.ResticApps = append(s.Backup.ResticApps, fmt.Sprintf("service-%02d", i))
		}
		return len(mustRender(t, s))
	}
	one, thirty := size(1), size(30)
	perApp := float64(thirty-one) / 29
	t.Logf("backup user data: %d bytes with 1 app, %d with 30 (%.1f bytes per app)", one, thirty, perApp)
	if perApp > 40 {
		t.Errorf("backup user data grows %.1f bytes per app, expected at most 40", perApp)
	}
	if thirty > 32*1024 {
		t.Errorf("30 apps: %d bytes, over Hetzner's 32 KiB", thirty)
	}
}
