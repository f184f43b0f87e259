package release_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/belay-sh/belay/deploy/release"
	"github.com/belay-sh/belay/hostrelease"
)

type ent struct {
	name, link string
	typ        byte
	mode       int64
	body       string
}

var start = ent{name: "start", typ: tar.TypeReg, mode: 0o755, body: "#!/bin/sh\necho hi\n"}

func writeTar(t *testing.T, gz bool, ents ...ent) string {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: e.mode, Size: int64(len(e.body)), Format: tar.FormatPAX}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	tw.Close()
	data := buf.Bytes()
	name := "a.tar"
	if gz {
		var z bytes.Buffer
		zw := gzip.NewWriter(&z)
		zw.Write(data)
		zw.Close()
		data, name = z.Bytes(), "a.tar.gz"
	}
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestInspectRefusesEscapes(t *testing.T) {
	tests := []struct {
		name string
		ents []ent
		want string
	}{
		{"dot-dot", []ent{start, {name: "../evil", typ: tar.TypeReg, body: "x"}}, "'..'"},
		{"dot-dot inside", []ent{start, {name: "a/../../evil", typ: tar.TypeReg}}, "'..'"},
		{"absolute", []ent{start, {name: "/etc/cron.d/evil", typ: tar.TypeReg}}, "absolute path"},
		{"symlink absolute", []ent{start, {name: "etc", link: "/etc", typ: tar.TypeSymlink}}, "outside"},
		{"symlink outside", []ent{start, {name: "a/up", link: "../../x", typ: tar.TypeSymlink}}, "outside"},
		{"write through symlink", []ent{start, {name: "d", link: ".", typ: tar.TypeSymlink}, {name: "d/l", link: "../x", typ: tar.TypeSymlink}}, "below the symlink"},
		{"hardlink outside", []ent{start, {name: "h", link: "../../etc/passwd", typ: tar.TypeLink}}, "'..'"},
		{"hardlink absolute", []ent{start, {name: "h", link: "/etc/passwd", typ: tar.TypeLink}}, "absolute"},
		{"hardlink to nothing", []ent{start, {name: "h", link: "missing", typ: tar.TypeLink}}, "not a regular file earlier"},
		{"device", []ent{start, {name: "dev", typ: tar.TypeChar}}, "devices"},
		{"setuid", []ent{start, {name: "s", typ: tar.TypeReg, mode: 0o4755}}, "setuid"},
	}
	for _, tc := range tests {
		for _, gz := range []bool{false, true} {
			t.Run(tc.name, func(t *testing.T) {
				p := writeTar(t, gz, tc.ents...)
				_, err := release.Inspect(p)
				var ue *release.UnsafeEntryError
				if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("want UnsafeEntryError containing %q, got %v", tc.want, err)
				}
			})
		}
	}
}

func TestInspectLayout(t *testing.T) {
	dir := t.TempDir()
	elf := filepath.Join(dir, "app")
	os.WriteFile(elf, append([]byte("\x7fELF"), make([]byte, 100)...), 0o755)
	junk := filepath.Join(dir, "junk")
	os.WriteFile(junk, []byte("hello world"), 0o644)
	tests := []struct {
		name    string
		path    string
		kind    hostrelease.Kind
		wantErr string
	}{
		{"tarball", writeTar(t, true, ent{name: "./", typ: tar.TypeDir, mode: 0o755}, start, ent{name: "lib/x", typ: tar.TypeReg, body: "x"}, ent{name: "lib/y", link: "x", typ: tar.TypeSymlink}, ent{name: "z", link: "lib/x", typ: tar.TypeLink}), hostrelease.Tarball, ""},
		{"plain tar", writeTar(t, false, ent{name: "./start", typ: tar.TypeReg, mode: 0o700, body: "#!/bin/sh"}), hostrelease.Tarball, ""},
		{"start symlink", writeTar(t, false, ent{name: "bin/app", typ: tar.TypeReg, mode: 0o755}, ent{name: "start", link: "bin/app", typ: tar.TypeSymlink}), hostrelease.Tarball, ""},
		{"binary", elf, hostrelease.Binary, ""},
		{"no start", writeTar(t, false, ent{name: "app", typ: tar.TypeReg, mode: 0o755}), "", "no `start`"},
		{"start not executable", writeTar(t, false, ent{name: "start", typ: tar.TypeReg, mode: 0o644}), "", "not executable"},
		{"junk", junk, "", "neither a tar archive"},
		{"missing", filepath.Join(dir, "nope"), "", "no such file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := release.Inspect(tc.path)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("want error %q, got %v", tc.wantErr, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if a.Kind != tc.kind || len(a.SHA256) != 64 {
				t.Fatalf("got %+v", a)
			}
			out, _ := exec.Command("sha256sum", tc.path).Output()
			if !strings.HasPrefix(string(out), a.SHA256) {
				t.Fatalf("sha256 %s, sha256sum says %s", a.SHA256, out)
			}
		})
	}
}

