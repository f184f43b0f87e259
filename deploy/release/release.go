// Package release checks a release artifact on the deployer's machine before a
// single byte goes to a host: its kind (tarball or single executable), its
// sha256, and — for tarballs — that every entry stays inside the release
// directory. It also builds the remote commands that receive, verify and unpack
// the artifact with GNU tar flags that refuse escapes a second time.
package release

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
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
	// Unpacked is the sum of the regular files' sizes (tarballs).
	Unpacked int64 `json:"unpacked,omitempty"`
	// Limits are the caps this artifact was checked against; the host unpack
	// command checks the same caps again before extracting.
	Limits Limits `json:"limits"`
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

// Inspect is InspectLimits with DefaultLimits.
func Inspect(p string) (*Artifact, error) { return InspectLimits(p, DefaultLimits()) }

// InspectLimits reads the artifact once, streaming: it computes the sha256
// and, for tarballs, checks every entry against the archive rules (rules.go)
// and the limits. Any problem is an error naming the artifact and entry.
func InspectLimits(p string, lim Limits) (*Artifact, error) {
	if err := lim.Validate(); err != nil {
		return nil, err
	}
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
	a := &Artifact{Path: p, Size: st.Size(), Limits: lim}
	switch {
	case len(head) >= 2 && head[0] == 0x1f && head[1] == 0x8b:
		a.Kind, a.Gzip = Tarball, true
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("artifact %s: gzip: %w", p, err)
		}
		if a.Entries, a.Unpacked, err = checkTar(p, zr, lim, st.Size()); err != nil {
			return nil, err
		}
		// Drain any trailing bytes so the checksum covers the whole file.
		if _, err := io.Copy(io.Discard, zr); err != nil {
			return nil, fmt.Errorf("artifact %s: gzip: %w", p, err)
		}
	case len(head) >= 262 && bytes.Equal(head[257:262], []byte("ustar")):
		a.Kind = Tarball
		if a.Entries, a.Unpacked, err = checkTar(p, br, lim, st.Size()); err != nil {
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
