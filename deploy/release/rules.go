package release

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/belay-sh/belay/hostrelease"
)

// The archive rules below are enforced twice: here, on the deployer's machine
// before anything is sent, and on the host by the awk program in hostrelease/hostcheck.go
// reading GNU tar's listing before anything is extracted. The two must give the
// same verdict for every archive (TestLocalAndHostAgree runs the same cases
// through both), so every rule is one both sides can state from the archive
// alone — no rule depends on what GNU tar happens to do on extraction:
//
//   - names and link targets: not empty, not absolute, no '..' component, no
//     backslash or control character;
//   - entry types: regular file, directory, symlink, hardlink (to a regular
//     file earlier in the archive); the root entry "./" may only be a directory;
//   - no setuid/setgid bit;
//   - a name appears once (a directory may repeat as a directory): GNU tar with
//     --keep-old-files refuses the second one, so the archive is refused here;
//   - no entry below a non-directory of the archive (d -> . then d/l);
//   - a symlink's target resolves lexically inside the release and does not go
//     through another symlink of the archive (s/.. is physical, not lexical);
//   - ./start is a regular file (or a hardlink or symlink to one in the
//     archive) with the owner's execute bit;
//   - at most MaxEntries entries and MaxUnpacked bytes of regular files, and
//     no more than MaxRatio times the artifact's size once past RatioFloor.

// LimitError says which limit an artifact exceeds and at which entry.
type LimitError struct {
	Artifact, Entry, Flag string
	Reason                string
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("artifact %s: refused at entry %q: %s (raise %s if this is intended; nothing was sent to any host)", e.Artifact, e.Entry, e.Reason, e.Flag)
}

type node struct {
	typ  byte
	mode int64
	link string
}

// checkTar applies the archive rules and limits to a tar stream of an
// artifact of size bytes; it returns the entry count and unpacked bytes.
// Limits are checked at each header, before its content is read, so a bomb is
// refused without decompressing it.
func checkTar(name string, r io.Reader, lim hostrelease.Limits, size int64) (int, int64, error) {
	tr := tar.NewReader(r)
	seen := map[string]node{}
	var order, symlinks []string
	n, total := 0, int64(0)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, 0, fmt.Errorf("artifact %s: tar: %w", name, err)
		}
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			continue // pax metadata (git archive writes one); GNU tar does not list it either
		}
		n++
		bad := func(reason string) error { return &UnsafeEntryError{Artifact: name, Entry: hdr.Name, Reason: reason} }
		if n > lim.MaxEntries {
			return 0, 0, &LimitError{Artifact: name, Entry: hdr.Name, Flag: "--max-entries", Reason: fmt.Sprintf("more than %d entries", lim.MaxEntries)}
		}
		clean, err := cleanName(hdr.Name)
		if err != nil {
			return 0, 0, bad(err.Error())
		}
		if hdr.Mode&0o6000 != 0 {
			return 0, 0, bad("setuid/setgid bit")
		}
		typ := hdr.Typeflag
		switch typ {
		case tar.TypeReg, '\x00', tar.TypeCont: // GNU tar extracts all three as regular files
			typ = tar.TypeReg
			total += hdr.Size
			if err := checkLimits(lim, name, hdr.Name, total, size); err != nil {
				return 0, 0, err
			}
		case tar.TypeDir:
		case tar.TypeSymlink:
			if hdr.Linkname == "" {
				return 0, 0, bad("symlink with empty target")
			}
			if err := nameChars(hdr.Linkname); err != nil {
				return 0, 0, bad("symlink target: " + err.Error())
			}
			if path.IsAbs(hdr.Linkname) {
				return 0, 0, bad("symlink to absolute path " + hdr.Linkname + " points outside the release")
			}
			if t := path.Join(path.Dir(clean), hdr.Linkname); t == ".." || strings.HasPrefix(t, "../") {
				return 0, 0, bad("symlink to " + hdr.Linkname + " points outside the release")
			}
			symlinks = append(symlinks, clean)
		case tar.TypeLink:
			lc, err := cleanName(hdr.Linkname)
			if err != nil {
				return 0, 0, bad("hardlink target " + hdr.Linkname + ": " + err.Error())
			}
			if e, ok := seen[lc]; !ok || e.typ != tar.TypeReg {
				return 0, 0, bad("hardlink to " + hdr.Linkname + ", which is not a regular file earlier in the archive")
			}
		default:
			return 0, 0, bad(fmt.Sprintf("entry type %q (devices, fifos and the like are not allowed)", typ))
		}
		if clean == "." {
			if typ != tar.TypeDir {
				return 0, 0, bad("the archive root may only be a directory")
			}
			continue
		}
		if prev, ok := seen[clean]; ok && (prev.typ != tar.TypeDir || typ != tar.TypeDir) {
			return 0, 0, bad("appears twice in the archive (the host's tar never overwrites an entry)")
		}
		seen[clean] = node{typ: typ, mode: hdr.Mode, link: hdr.Linkname}
		order = append(order, clean)
	}
	// A path through a symlinked directory escapes lexical checks (d -> . then
	// d/l -> ../x), and nothing can be created below a file: no entry may live
	// below any non-directory of the archive, whatever the order.
	for _, p := range order {
		for dir := path.Dir(p); dir != "."; dir = path.Dir(dir) {
			if e, ok := seen[dir]; ok && e.typ != tar.TypeDir {
				return 0, 0, &UnsafeEntryError{Artifact: name, Entry: p, Reason: "lies below " + kindName(e.typ) + " " + dir}
			}
		}
	}
	for _, s := range symlinks {
		if via := throughSymlink(seen, path.Dir(s), seen[s].link); via != "" {
			return 0, 0, &UnsafeEntryError{Artifact: name, Entry: s, Reason: "symlink target " + seen[s].link + " goes through the symlink " + via}
		}
	}
	return n, total, checkStart(name, seen)
}

