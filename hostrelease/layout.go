// Package hostrelease is the host side of a release, shared by every
// package that reads or writes it: an app's directories on a host (Layout:
// releases/, current, canary, .belay with the sums files), the release id
// format, the commands that receive, check, unpack, copy and activate a
// release there, and the manifest digest two hosts compare. deploy (which
// checks an artifact locally and rolls it out) and replace (which copies the
// running release to a new server) both build on it, so neither reaches into
// the other.
package hostrelease

import (
	"fmt"
	"regexp"
	"strings"
)

// Layout is one app's directories on a host (the host layout contract).
type Layout struct {
	App string
	// Base is the parent of the app directory: "" means /srv (tests use a temp dir).
	Base string
}

// Root is /srv/<app>.
func (l Layout) Root() string {
	if l.Base == "" {
		return "/srv/" + l.App
	}
	return l.Base + "/" + l.App
}

// Releases is /srv/<app>/releases.
func (l Layout) Releases() string { return l.Root() + "/releases" }

// Release is /srv/<app>/releases/<id>.
func (l Layout) Release(id string) string { return l.Releases() + "/" + id }

// Current is the link systemd's belay-app@<app> runs from.
func (l Layout) Current() string { return l.Root() + "/current" }

// Canary is the link belay-canary@<app> runs from.
func (l Layout) Canary() string { return l.Root() + "/canary" }

// State is /srv/<app>/.belay: journal, lease, audit log, release checksums.
func (l Layout) State() string { return l.Root() + "/.belay" }

// Incoming is where an uploaded artifact waits for unpacking.
func (l Layout) Incoming(id string) string { return l.State() + "/incoming/" + id + ".artifact" }

// Sum is the file recording which artifact a release directory came from.
func (l Layout) Sum(id string) string { return l.State() + "/releases/" + id + ".sha256" }

// idRe is what a release id may look like: it becomes a directory name and a shell word.
var idRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ValidateID checks a release id (e.g. "v42", "2026-11-22.1", a git sha).
func ValidateID(id string) error {
	if !idRe.MatchString(id) || strings.Contains(id, "..") {
		return fmt.Errorf("release %q: expected 1-64 characters of letters, digits, '.', '_', '-', starting with a letter or digit, without '..'", id)
	}
	return nil
}