func TestValidateID(t *testing.T) {
	for id, ok := range map[string]bool{"v42": true, "2026-11-22.1": true, "abc_DEF": true, "": false, "../x": false, "a b": false, "a..b": false, "-x": false, "a/b": false, "x;rm": false} {
		if err := hostrelease.ValidateID(id); (err == nil) != ok {
			t.Errorf("ValidateID(%q) = %v", id, err)
		}
	}
}

// runRemote runs a remote command locally with sh: the same script a host runs.
func runRemote(t *testing.T, script string, stdin []byte) (string, error) {
	t.Helper()
	cmd := exec.Command("sh", "-c", script)
	cmd.Stdin = bytes.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestReceiveHashes checks the arrival checksum with either hasher: openssl
// where the host has it, coreutils' sha256sum where it does not.
func TestReceiveHashes(t *testing.T) {
	data := []byte("artifact bytes\n")
	sum := sha256.Sum256(data)
	want := hex.EncodeToString(sum[:])
	noOpenSSL := t.TempDir() // a PATH with the script's tools but no openssl
	for _, tool := range []string{"sh", "cat", "mkdir", "mv", "rm", "cut", "sha256sum"} {
		p, err := exec.LookPath(tool)
		if err != nil {
			t.Skipf("%s not installed", tool)
		}
		if err := os.Symlink(p, filepath.Join(noOpenSSL, tool)); err != nil {
			t.Fatal(err)
		}
	}
	paths := map[string]string{"with openssl": os.Getenv("PATH"), "sha256sum only": noOpenSSL}
	if _, err := exec.LookPath("openssl"); err != nil {
		delete(paths, "with openssl")
	}
	for name, path := range paths {
		t.Run(name, func(t *testing.T) {
			l := hostrelease.Layout{App: "shop", Base: t.TempDir()}
			run := func(sha string) (string, error) {
				cmd := exec.Command(filepath.Join(noOpenSSL, "sh"), "-c", l.ReceiveCommand("v1", sha))
				cmd.Env = []string{"PATH=" + path}
				cmd.Stdin = bytes.NewReader(data)
				out, err := cmd.CombinedOutput()
				return string(out), err
			}
			if out, err := run(strings.Repeat("0", 64)); err == nil || !strings.Contains(out, "checksum mismatch on arrival: sha256 "+want) {
				t.Errorf("wrong checksum: %v %s", err, out)
			}
			if _, err := os.Stat(l.Incoming("v1") + ".part"); err == nil {
				t.Error("a mismatching upload was left behind")
			}
			if out, err := run(want); err != nil {
				t.Fatalf("right checksum refused: %v %s", err, out)
			}
			if got, err := os.ReadFile(l.Incoming("v1")); err != nil || !bytes.Equal(got, data) {
				t.Errorf("incoming file: %q %v", got, err)
			}
		})
	}
}

func TestReceiveAndUnpackWithRealTar(t *testing.T) {
	l := hostrelease.Layout{App: "shop", Base: t.TempDir()}
	p := writeTar(t, true, start, ent{name: "public/index.html", typ: tar.TypeReg, body: "<h1>"}, ent{name: "public/link", link: "index.html", typ: tar.TypeSymlink})
	a, err := release.Inspect(p)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(p)
	if out, err := runRemote(t, l.ReceiveCommand("v1", strings.Repeat("0", 64)), data); err == nil || !strings.Contains(out, "checksum mismatch") {
		t.Fatalf("wrong checksum accepted: %v %s", err, out)
	}
	if out, err := runRemote(t, l.ReceiveCommand("v1", a.SHA256), data); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if out, err := runRemote(t, l.UnpackCommand("v1", a), nil); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if fi, err := os.Stat(filepath.Join(l.Release("v1"), "start")); err != nil || fi.Mode()&0o111 == 0 {
		t.Fatalf("start: %v %v", fi, err)
	}
	if _, err := runRemote(t, l.Unpacked("v1", a.SHA256), nil); err != nil {
		t.Fatal("Unpacked check fails after unpack")
	}
	// Idempotent with the same artifact, refused with another.
	if out, err := runRemote(t, l.UnpackCommand("v1", a), nil); err != nil {
		t.Fatalf("re-run: %v %s", err, out)
	}
	b := *a
	b.SHA256 = strings.Repeat("1", 64)
	if out, err := runRemote(t, l.UnpackCommand("v1", &b), nil); err == nil || !strings.Contains(out, "another artifact") {
		t.Fatalf("same id, other artifact: %v %s", err, out)
	}
}

// TestRemoteTarRefusesEscapes sends archives that skip the local check straight
// to the remote unpack: GNU tar and the symlink re-check must still refuse them
// and leave nothing outside the staging directory.
func TestRemoteTarRefusesEscapes(t *testing.T) {
	tests := []struct {
		name string
		ents []ent
	}{
		{"dot-dot", []ent{start, {name: "../../escaped", typ: tar.TypeReg, body: "x"}}},
		{"symlink then write through it", []ent{start, {name: "out", link: "../../..", typ: tar.TypeSymlink}, {name: "out/escaped", typ: tar.TypeReg, body: "x"}}},
		{"absolute symlink", []ent{start, {name: "etc", link: "/etc", typ: tar.TypeSymlink}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			l := hostrelease.Layout{App: "shop", Base: filepath.Join(base, "srv")}
			p := writeTar(t, false, tc.ents...)
			data, _ := os.ReadFile(p)
			a := &hostrelease.Artifact{Kind: hostrelease.Tarball, SHA256: sha(t, p)}
			if out, err := runRemote(t, l.ReceiveCommand("v1", a.SHA256), data); err != nil {
				t.Fatalf("%v %s", err, out)
			}
			out, err := runRemote(t, l.UnpackCommand("v1", a), nil)
			if err == nil {
				t.Fatalf("escaping archive unpacked: %s", out)
			}
			if _, err := os.Stat(l.Release("v1")); err == nil {
				t.Fatal("release directory exists after a refused unpack")
			}
			filepath.Walk(base, func(p string, fi os.FileInfo, err error) error {
				if fi != nil && fi.Name() == "escaped" {
					t.Errorf("file escaped to %s", p)
				}
				return nil
			})
		})
	}
}

func sha(t *testing.T, p string) string {
	out, err := exec.Command("sha256sum", p).Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(out))[0]
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"1048576": 1 << 20, "4GiB": 4 << 30, "512M": 512 << 20, "10k": 10 << 10, "2 GB": 2 << 30, "1T": 1 << 40, "100B": 100,
		"": 0, "0": 0, "-1": 0, "1.5G": 0, "G": 0, "4GiBs": 0, "abc": 0, "9999999999T": 0} {
		got, err := release.ParseSize(in)
		if (err == nil) != (want != 0) || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
}

func TestLimitsValidate(t *testing.T) {
	d := hostrelease.DefaultLimits()
	for _, tc := range []struct {
		mod  func(*hostrelease.Limits)
		want string
	}{
		{func(l *hostrelease.Limits) { l.MaxEntries = 0 }, "--max-entries"},
		{func(l *hostrelease.Limits) { l.MaxUnpacked = -1 }, "--max-unpacked-size"},
		{func(l *hostrelease.Limits) { l.MaxRatio = 0 }, "--max-ratio"},
	} {
		l := d
		tc.mod(&l)
		if _, err := release.InspectLimits("/nonexistent", l); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("want an error naming %s, got %v", tc.want, err)
		}
	}
}
