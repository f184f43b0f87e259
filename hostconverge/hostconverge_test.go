package hostconverge

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/belay-sh/belay/converge"
	"github.com/belay-sh/belay/roles"
	"github.com/belay-sh/belay/seedkeys"
)

type fakeRun struct {
	ran  []string
	fail string // a command starting with this fails
}

func (f *fakeRun) run(_ context.Context, argv []string) (string, error) {
	cmd := strings.Join(argv, " ")
	f.ran = append(f.ran, cmd)
	if f.fail != "" && strings.HasPrefix(cmd, f.fail) {
		return "syntax error near line 1", errors.New("exit status 1")
	}
	return "", nil
}

const host = "app-1"

// env is a temp root ($BELAY_ROOT layout) with the converge key installed,
// an sshd drop-in and an ops sudoers file.
type env struct {
	root string
	key  ed25519.PrivateKey
	run  *fakeRun
	opts Options
}

func newEnv(t *testing.T) *env {
	t.Helper()
	key, err := seedkeys.ConvergeKey(strings.Repeat("z", 64), "test")
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	put(t, root, roles.ConvergePubFile, seedkeys.ConvergePublic(key)+"\n", 0o600)
	put(t, root, "/etc/ssh/sshd_config.d/10-belay.conf", "PasswordAuthentication no\n", 0o644)
	put(t, root, "/etc/sudoers.d/belay-ops", "# ops\n", 0o440)
	put(t, root, "/home/deploy/.ssh/authorized_keys", "ssh-ed25519 AAAAold\n", 0o600)
	if err := os.MkdirAll(filepath.Join(root, "/var/lib/belay"), 0o755); err != nil {
		t.Fatal(err)
	}
	e := &env{root: root, key: key, run: &fakeRun{}}
	e.opts = Options{Root: root, Hostname: host, Run: e.run.run,
		IDs:        func(string) (int, int, error) { return os.Getuid(), os.Getgid(), nil },
		OwnerOf:    func(string, fs.FileInfo) string { return "root:root" },
		UserExists: func(string) bool { return true }}
	return e
}

