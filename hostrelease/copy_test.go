package hostrelease

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// copyHosts are two hosts' /srv as temp dirs: the source runs release v1.
type copyHosts struct {
	src, dst Layout
}

func newCopyHosts(t *testing.T) copyHosts {
	t.Helper()
	for _, tool := range []string{"tar", "find", "sort", "xargs", "stat", "sha256sum", "awk", "mktemp"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	h := copyHosts{src: Layout{App: "shop", Base: t.TempDir()}, dst: Layout{App: "shop", Base: t.TempDir()}}
	for _, l := range []Layout{h.src, h.dst} {
		// The host layout's setgid shared directory (deploy:belay-app 2775).
		mustMkdir(t, l.Root()+"/shared", 0o775)
		if err := os.Chmod(l.Root()+"/shared", os.ModeSetgid|0o775); err != nil {
			t.Fatal(err)
		}
	}
	rel := h.src.Release("v1")
	mustMkdir(t, rel+"/lib/nested/deep", 0o755)
	mustWrite(t, rel+"/start", "#!/bin/sh\nexec ./lib/nested/deep/app\n", 0o755)
	mustWrite(t, rel+"/lib/nested/deep/app", "binary\x00bytes\n", 0o755)
	mustWrite(t, rel+"/lib/nested/data.txt", "data\n", 0o644)
	mustWrite(t, rel+"/"+EnvFileName, "SECRET_KEY=hunter2\n", 0o600)
	if err := os.Symlink("nested/deep/app", rel+"/lib/app"); err != nil {
		t.Fatal(err)
	}
	mustMkdir(t, h.src.State()+"/releases", 0o755)
	mustWrite(t, h.src.Sum("v1"), strings.Repeat("ab", 32)+"\n", 0o644)
	if err := os.Symlink(rel, h.src.Current()); err != nil {
		t.Fatal(err)
	}
	return h
}

func mustMkdir(t *testing.T, p string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(p, mode); err != nil {
		t.Fatal(err)
	}
}

func mustWrite(t *testing.T, p, data string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(p, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

func manifestOf(t *testing.T, l Layout, id string) *Manifest {
	t.Helper()
	out, err := exec.Command("sh", "-c", l.ManifestCommand(id)).CombinedOutput()
	if err != nil {
		t.Fatalf("manifest: %v: %s", err, out)
	}
	m, err := ParseManifest(string(out))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func copyOf(t *testing.T, m *Manifest) Copy {
	t.Helper()
	c := Copy{ID: m.Current, Sum: m.Sum, Digest: m.Digest, Entries: m.Entries, Bytes: m.Bytes}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return c
}

// pipe runs send | receive as two real sh processes joined by a pipe,
// optionally through filter (a tampering link); it returns receive's output.
func pipe(t *testing.T, send, receive string, filter func([]byte) []byte) (string, error) {
	t.Helper()
	s := exec.Command("sh", "-c", send)
	var serr bytes.Buffer
	s.Stderr = &serr
	r := exec.Command("sh", "-c", receive)
	var rout bytes.Buffer
	r.Stdout, r.Stderr = &rout, &rout
	if filter == nil {
		pr, err := s.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		r.Stdin = pr
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
		rerr := r.Run()
		_ = s.Wait()
		return rout.String(), rerr
	}
	data, err := s.Output()
	if err != nil {
		t.Fatalf("send: %v: %s", err, serr.String())
	}
	r.Stdin = bytes.NewReader(filter(data))
	rerr := r.Run()
	return rout.String(), rerr
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// leftovers lists what a refused copy must not leave on the receiving host.
func leftovers(t *testing.T, l Layout, id string) []string {
	t.Helper()
	var out []string
	for _, p := range []string{l.Release(id), l.Releases() + "/.copy-" + id, l.State() + "/incoming/" + id + ".copy",
		l.State() + "/incoming/" + id + ".copy.part", l.Sum(id), l.Current()} {
		if _, err := os.Lstat(p); err == nil {
			out = append(out, p)
		}
	}
	tmps, _ := filepath.Glob(l.Root() + "/shared/.belay-env.*")
	return append(out, tmps...)
}

func TestCopyReleaseReal(t *testing.T) {
	h := newCopyHosts(t)
	src := manifestOf(t, h.src, "")
	if src.Current != "v1" || !src.Present || src.Entries != 9 {
		t.Fatalf("source manifest: %+v (want current v1, 9 entries)", src)
	}
	c := copyOf(t, src)
	out, err := pipe(t, h.src.SendCommand("v1"), h.dst.ReceiveCopyCommand(c), nil)
	if err != nil {
		t.Fatalf("copy: %v: %s", err, out)
	}
	if strings.Contains(out, "hunter2") {
		t.Fatalf("the env file's content reached the output: %s", out)
	}
	got := manifestOf(t, h.dst, "")
	if got.Current != "v1" || got.Digest != src.Digest || got.Sum != src.Sum {
		t.Fatalf("after the copy the new host has %+v, the source %+v", got, src)
	}
	if target, _ := os.Readlink(h.dst.Current()); target != h.dst.Release("v1") {
		t.Errorf("current -> %q, want %q (absolute, as a deploy links it)", target, h.dst.Release("v1"))
	}
	st, err := os.Stat(h.dst.Release("v1") + "/" + EnvFileName)
	if err != nil {
		t.Fatal(err)
	}
	shared, _ := os.Stat(h.dst.Root() + "/shared")
	if st.Mode().Perm() != 0o600 || st.Sys().(*syscall.Stat_t).Gid != shared.Sys().(*syscall.Stat_t).Gid {
		t.Errorf("env file mode %v gid %d, want 0600 and the shared directory's group %d", st.Mode().Perm(),
			st.Sys().(*syscall.Stat_t).Gid, shared.Sys().(*syscall.Stat_t).Gid)
	}
	if st, err := os.Stat(h.dst.Release("v1") + "/lib/nested/deep/app"); err != nil || st.Mode().Perm() != 0o755 {
		t.Errorf("nested executable: %v %v", st, err)
	}
	if l := leftovers(t, h.dst, "v1"); len(l) != 3 { // the release, its sums file, current
		t.Errorf("after the copy: %v, want the release, its sums file and current only", l)
	}

	// A rerun is a no-op that does not even read its input.
	out, err = pipe(t, "true", h.dst.ReceiveCopyCommand(c), nil)
	if err != nil || !strings.Contains(out, "here already with the same content") {
		t.Fatalf("rerun: %v: %s", err, out)
	}
	// A rerun after a failure between the rename and the link also ends linked.
	if err := os.Remove(h.dst.Current()); err != nil {
		t.Fatal(err)
	}
	if out, err = pipe(t, "true", h.dst.ReceiveCopyCommand(c), nil); err != nil || manifestOf(t, h.dst, "").Current != "v1" {
		t.Fatalf("rerun without current: %v: %s", err, out)
	}
	// The same id with other content is refused and left alone.
	other := c
	other.Digest = strings.Repeat("0", 64)
	if out, err = pipe(t, "true", h.dst.ReceiveCopyCommand(other), nil); exitCode(err) != 66 || !strings.Contains(out, "other content") {
		t.Fatalf("same id, other content: %v: %s", err, out)
	}
	if manifestOf(t, h.dst, "v1").Digest != src.Digest {
		t.Fatal("the refused copy changed the release")
	}
}

// TestCopyReleaseTampered: a stream whose bytes changed on the way, one that
// is cut short, and a hostile one are all refused and leave nothing.
func TestCopyReleaseTampered(t *testing.T) {
	tests := []struct {
		name   string
		filter func([]byte) []byte
		codes  []int
		msg    string
	}{
		{"a file's bytes changed", func(b []byte) []byte {
			return bytes.Replace(b, []byte("data\n"), []byte("DATA\n"), 1)
		}, []int{69}, "arrived with manifest"},
		{"the env file replaced", func(b []byte) []byte {
			return bytes.Replace(b, []byte("hunter2"), []byte("hunter3"), 1)
		}, []int{69}, "arrived with manifest"},
		{"cut short (tar refuses it, or, cut at a block boundary, files are missing)", func(b []byte) []byte { return b[:len(b)/2] }, []int{67, 69}, "refused"},
		{"cut at a block boundary", func(b []byte) []byte { return b[:1024] }, []int{67, 69}, "refused"},
		{"a symlink escaping the release", func([]byte) []byte {
			return tarOf(t, []tar.Header{
				{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755},
				{Name: "./start", Typeflag: tar.TypeReg, Mode: 0o755, Size: 3},
				{Name: "./etc", Typeflag: tar.TypeSymlink, Linkname: "../../../../etc"},
			})
		}, []int{67}, "symlink points outside the release"},
		{"an absolute symlink", func([]byte) []byte {
			return tarOf(t, []tar.Header{
				{Name: "./start", Typeflag: tar.TypeReg, Mode: 0o755, Size: 3},
				{Name: "./passwd", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"},
			})
		}, []int{67}, "symlink to an absolute path"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newCopyHosts(t)
			c := copyOf(t, manifestOf(t, h.src, ""))
			out, err := pipe(t, h.src.SendCommand("v1"), h.dst.ReceiveCopyCommand(c), tc.filter)
			if !slices.Contains(tc.codes, exitCode(err)) || !strings.Contains(out, tc.msg) {
				t.Fatalf("got %v (exit %d), want exit %v with %q: %s", err, exitCode(err), tc.codes, tc.msg, out)
			}
			if strings.Contains(out, "hunter") {
				t.Errorf("the env file's content reached the output: %s", out)
			}
			if l := leftovers(t, h.dst, "v1"); len(l) != 0 {
				t.Errorf("a refused copy left %v", l)
			}
			// The source is untouched, and a clean rerun then works.
			if out, err := pipe(t, h.src.SendCommand("v1"), h.dst.ReceiveCopyCommand(c), nil); err != nil {
				t.Fatalf("rerun after the refusal: %v: %s", err, out)
			}
		})
	}
}

func tarOf(t *testing.T, hs []tar.Header) []byte {
	t.Helper()
	var b bytes.Buffer
	w := tar.NewWriter(&b)
	for _, h := range hs {
		h.Format = tar.FormatGNU
		if err := w.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			_, _ = io.WriteString(w, strings.Repeat("x", int(h.Size)))
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestCopyValidate(t *testing.T) {
	ok := Copy{ID: "v1", Sum: strings.Repeat("a", 64), Digest: strings.Repeat("b", 64), Entries: 2, Bytes: 10}
	tests := []struct {
		name string
		edit func(*Copy)
		want string
	}{
		{"fine", func(*Copy) {}, ""},
		{"env-only release sum", func(c *Copy) { c.Sum = "copied-from-v0" }, ""},
		{"bad id", func(c *Copy) { c.ID = "../x" }, "release"},
		{"sum with a quote", func(c *Copy) { c.Sum = "x'; rm -rf /" }, "sums file content"},
		{"short digest", func(c *Copy) { c.Digest = "abc" }, "manifest digest"},
		{"no entries", func(c *Copy) { c.Entries = 0 }, "at least one entry"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.edit(&c)
			err := c.Validate()
			if (err == nil) != (tc.want == "") || err != nil && !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate: %v, want %q", err, tc.want)
			}
		})
	}
}

// TestManifestSees: the digest changes with any file's mode, content or
// name, a symlink's target, and an added empty directory.
func TestManifestSees(t *testing.T) {
	h := newCopyHosts(t)
	rel := h.src.Release("v1")
	edits := []struct {
		name string
		edit func() error
	}{
		{"mode", func() error { return os.Chmod(rel+"/lib/nested/data.txt", 0o600) }},
		{"content", func() error { return os.WriteFile(rel+"/lib/nested/data.txt", []byte("date\n"), 0o600) }},
		{"name", func() error { return os.Rename(rel+"/lib/nested/data.txt", rel+"/lib/nested/data.txu") }},
		{"symlink target", func() error {
			if err := os.Remove(rel + "/lib/app"); err != nil {
				return err
			}
			return os.Symlink("nested/data.txu", rel+"/lib/app")
		}},
		{"empty directory", func() error { return os.Mkdir(rel+"/empty", 0o755) }},
	}
	seen := map[string]string{manifestOf(t, h.src, "v1").Digest: "start"}
	for _, e := range edits {
		if err := e.edit(); err != nil {
			t.Fatal(err)
		}
		d := manifestOf(t, h.src, "v1").Digest
		if prev, ok := seen[d]; ok {
			t.Errorf("after the %s edit the digest is the one after %s", e.name, prev)
		}
		seen[d] = e.name
	}
}