// checkLimits applies the byte limits to a running total.
func checkLimits(l hostrelease.Limits, artifact, entry string, total, size int64) error {
	if total > l.MaxUnpacked {
		return &LimitError{Artifact: artifact, Entry: entry, Flag: "--max-unpacked-size", Reason: fmt.Sprintf("unpacks to more than %d bytes", l.MaxUnpacked)}
	}
	if total > hostrelease.RatioFloor && float64(total) > float64(l.MaxRatio)*float64(size) {
		return &LimitError{Artifact: artifact, Entry: entry, Flag: "--max-ratio", Reason: fmt.Sprintf("unpacks to %d bytes, more than %d times its size of %d bytes", total, l.MaxRatio, size)}
	}
	return nil
}

// throughSymlink walks target from dir component by component and returns the
// first symlink of the archive it passes through before its last component.
func throughSymlink(seen map[string]node, dir, target string) string {
	var stack []string
	if dir != "." {
		stack = strings.Split(dir, "/")
	}
	parts := strings.Split(target, "/")
	for i, c := range parts {
		switch c {
		case "", ".":
			continue
		case "..":
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
			continue
		}
		stack = append(stack, c)
		last := true
		for _, rest := range parts[i+1:] {
			if rest != "" && rest != "." {
				last = false
			}
		}
		p := strings.Join(stack, "/")
		if e, ok := seen[p]; ok && e.typ == tar.TypeSymlink && !last {
			return p
		}
	}
	return ""
}

// checkStart requires ./start to be an executable regular file of the archive,
// directly or through one hardlink or symlink.
func checkStart(name string, seen map[string]node) error {
	st, ok := seen["start"]
	target := st
	switch {
	case !ok:
		return fmt.Errorf("artifact %s: no `start` at the archive root (the release layout runs ./start)", name)
	case st.typ == tar.TypeSymlink:
		if target, ok = seen[path.Join(".", st.link)]; !ok || target.typ != tar.TypeReg {
			return fmt.Errorf("artifact %s: `start` is a symlink to %s, which is not a regular file in the archive", name, st.link)
		}
	case st.typ == tar.TypeLink:
		lc, _ := cleanName(st.link) // checked when the entry was read
		target = seen[lc]
	case st.typ != tar.TypeReg:
		return fmt.Errorf("artifact %s: `start` is not a regular file", name)
	}
	if target.mode&0o100 == 0 {
		return fmt.Errorf("artifact %s: `start` is not executable by its owner (mode %04o); chmod +x it before packing", name, target.mode)
	}
	return nil
}

func kindName(typ byte) string {
	switch typ {
	case tar.TypeSymlink:
		return "the symlink"
	case tar.TypeLink:
		return "the hardlink"
	}
	return "the file"
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
	if err := nameChars(n); err != nil {
		return "", err
	}
	for _, part := range strings.Split(n, "/") {
		if part == ".." {
			return "", errors.New("contains '..'")
		}
	}
	return path.Clean(n), nil
}

// nameChars refuses backslashes and control characters: the host reads names
// from GNU tar's C-quoted listing, where those are the escapes it cannot take
// at face value; other bytes (UTF-8 included) are fine on both sides.
func nameChars(n string) error {
	for i := 0; i < len(n); i++ {
		if c := n[i]; c < 0x20 || c == 0x7f || c == '\\' {
			return fmt.Errorf("backslash or control character (byte 0x%02x) in name", c)
		}
	}
	return nil
}

// ParseSize reads a byte count for --max-unpacked-size: a plain number of
// bytes or one with a binary suffix (K, M, G, T, optionally followed by "iB"
// or "B"; all powers of 1024), e.g. "4GiB", "512M", "1048576".
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, suf := range []struct {
		s string
		m int64
	}{{"T", 1 << 40}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}} {
		u := strings.ToUpper(t)
		for _, tail := range []string{suf.s + "IB", suf.s + "B", suf.s} {
			if strings.HasSuffix(u, tail) {
				t, mult = strings.TrimSpace(t[:len(t)-len(tail)]), suf.m
				break
			}
		}
		if mult != 1 {
			break
		}
	}
	if strings.HasSuffix(strings.ToUpper(t), "B") && mult == 1 {
		t = strings.TrimSpace(t[:len(t)-1])
	}
	var n int64
	if _, err := fmt.Sscanf(t, "%d", &n); err != nil || fmt.Sprint(n) != t || n < 1 || n > (1<<62)/mult {
		return 0, fmt.Errorf("size %q: expected a positive number of bytes, optionally with K, M, G or T (powers of 1024), e.g. 4GiB", s)
	}
	return n * mult, nil
}
