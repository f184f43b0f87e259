package converge

import (
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestUnifiedDiff(t *testing.T) {
	// Output as GNU diff -u prints it (hunks 7 lines apart stay separate).
	old := "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\nj2\nl\nm\n"
	neu := "a\nb\nc\nD\ne\nf\ng\nh\ni\nj\nj2\nk\nl\nm\n"
	got := Diff(Change{Path: "/etc/x", Kind: Modify, Old: old, New: neu, OldOwner: "root:root", NewOwner: "root:root", OldMode: 0o644, NewMode: 0o644}, NewMasker())
	want := `--- a/etc/x
+++ b/etc/x
@@ -1,7 +1,7 @@
 a
 b
 c
-d
+D
 e
 f
 g
@@ -9,5 +9,6 @@
 i
 j
 j2
+k
 l
 m
`
	if got != want {
		t.Errorf("diff:\n%s\nexpected:\n%s", got, want)
	}
	created := Diff(Change{Path: "/etc/y", Kind: Create, New: "one\n"}, NewMasker())
	if created != "--- /dev/null\n+++ b/etc/y\n@@ -0,0 +1,1 @@\n+one\n" {
		t.Errorf("create diff:\n%s", created)
	}
}

func TestDiffMasksSecrets(t *testing.T) {
	pem := "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\nAAAAAAAAAAEAAAAzAAAAC3NzaC1lZDI1NTE5AAAAI\n-----END OPENSSH PRIVATE KEY-----\n"
	m := NewMasker("s3cr3t-password-value", pem, "")
	c := Change{Path: "/usr/local/bin/belay-x", Kind: Modify,
		Old: "PASSWORD=old\nKEY=none\n", New: "PASSWORD=s3cr3t-password-value\n" + pem}
	d := Diff(c, m)
	for _, leak := range []string{"s3cr3t-password-value", "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ", "AAAAAAAAAAEAAAAzAAAAC3NzaC1lZDI1NTE5AAAAI"} {
		if strings.Contains(d, leak) {
			t.Errorf("diff shows a secret %q:\n%s", leak, d)
		}
	}
	// A secret file shows no content at all, not even an old secret no longer known.
	d = Diff(Change{Path: "/etc/belay/restic-shop.pass", Kind: Modify, Old: "old-unknown-secret\n", New: "new\n"}, m)
	if strings.Contains(d, "old-unknown-secret") || !strings.Contains(d, "not shown") {
		t.Errorf("secret file diff:\n%s", d)
	}
}

func TestSignVerifyCheck(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	pub := priv.Public().(ed25519.PublicKey)
	b := Bundle{Stack: "s", Host: "h", Serial: 1, Files: []File{{Path: "/etc/nftables.conf", Content: "x", Owner: "root:root", Mode: 0o755}}}
	w, err := Sign(priv, b)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Verify(pub, w)
	if err != nil || got.Host != "h" || got.Version != BundleVersion {
		t.Fatalf("verify: %+v %v", got, err)
	}
	if err := got.Check("h"); err != nil {
		t.Error(err)
	}
	bad := []struct {
		name string
		mod  func(*Bundle)
	}{
		{"relative path", func(b *Bundle) { b.Files[0].Path = "etc/nftables.conf" }},
		{"dot-dot", func(b *Bundle) { b.Files[0].Path = "/etc/belay/../shadow" }},
		{"unmanaged", func(b *Bundle) { b.Files[0].Path = "/root/.ssh/authorized_keys" }},
		{"seeded-only file", func(b *Bundle) { b.Files[0].Path = "/etc/belay/nginx/shop/http.conf" }},
		{"setuid", func(b *Bundle) { b.Files[0].Mode = 0o4755 }},
		{"owner", func(b *Bundle) { b.Files[0].Owner = "root" }},
		{"dir outside", func(b *Bundle) { b.Dirs = []Dir{{Path: "/etc/cron.d", Owner: "root:root", Mode: 0o755}} }},
		{"user shell", func(b *Bundle) {
			b.Users = []User{{Name: "restic-x", Home: "/srv/restic/x", Shell: "/tmp/sh"}}
		}},
		{"serial 0", func(b *Bundle) { b.Serial = 0 }},
	}
	for _, c := range bad {
		bb := b
		bb.Files = append([]File(nil), b.Files...)
		c.mod(&bb)
		if err := bb.Check("h"); err == nil {
			t.Errorf("%s: accepted", c.name)
		}
	}
	if err := got.Check("other"); err == nil {
		t.Error("other host accepted")
	}
}

// TestGoldensAreManaged: every file of every role's golden user data is a
// path converge manages or deliberately skips, so the allow list cannot drift
// from the roles silently.
func TestGoldensAreManaged(t *testing.T) {
	goldens, _ := filepath.Glob("../roles/testdata/*.golden")
	if len(goldens) == 0 {
		t.Fatal("no goldens")
	}
	for _, g := range goldens {
		b, err := os.ReadFile(g)
		if err != nil {
			t.Fatal(err)
		}
		h, err := FromUserData(filepath.Base(g), b)
		if err != nil {
			t.Errorf("%s: %v", g, err)
			continue
		}
		bundle := Bundle{Host: "h", Serial: 1, Files: h.Files, Users: h.Users, Dirs: h.Dirs}
		if err := bundle.Check("h"); err != nil {
			t.Errorf("%s: the roles' own files, users and directories are refused: %v", g, err)
		}
		if len(h.Files) < 5 {
			t.Errorf("%s: only %d files", g, len(h.Files))
		}
		for _, f := range h.Files {
			if strings.HasPrefix(f.Path, "/etc/belay/nginx/") {
				t.Errorf("%s: %s is the route helper's, converge must skip it", g, f.Path)
			}
		}
	}
}
