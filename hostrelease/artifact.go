package hostrelease

import "fmt"

// An Artifact is what deploy/release's local check found in a release
// artifact; the host commands (UnpackCommand, hostCheck) apply the same kind,
// checksum and limits again on the host.

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

// Limits cap what an artifact may unpack to.
type Limits struct {
	// MaxEntries is the most archive members (files, directories, links).
	MaxEntries int `json:"maxEntries"`
	// MaxUnpacked is the most bytes of regular-file content.
	MaxUnpacked int64 `json:"maxUnpacked"`
	// MaxRatio is the most unpacked bytes per artifact byte, checked once the
	// unpacked total passes RatioFloor (a small archive of text may compress
	// 100:1 and harms nobody; a bomb is large by definition).
	MaxRatio int64 `json:"maxRatio"`
}

// RatioFloor is the unpacked size below which MaxRatio is not applied.
const RatioFloor = 64 << 20

// DefaultLimits are belay deploy's defaults: 200 000 entries (a small VM's
// root filesystem has ~1.3 M inodes for everything), 4 GiB unpacked, 100:1
// (source and assets compress 3-20:1; a file of zeros compresses ~1000:1).
func DefaultLimits() Limits {
	return Limits{MaxEntries: 200_000, MaxUnpacked: 4 << 30, MaxRatio: 100}
}

// Validate refuses limits that cannot be meant, naming the flag.
func (l Limits) Validate() error {
	switch {
	case l.MaxEntries < 1:
		return fmt.Errorf("--max-entries %d: expected at least 1", l.MaxEntries)
	case l.MaxUnpacked < 1:
		return fmt.Errorf("--max-unpacked-size %d: expected at least 1 byte", l.MaxUnpacked)
	case l.MaxRatio < 1:
		return fmt.Errorf("--max-ratio %d: expected at least 1", l.MaxRatio)
	}
	return nil
}
