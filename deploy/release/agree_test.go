package release_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/belay-sh/belay/deploy/release"
	"github.com/belay-sh/belay/hostrelease"
)

// hdr builds one archive member for the agreement table.
func reg(name string, mode int64, body string) *tar.Header {
	return &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(body)), Format: tar.FormatPAX, PAXRecords: map[string]string{"belay.body": body}}
}
func dir(name string, mode int64) *tar.Header {
	return &tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode, Format: tar.FormatPAX}
}
func sym(name, target string) *tar.Header {
	return &tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777, Format: tar.FormatPAX}
}
func hard(name, target string) *tar.Header {
	return &tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: target, Mode: 0o644, Format: tar.FormatPAX}
}

var startHdr = reg("start", 0o755, "#!/bin/sh\necho hi\n")

// archive writes headers (body carried in the belay.body PAX record, which is
// stripped before writing) to a file and returns it with its bytes.
func archive(t *testing.T, gz bool, hs ...*tar.Header) (string, []byte) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range hs {
		h := *h
		body := h.PAXRecords["belay.body"]
		h.PAXRecords = nil
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write([]byte(body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	if gz {
		var z bytes.Buffer
		zw := gzip.NewWriter(&z)
		zw.Write(data)
		zw.Close()
		data = z.Bytes()
	}
	p := filepath.Join(t.TempDir(), "a.tar")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p, data
}

// hostUnpack runs the real receive and unpack scripts (GNU tar, awk, sh) in a
// temp dir, as a host would, and returns whether the release was created.
func hostUnpack(t *testing.T, data []byte, gz bool, lim hostrelease.Limits) (bool, string, hostrelease.Layout) {
	t.Helper()
	sum := sha256.Sum256(data)
	a := &hostrelease.Artifact{Kind: hostrelease.Tarball, Gzip: gz, SHA256: hex.EncodeToString(sum[:]), Size: int64(len(data)), Limits: lim}
	l := hostrelease.Layout{App: "shop", Base: filepath.Join(t.TempDir(), "srv")}
	if out, err := runRemote(t, l.ReceiveCommand("v1", a.SHA256), data); err != nil {
		t.Fatalf("receive: %v %s", err, out)
	}
	out, err := runRemote(t, l.UnpackCommand("v1", a), nil)
	_, statErr := os.Stat(l.Release("v1"))
	if (err == nil) != (statErr == nil) {
		t.Fatalf("unpack exit %v but release directory stat %v: %s", err, statErr, out)
	}
	return err == nil, out, l
}

// TestLocalAndHostAgree runs the same archives through release.Inspect and the
// real host unpack script: both must accept or both refuse.
func TestLocalAndHostAgree(t *testing.T) {
	small := hostrelease.Limits{MaxEntries: 4, MaxUnpacked: 100, MaxRatio: 100}
	tests := []struct {
		name string
		hs   []*tar.Header
		lim  hostrelease.Limits
		ok   bool
	}{
		{"plain", []*tar.Header{dir("./", 0o755), startHdr, reg("lib/x", 0o644, "x"), sym("lib/y", "x"), hard("z", "lib/x")}, hostrelease.Limits{}, true},
		{"issue 9: d -> . then d/ then d/l -> ../x", []*tar.Header{startHdr, sym("d", "."), dir("d/", 0o755), sym("d/l", "../x")}, hostrelease.Limits{}, false},
		{"write through symlink", []*tar.Header{startHdr, sym("d", "."), sym("d/l", "../x")}, hostrelease.Limits{}, false},
		{"file then entry below it", []*tar.Header{startHdr, reg("f", 0o644, "x"), reg("f/g", 0o644, "y")}, hostrelease.Limits{}, false},
		{"entry then symlink over its directory", []*tar.Header{startHdr, reg("a/x", 0o644, "x"), sym("a", "b")}, hostrelease.Limits{}, false},
		{"duplicate file", []*tar.Header{startHdr, reg("f", 0o644, "x"), reg("./f", 0o644, "y")}, hostrelease.Limits{}, false},
		{"duplicate directory", []*tar.Header{startHdr, dir("d", 0o755), reg("d/f", 0o644, "x"), dir("./d/", 0o755)}, hostrelease.Limits{}, true},
		{"symlink over a directory", []*tar.Header{startHdr, dir("d", 0o755), sym("d", ".")}, hostrelease.Limits{}, false},
		{"symlink target through a symlink", []*tar.Header{startHdr, reg("t", 0o644, "x"), sym("x/y/s", "../../t"), sym("x/y/a", "s/../..")}, hostrelease.Limits{}, false},
		{"symlink chain inside", []*tar.Header{startHdr, reg("t", 0o644, "x"), sym("b", "t"), sym("c", "b")}, hostrelease.Limits{}, true},
		{"symlink to .", []*tar.Header{startHdr, sym("self", ".")}, hostrelease.Limits{}, true},
		{"symlink outside", []*tar.Header{startHdr, sym("a/up", "../../x")}, hostrelease.Limits{}, false},
		{"symlink absolute", []*tar.Header{startHdr, sym("etc", "/etc")}, hostrelease.Limits{}, false},
		{"dot-dot", []*tar.Header{startHdr, reg("../evil", 0o644, "x")}, hostrelease.Limits{}, false},
		{"dot-dot inside", []*tar.Header{startHdr, reg("a/../../evil", 0o644, "x")}, hostrelease.Limits{}, false},
		{"absolute", []*tar.Header{startHdr, reg("/tmp/evil", 0o644, "x")}, hostrelease.Limits{}, false},
		{"hardlink to later file", []*tar.Header{startHdr, hard("h", "f"), reg("f", 0o644, "x")}, hostrelease.Limits{}, false},
		{"hardlink outside", []*tar.Header{startHdr, hard("h", "../../etc/passwd")}, hostrelease.Limits{}, false},
		{"fifo", []*tar.Header{startHdr, {Typeflag: tar.TypeFifo, Name: "ff", Mode: 0o644}}, hostrelease.Limits{}, false},
		{"setuid", []*tar.Header{startHdr, reg("s", 0o4755, "x")}, hostrelease.Limits{}, false},
		{"setgid directory", []*tar.Header{startHdr, dir("g", 0o2755)}, hostrelease.Limits{}, false},
		{"root is a symlink", []*tar.Header{sym("./", "/tmp"), startHdr}, hostrelease.Limits{}, false},
		{"utf-8, spaces, quotes and arrows in names", []*tar.Header{startHdr, reg("é ü.txt", 0o644, "x"), reg(`say "hi" -> x`, 0o644, "y"), sym("l -> x", "é ü.txt"), hard("h link to x", `say "hi" -> x`)}, hostrelease.Limits{}, true},
		{"newline in name", []*tar.Header{startHdr, reg("a\nb", 0o644, "x")}, hostrelease.Limits{}, false},
		{"backslash in name", []*tar.Header{startHdr, reg(`a\b`, 0o644, "x")}, hostrelease.Limits{}, false},
		{"tab in symlink target", []*tar.Header{startHdr, reg("a\tb", 0o644, "x")}, hostrelease.Limits{}, false},
		{"unwritable directories", []*tar.Header{startHdr, dir("ro", 0o555), dir("ro/noexec", 0o644), reg("ro/noexec/f", 0o444, "x")}, hostrelease.Limits{}, true},
		{"start symlink", []*tar.Header{reg("bin/app", 0o755, "#!/bin/sh"), sym("start", "bin/app")}, hostrelease.Limits{}, true},
		{"start symlink to a directory", []*tar.Header{dir("bin", 0o755), sym("start", "bin")}, hostrelease.Limits{}, false},
		{"start symlink to a symlink", []*tar.Header{reg("bin/app", 0o755, "#!/bin/sh"), sym("bin/a", "app"), sym("start", "bin/a")}, hostrelease.Limits{}, false},
		{"start hardlink to non-executable", []*tar.Header{reg("app", 0o644, "#!/bin/sh"), hard("start", "app")}, hostrelease.Limits{}, false},
		{"start hardlink to executable", []*tar.Header{reg("app", 0o755, "#!/bin/sh"), hard("start", "app")}, hostrelease.Limits{}, true},
		{"start group-executable only", []*tar.Header{reg("start", 0o650, "#!/bin/sh")}, hostrelease.Limits{}, false},
		{"no start", []*tar.Header{reg("app", 0o755, "#!/bin/sh")}, hostrelease.Limits{}, false},
		{"entries at the limit", []*tar.Header{dir("./", 0o755), startHdr, reg("a", 0o644, ""), reg("b", 0o644, "")}, small, true},
		{"one entry over the limit", []*tar.Header{dir("./", 0o755), startHdr, reg("a", 0o644, ""), reg("b", 0o644, ""), reg("c", 0o644, "")}, small, false},
		{"bytes over the limit", []*tar.Header{startHdr, reg("big", 0o644, strings.Repeat("x", 90))}, small, false},
	}
	for _, tc := range tests {
		for _, gz := range []bool{false, true} {
			name := tc.name
			if gz {
				name += ", gzip"
			}
			t.Run(name, func(t *testing.T) {
				lim := tc.lim
				if lim == (hostrelease.Limits{}) {
					lim = hostrelease.DefaultLimits()
				}
				p, data := archive(t, gz, tc.hs...)
				_, localErr := release.InspectLimits(p, lim)
				hostOK, out, l := hostUnpack(t, data, gz, lim)
				if (localErr == nil) != tc.ok || hostOK != tc.ok {
					t.Fatalf("want accepted=%v; local: %v; host accepted=%v: %s", tc.ok, localErr, hostOK, out)
				}
				if !hostOK {
					if !strings.Contains(out, "refused") {
						t.Errorf("host refusal does not say why: %s", out)
					}
					return
				}
				// Every directory ends up u+rwx for the deploy user (cleanup needs it).
				filepath.Walk(l.Release("v1"), func(p string, fi os.FileInfo, err error) error {
					if err == nil && fi.IsDir() && fi.Mode().Perm()&0o700 != 0o700 {
						t.Errorf("%s: mode %v after unpack, want u+rwx", p, fi.Mode())
					}
					return nil
				})
			})
		}
	}
}
