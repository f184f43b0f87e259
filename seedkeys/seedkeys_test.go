package seedkeys

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

const seed = "0123456789abcdef0123456789abcdef0123456789abcdef"

func TestDeriveIsStableAndDistinct(t *testing.T) {
	a1, err := Derive(seed, "prod", "shop-1", 0)
	if err != nil {
		t.Fatal(err)
	}
	a2, _ := Derive(seed, "prod", "shop-1", 0)
	if a1 != a2 {
		t.Fatal("same inputs gave different keys: user data would change on every pulumi up")
	}
	for _, other := range []struct {
		stack, host string
		gen         int
	}{
		{"prod", "shop-2", 0}, {"dev", "shop-1", 0}, {"prod", "shop-1", 1},
	} {
		k, _ := Derive(seed, other.stack, other.host, other.gen)
		if k.Public == a1.Public {
			t.Errorf("%+v shares shop-1's key", other)
		}
	}
}

func TestPrivateMatchesPublic(t *testing.T) {
	k, err := Derive(seed, "prod", "db-1", 0)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey([]byte(k.PrivatePEM))
	if err != nil {
		t.Fatalf("x/crypto cannot parse the private key: %v", err)
	}
	if got := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))); got != k.Public {
		t.Fatalf("private half gives %q, public is %q", got, k.Public)
	}
}

// OpenSSH itself must accept the key, since sshd is what loads it on the server.
func TestOpenSSHAcceptsKey(t *testing.T) {
	keygen, err := exec.LookPath("ssh-keygen")
	if err != nil {
		t.Skip("ssh-keygen not installed")
	}
	k, _ := Derive(seed, "prod", "backup", 0)
	path := filepath.Join(t.TempDir(), "ssh_host_ed25519_key")
	if err := os.WriteFile(path, []byte(k.PrivatePEM), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(keygen, "-y", "-f", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh-keygen -y: %v: %s", err, out)
	}
	if strings.TrimSpace(string(out)) != k.Public {
		t.Fatalf("ssh-keygen derives %q, want %q", out, k.Public)
	}
}

func TestShortSeedRefused(t *testing.T) {
	_, err := Derive("short", "prod", "x", 0)
	if err == nil || !strings.Contains(err.Error(), "belay:hostKeySeed") {
		t.Fatalf("want an error naming belay:hostKeySeed, got %v", err)
	}
}

func TestPasswordStableAndPerPurpose(t *testing.T) {
	a, err := Password(seed, "prod", "postgres/app")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Password(seed, "prod", "postgres/app")
	c, _ := Password(seed, "prod", "postgres/replication")
	if a != b || a == c || len(a) != 32 {
		t.Fatalf("a=%q b=%q c=%q", a, b, c)
	}
}

func TestConvergeKey(t *testing.T) {
	a, err := ConvergeKey(seed, "prod")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := ConvergeKey(seed, "prod")
	c, _ := ConvergeKey(seed, "staging")
	if !a.Equal(b) || a.Equal(c) {
		t.Fatal("converge key: same inputs must give the same key, another stack another key")
	}
	hk, _ := Derive(seed, "prod", "prod", 0)
	if strings.Contains(hk.PrivatePEM, ConvergePublic(a)) {
		t.Fatal("converge key collides with a host key")
	}
	pub, err := ParseConvergePublic(ConvergePublic(a))
	if err != nil || !pub.Equal(a.Public()) {
		t.Fatalf("round trip: %v", err)
	}
	for _, bad := range []string{"", "rsa AAAA", "ed25519 !!", "ed25519 AAAA"} {
		if _, err := ParseConvergePublic(bad); err == nil {
			t.Errorf("ParseConvergePublic(%q) accepted", bad)
		}
	}
	if _, err := ConvergeKey("short", "prod"); err == nil {
		t.Error("short seed accepted")
	}
}

// TestUserCert: the certificate is stable across runs, names one principal,
// verifies against the CA, and a different principal gives a different one.
func TestUserCert(t *testing.T) {
	ca, err := Derive(seed, "prod", "restic:user-ca", 0)
	if err != nil {
		t.Fatal(err)
	}
	client, err := Derive(seed, "prod", "restic-client:web-1", 0)
	if err != nil {
		t.Fatal(err)
	}
	a, err := UserCert(ca, client.Public, "restic-web")
	if err != nil {
		t.Fatal(err)
	}
	again, _ := UserCert(ca, client.Public, "restic-web")
	if a != again {
		t.Errorf("certificate not stable across runs:\n%s\n%s", a, again)
	}
	other, _ := UserCert(ca, client.Public, "restic-api")
	if other == a {
		t.Error("different principals gave the same certificate")
	}
	k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(a))
	if err != nil {
		t.Fatal(err)
	}
	cert, ok := k.(*ssh.Certificate)
	if !ok {
		t.Fatalf("%T, expected a certificate", k)
	}
	caPub, _, _, _, _ := ssh.ParseAuthorizedKey([]byte(ca.Public))
	checker := ssh.CertChecker{IsUserAuthority: func(auth ssh.PublicKey) bool { return bytes.Equal(auth.Marshal(), caPub.Marshal()) }}
	if err := checker.CheckCert("restic-web", cert); err != nil {
		t.Errorf("CheckCert(restic-web): %v", err)
	}
	if err := checker.CheckCert("restic-api", cert); err == nil {
		t.Error("a restic-web certificate passed for restic-api")
	}
	if len(cert.Extensions) != 0 || len(cert.CriticalOptions) != 0 || cert.CertType != ssh.UserCert {
		t.Errorf("certificate grants %v %v type %d, expected a bare user certificate", cert.Extensions, cert.CriticalOptions, cert.CertType)
	}
	for _, bad := range []string{"", "a,b", "a b"} {
		if _, err := UserCert(ca, client.Public, bad); err == nil {
			t.Errorf("principal %q accepted", bad)
		}
	}
	if _, err := UserCert(ca, a, "restic-web"); err == nil {
		t.Error("signing a certificate accepted")
	}
}