func put(t *testing.T, root, p, content string, mode os.FileMode) {
	t.Helper()
	full := filepath.Join(root, p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(full, mode); err != nil {
		t.Fatal(err)
	}
}

// wanted is a bundle that adds an admin key and changes the sshd drop-in;
// the sudoers file is unchanged.
func wanted(serial uint64, apply bool) converge.Bundle {
	return converge.Bundle{Stack: "test", Host: host, Serial: serial, Apply: apply, Files: []converge.File{
		{Path: "/etc/ssh/sshd_config.d/10-belay.conf", Content: "PasswordAuthentication no\nX11Forwarding no\n", Owner: "root:root", Mode: 0o644},
		{Path: "/etc/sudoers.d/belay-ops", Content: "# ops\n", Owner: "root:root", Mode: 0o440},
		{Path: "/home/deploy/.ssh/authorized_keys", Content: "ssh-ed25519 AAAAold\nssh-ed25519 AAAAnew\n", Owner: "root:root", Mode: 0o600},
	}}
}

func (e *env) sign(t *testing.T, b converge.Bundle) []byte {
	t.Helper()
	w, err := converge.Sign(e.key, b)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// snapshot is every path under root with its mode, content or link target.
func snapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(p, root)
		if strings.HasPrefix(rel, "/run") {
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		v := fi.Mode().String()
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			v += " -> " + l
		case fi.Mode().IsRegular():
			b, _ := os.ReadFile(p)
			v += " " + string(b)
		}
		out[rel] = v
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameTree(t *testing.T, before, after map[string]string) {
	t.Helper()
	for k, v := range before {
		if after[k] != v {
			t.Errorf("%s changed: %q -> %q", k, v, after[k])
		}
	}
	for k, v := range after {
		if _, ok := before[k]; !ok {
			t.Errorf("%s appeared: %q", k, v)
		}
	}
}

func TestApplyWritesOnlyChangesAndReloadsOnlyTheirServices(t *testing.T) {
	e := newEnv(t)
	sudoers := filepath.Join(e.root, "/etc/sudoers.d/belay-ops")
	before, _ := os.Stat(sudoers)
	res, err := Apply(context.Background(), e.sign(t, wanted(10, true)), e.opts)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Applied || len(res.Plan.Changes) != 2 {
		t.Fatalf("result = %+v, expected 2 changes applied", res)
	}
	b, _ := os.ReadFile(filepath.Join(e.root, "/home/deploy/.ssh/authorized_keys"))
	if !strings.Contains(string(b), "AAAAnew") {
		t.Errorf("authorized_keys not written: %q", b)
	}
	if fi, _ := os.Stat(filepath.Join(e.root, "/home/deploy/.ssh/authorized_keys")); fi.Mode().Perm() != 0o600 {
		t.Errorf("authorized_keys mode %v", fi.Mode())
	}
	after, _ := os.Stat(sudoers)
	if !after.ModTime().Equal(before.ModTime()) {
		t.Error("unchanged sudoers file was rewritten")
	}
	want := []string{"sshd -t", "systemctl reload ssh.service"}
	if strings.Join(e.run.ran, "|") != strings.Join(want, "|") {
		t.Errorf("ran %q, expected %q (no visudo: sudoers unchanged; nothing else reloaded)", e.run.ran, want)
	}
	if s, _ := readSerial(filepath.Join(e.root, SerialFile)); s != 10 {
		t.Errorf("serial = %d, expected 10", s)
	}
	// Converged: the next run changes nothing and runs nothing.
	e.run.ran = nil
	res, err = Apply(context.Background(), e.sign(t, wanted(11, true)), e.opts)
	if err != nil || len(res.Plan.Changes) != 0 || len(e.run.ran) != 0 {
		t.Errorf("second run: err %v, changes %d, ran %q; expected nothing", err, len(res.Plan.Changes), e.run.ran)
	}
}

func TestDryRunShowsOldContentAndChangesNothing(t *testing.T) {
	e := newEnv(t)
	before := snapshot(t, e.root)
	res, err := Apply(context.Background(), e.sign(t, wanted(5, false)), e.opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.Applied || len(res.Plan.Changes) != 2 || res.Plan.Changes[0].Old == "" {
		t.Fatalf("dry run result %+v", res)
	}
	after := snapshot(t, e.root)
	delete(after, SerialFile)
	sameTree(t, before, after)
	if len(e.run.ran) != 0 {
		t.Errorf("dry run ran %q", e.run.ran)
	}
	// A dry-run bundle is consumed too: it cannot be replayed to read files.
	if _, err := Apply(context.Background(), e.sign(t, wanted(5, false)), e.opts); err == nil || !strings.Contains(err.Error(), "not newer") {
		t.Errorf("replayed dry run: %v", err)
	}
}

// TestHostileBundlesChangeNothing: every bundle the helper must refuse leaves
// the tree exactly as it was (serial included) and runs no command.
func TestHostileBundlesChangeNothing(t *testing.T) {
	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	cases := []struct {
		name  string
		setup func(t *testing.T, e *env)
		wire  func(t *testing.T, e *env) []byte
		want  string
	}{
		{name: "signed by another key", want: "signature",
			wire: func(t *testing.T, e *env) []byte { w, _ := converge.Sign(otherKey, wanted(20, true)); return w }},
		{name: "tampered payload", want: "signature",
			wire: func(t *testing.T, e *env) []byte {
				w, _ := converge.Sign(e.key, wanted(20, true))
				// Re-sign nothing: flip a byte of the signed JSON after decompressing.
				var sb struct{ Payload, Signature []byte }
				if err := json.Unmarshal(gunzip(t, w), &sb); err != nil {
					t.Fatal(err)
				}
				sb.Payload = bytes.Replace(sb.Payload, []byte("AAAAnew"), []byte("BAAAnew"), 1)
				raw, _ := json.Marshal(map[string][]byte{"payload": sb.Payload, "signature": sb.Signature})
				return raw
			}},
		{name: "unsigned", want: "not a signed bundle",
			wire: func(t *testing.T, e *env) []byte {
				return []byte(`{"version":1,"host":"app-1","serial":99,"apply":true}`)
			}},
		{name: "other host", want: `for host "db-1"`,
			wire: func(t *testing.T, e *env) []byte { b := wanted(20, true); b.Host = "db-1"; return e.sign(t, b) }},
		{name: "replay", want: "not newer",
			setup: func(t *testing.T, e *env) { put(t, e.root, SerialFile, "20\n", 0o600) },
			wire:  func(t *testing.T, e *env) []byte { return e.sign(t, wanted(20, true)) }},
		{name: "older serial", want: "not newer",
			setup: func(t *testing.T, e *env) { put(t, e.root, SerialFile, "20\n", 0o600) },
			wire:  func(t *testing.T, e *env) []byte { return e.sign(t, wanted(7, true)) }},
		{name: "path traversal", want: "not a path converge manages",
			wire: func(t *testing.T, e *env) []byte {
				b := wanted(20, true)
				b.Files = append(b.Files, converge.File{Path: "/etc/ssh/sshd_config.d/../../shadow", Content: "x", Owner: "root:root", Mode: 0o644})
				return e.sign(t, b)
			}},
		{name: "path outside the roles' set", want: "not a path converge manages",
			wire: func(t *testing.T, e *env) []byte {
				b := wanted(20, true)
				b.Files = append(b.Files, converge.File{Path: "/etc/cron.d/x", Content: "* * * * * root id\n", Owner: "root:root", Mode: 0o644})
				return e.sign(t, b)
			}},
		{name: "converge key itself", want: "not a path converge manages",
			wire: func(t *testing.T, e *env) []byte {
				b := wanted(20, true)
				b.Files = append(b.Files, converge.File{Path: roles.ConvergePubFile, Content: "ed25519 x\n", Owner: "root:root", Mode: 0o600})
				return e.sign(t, b)
			}},
		{name: "symlinked target", want: "symlink",
			setup: func(t *testing.T, e *env) {
				p := filepath.Join(e.root, "/home/deploy/.ssh/authorized_keys")
				os.Remove(p)
				if err := os.Symlink(filepath.Join(e.root, "/etc/shadow-target"), p); err != nil {
					t.Fatal(err)
				}
			},
			wire: func(t *testing.T, e *env) []byte { return e.sign(t, wanted(20, true)) }},
		{name: "symlinked parent directory", want: "symlink",
			setup: func(t *testing.T, e *env) {
				d := filepath.Join(e.root, "/home/deploy/.ssh")
				os.RemoveAll(d)
				if err := os.MkdirAll(filepath.Join(e.root, "/root/.ssh"), 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink(filepath.Join(e.root, "/root/.ssh"), d); err != nil {
					t.Fatal(err)
				}
			},
			wire: func(t *testing.T, e *env) []byte { return e.sign(t, wanted(20, true)) }},
		{name: "hard-linked target", want: "hard links",
			setup: func(t *testing.T, e *env) {
				p := filepath.Join(e.root, "/home/deploy/.ssh/authorized_keys")
				os.Remove(p)
				put(t, e.root, "/etc/shadow", "root:secret-hash:::\n", 0o600)
				if err := os.Link(filepath.Join(e.root, "/etc/shadow"), p); err != nil {
					t.Fatal(err)
				}
			},
			wire: func(t *testing.T, e *env) []byte { return e.sign(t, wanted(20, false)) }},
		{name: "world-writable mode", want: "world-writable",
			wire: func(t *testing.T, e *env) []byte {
				b := wanted(20, true)
				b.Files[0].Mode = 0o666
				return e.sign(t, b)
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			if c.setup != nil {
				c.setup(t, e)
			}
			before := snapshot(t, e.root)
			_, err := Apply(context.Background(), c.wire(t, e), e.opts)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, expected a refusal mentioning %q", err, c.want)
			}
			sameTree(t, before, snapshot(t, e.root))
			if len(e.run.ran) != 0 {
				t.Errorf("ran %q", e.run.ran)
			}
		})
	}
}

func TestFailedCheckRestoresPreviousFiles(t *testing.T) {
	for _, c := range []struct{ fail, want string }{
		{fail: "sshd -t", want: "nothing reloaded"},
		{fail: "systemctl reload ssh", want: "restored and reloaded"},
	} {
		t.Run(c.fail, func(t *testing.T) {
			e := newEnv(t)
			e.run.fail = c.fail
			before := snapshot(t, e.root)
			res, err := Apply(context.Background(), e.sign(t, wanted(3, true)), e.opts)
			if err == nil || !strings.Contains(err.Error(), c.want) || !res.Restored || res.Applied {
				t.Fatalf("err = %v, restored %v, applied %v", err, res.Restored, res.Applied)
			}
			after := snapshot(t, e.root)
			delete(after, SerialFile)
			sameTree(t, before, after)
			for _, r := range e.run.ran {
				if c.fail == "sshd -t" && strings.HasPrefix(r, "systemctl") {
					t.Errorf("reloaded after a failed check: %q", e.run.ran)
				}
			}
		})
	}
}

func TestNewAppCreatesUserDirsAndFiles(t *testing.T) {
	e := newEnv(t)
	created := map[string]bool{}
	e.opts.UserExists = func(n string) bool { return created[n] }
	e.run.fail = ""
	b := converge.Bundle{Stack: "test", Host: host, Serial: 1, Apply: true,
		Users: []converge.User{{Name: "restic-shop", Home: "/srv/restic/shop", Shell: "/usr/sbin/nologin"}},
		Dirs:  []converge.Dir{{Path: "/srv/restic/shop/repo", Owner: "root:root", Mode: 0o700}},
		Files: []converge.File{{Path: "/etc/belay/restic-apps", Content: "shop restic-shop\n", Owner: "root:root", Mode: 0o644}}}
	res, err := Apply(context.Background(), e.sign(t, b), e.opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.UsersCreated) != 1 || len(res.DirsCreated) != 4 {
		t.Errorf("users %v dirs %v", res.UsersCreated, res.DirsCreated)
	}
	if fi, err := os.Stat(filepath.Join(e.root, "/srv/restic/shop/repo")); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("repo dir: %v %v", fi, err)
	}
	if !strings.Contains(strings.Join(e.run.ran, "|"), "belay-restic-maintain.service") {
		t.Errorf("ran %q, expected the restic repository to be initialised", e.run.ran)
	}
}

func gunzip(t *testing.T, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestDryRunNeverReturnsOldSecrets: the dry run's old contents travel back
// through the deploy user's session; a secret file's never does.
func TestDryRunNeverReturnsOldSecrets(t *testing.T) {
	e := newEnv(t)
	put(t, e.root, "/etc/belay/restic-shop.pass", "old-secret-password\n", 0o640)
	b := wanted(9, false)
	b.Files = append(b.Files, converge.File{Path: "/etc/belay/restic-shop.pass", Content: "new\n", Owner: "root:root", Mode: 0o640})
	res, err := Apply(context.Background(), e.sign(t, b), e.opts)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(res)
	if strings.Contains(string(out), "old-secret-password") {
		t.Errorf("dry-run result carries an old secret: %s", out)
	}
}
