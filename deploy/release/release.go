// Package release checks a release artifact on the deployer's machine before a
// single byte goes to a host: its kind (tarball or single executable), its
// sha256, and — for tarballs — that every entry stays inside the release
// directory. It also builds the remote commands that receive, verify and unpack
// the artifact with GNU tar flags that refuse escapes a second time.
package release

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"regexp"
	"strings"
)

// Kind is how an artifact becomes a release directory.
type Kind string

// The artifact kinds.
const (
	// Tarball is a tar archive (optionally gzip-compressed) whose root holds an executable `start`.
	Tarball Kind = "tarball"
	// Binary is a single executable (ELF or #! script) installed as `start`.
	Binary Kind = "binary"
)

// Artifact is a verified local artifact.
type Artifact struct {
	Path   string `json:"path"`
	Kind   Kind   `json:"kind"`
	Gzip   bool   `json:"gzip,omitempty"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	// Entries is the number of archive members (tarballs).
	Entries int `json:"entries,omitempty"`
}

// idRe is what a release id may look like: it becomes a directory name and a shell word.
var idRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ValidateID checks a release id (e.g. "v42", "2026-11-22.1", a git sha).
func ValidateID(id string) error {
	if !idRe.MatchString(id) || strings.Contains(id, "..") {
		return fmt.Errorf("release %q: expected 1-64 characters of letters, digits, '.', '_', '-', starting with a letter or digit, without '..'", id)
	}
	return nil
}

// UnsafeEntryError names an archive entry that would land outside the release directory.
type UnsafeEntryError struct {
	Artifact string
	Entry    string
	Reason   string
}

func (e *UnsafeEntryError) Error() string {
	return fmt.Sprintf("artifact %s: entry %q refused: %s (nothing was sent to any host)", e.Artifact, e.Entry, e.Reason)
}

// Inspect reads the artifact once: it computes the sha256 and, for tarballs,
// checks every entry. Any problem is an error naming the artifact and entry.
func Inspect(p string) (*Artifact, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("artifact: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("artifact: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("artifact %s: not a regular file", p)
	}
	if st.Size() == 0 {
		return nil, fmt.Errorf("artifact %s: empty file", p)
	}
	h := sha256.New()
	br := bufio.NewReaderSize(io.TeeReader(f, h), 64<<10)
	head, _ := br.Peek(512)
	a := &Artifact{Path: p, Size: st.Size()}
	switch {
	case len(head) >= 2 && head[0] == 0x1f && head[1] == 0x8b:
		a.Kind, a.Gzip = Tarball, true
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("artifact %s: gzip: %w", p, err)
		}
		if a.Entries, err = checkTar(p, zr); err != nil {
			return nil, err
		}
		// Drain any trailing bytes so the checksum covers the whole file.
		if _, err := io.Copy(io.Discard, zr); err != nil {
			return nil, fmt.Errorf("artifact %s: gzip: %w", p, err)
		}
	case len(head) >= 262 && bytes.Equal(head[257:262], []byte("ustar")):
		a.Kind = Tarball
		if a.Entries, err = checkTar(p, br); err != nil {
			return nil, err
		}
	case bytes.HasPrefix(head, []byte("\x7fELF")) || bytes.HasPrefix(head, []byte("#!")):
		a.Kind = Binary
	default:
		return nil, fmt.Errorf("artifact %s: neither a tar archive (.tar, .tar.gz) nor an executable (ELF or #! script)", p)
	}
	if _, err := io.Copy(io.Discard, br); err != nil {
		return nil, fmt.Errorf("artifact %s: %w", p, err)
	}
	a.SHA256 = hex.EncodeToString(h.Sum(nil))
	return a, nil
}

// checkTar refuses any entry that could write outside the release directory or
// that the release layout does not allow, and requires an executable ./start.
func checkTar(name string, r io.Reader) (int, error) {
	tr := tar.NewReader(r)
	type entry struct {
		typ  byte
		mode int64
		link string
	}
	seen := map[string]entry{}
	var order []string
	n := 0
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, fmt.Errorf("artifact %s: tar: %w", name, err)
		}
		n++
		bad := func(reason string) error { return &UnsafeEntryError{Artifact: name, Entry: hdr.Name, Reason: reason} }
		clean, err := cleanName(hdr.Name)
		if err != nil {
			return 0, bad(err.Error())
		}
		if hdr.Mode&0o6000 != 0 {
			return 0, bad("setuid/setgid bit")
		}
		switch hdr.Typeflag {
		case tar.TypeReg, tar.TypeDir:
		case tar.TypeSymlink:
			if hdr.Linkname == "" {
				return 0, bad("symlink with empty target")
			}
			if path.IsAbs(hdr.Linkname) {
				return 0, bad("symlink to absolute path " + hdr.Linkname + " points outside the release")
			}
			if t := path.Join(path.Dir(clean), hdr.Linkname); t == ".." || strings.HasPrefix(t, "../") {
				return 0, bad("symlink to " + hdr.Linkname + " points outside the release")
			}
		case tar.TypeLink:
			lc, err := cleanName(hdr.Linkname)
			if err != nil {
				return 0, bad("hardlink target " + hdr.Linkname + ": " + err.Error())
			}
			if e, ok := seen[lc]; !ok || e.typ != tar.TypeReg {
				return 0, bad("hardlink to " + hdr.Linkname + ", which is not a regular file earlier in the archive")
			}
		default:
			return 0, bad(fmt.Sprintf("entry type %q (devices, fifos and the like are not allowed)", hdr.Typeflag))
		}
		if clean == "." {
			continue
		}
		seen[clean] = entry{typ: hdr.Typeflag, mode: hdr.Mode, link: hdr.Linkname}
		order = append(order, clean)
	}
	// A path through a symlinked directory escapes lexical checks (d -> . then
	// d/l -> ../x), so no entry may live below any symlink of the archive.
	for _, p := range order {
		for dir := path.Dir(p); dir != "."; dir = path.Dir(dir) {
			if e, ok := seen[dir]; ok && e.typ == tar.TypeSymlink {
				return 0, &UnsafeEntryError{Artifact: name, Entry: p, Reason: "lies below the symlink " + dir}
			}
		}
	}
	st, ok := seen["start"]
	switch {
	case !ok:
		return 0, fmt.Errorf("artifact %s: no `start` at the archive root (the release layout runs ./start)", name)
	case st.typ == tar.TypeSymlink:
		t := path.Join(".", st.link)
		if e, ok := seen[t]; !ok || e.typ != tar.TypeReg || e.mode&0o111 == 0 {
			return 0, fmt.Errorf("artifact %s: `start` is a symlink to %s, which is not an executable file in the archive", name, st.link)
		}
	case st.typ != tar.TypeReg && st.typ != tar.TypeLink:
		return 0, fmt.Errorf("artifact %s: `start` is not a regular file", name)
	case st.mode&0o111 == 0:
		return 0, fmt.Errorf("artifact %s: `start` is not executable (mode %04o); chmod +x it before packing", name, st.mode)
	}
	return n, nil
}

// cleanName normalizes an archive path ("./a/b/" -> "a/b") and refuses absolute
// paths and any ".." component, as GNU tar would (we refuse instead of stripping).
func cleanName(n string) (string, error) {
	if n == "" {
		return "", errors.New("empty name")
	}
	if strings.HasPrefix(n, "/") {
		return "", errors.New("absolute path")
	}
	if strings.ContainsRune(n, 0) || strings.Contains(n, "\\") {
		return "", errors.New("NUL or backslash in name")
	}
	for _, part := range strings.Split(n, "/") {
		if part == ".." {
			return "", errors.New("contains '..'")
		}
	}
	return path.Clean(n), nil
}
