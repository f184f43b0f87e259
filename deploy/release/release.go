// Package release checks a release artifact on the deployer's machine before a
// single byte goes to a host: its kind (tarball or single executable), its
// sha256, and — for tarballs — that every entry stays inside the release
// directory. The result is a hostrelease.Artifact: package hostrelease builds
// the remote commands that receive, verify and unpack it with the same rules
// (an awk check of tar's listing) and GNU tar flags that refuse escapes a
// second time.
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

	"github.com/belay-sh/belay/hostrelease"
)

// UnsafeEntryError names an archive entry that would land outside the release directory.
type UnsafeEntryError struct {
	Artifact string
	Entry    string
	Reason   string
}

func (e *UnsafeEntryError) Error() string {
	return fmt.Sprintf("artifact %s: entry %q refused: %s (nothing was sent to any host)", e.Artifact, e.Entry, e.Reason)
}

// Inspect is InspectLimits with hostrelease.DefaultLimits (belay deploy's).
func Inspect(p string) (*hostrelease.Artifact, error) {
	return InspectLimits(p, hostrelease.DefaultLimits())
}

// InspectLimits reads the artifact once, streaming: it computes the sha256
// and, for tarballs, checks every entry against the archive rules (rules.go)
// and the limits. Any problem is an error naming the artifact and entry.
func InspectLimits(p string, lim hostrelease.Limits) (*hostrelease.Artifact, error) {
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
	a := &hostrelease.Artifact{Path: p, Size: st.Size(), Limits: lim}
	switch {
	case len(head) >= 2 && head[0] == 0x1f && head[1] == 0x8b:
		a.Kind, a.Gzip = hostrelease.Tarball, true
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
		a.Kind = hostrelease.Tarball
		if a.Entries, a.Unpacked, err = checkTar(p, br, lim, st.Size()); err != nil {
			return nil, err
		}
	case bytes.HasPrefix(head, []byte("\x7fELF")) || bytes.HasPrefix(head, []byte("#!")):
		a.Kind = hostrelease.Binary
	default:
		return nil, fmt.Errorf("artifact %s: neither a tar archive (.tar, .tar.gz) nor an executable (ELF or #! script)", p)
	}
	if _, err := io.Copy(io.Discard, br); err != nil {
		return nil, fmt.Errorf("artifact %s: %w", p, err)
	}
	a.SHA256 = hex.EncodeToString(h.Sum(nil))
	return a, nil
}
