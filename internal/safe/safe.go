// Package safe holds the rules for values that name things on hosts — app and
// host names, health paths, pgBackRest stanzas — shared by every entrance:
// config validation, inventory validation (the inventory may come from a file
// or a stack output: untrusted), the roles and the CLI flags. Each rule is a
// character set with nothing a shell, nginx, systemd or sudoers would read as
// syntax, so a value that passes is inert even before package shq quotes it.
//
// The functions return an error that says what was got and what is expected;
// callers prefix the field ("inventory: apps[1].healthPath: ...").
package safe

import (
	"fmt"
	"regexp"
)

// MaxNameLen is a DNS label's limit: names become host names and unit instances.
const MaxNameLen = 63

// MaxHealthPathLen bounds a health path (a URL path, not a document).
const MaxHealthPathLen = 256

var (
	nameRE       = regexp.MustCompile(`^[a-z]([a-z0-9-]*[a-z0-9])?$`)
	healthPathRE = regexp.MustCompile(`^/([A-Za-z0-9/._~-]|%[0-9A-Fa-f]{2})*$`)
	stanzaRE     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)
)

// Name checks an app or host name: a lowercase letter, then lowercase letters,
// digits and '-' (not last), at most MaxNameLen characters.
func Name(s string) error {
	if s == "" {
		return fmt.Errorf("empty, expected a name such as \"shop\" (a lowercase letter, then a-z, 0-9, -)")
	}
	if len(s) > MaxNameLen || !nameRE.MatchString(s) {
		return fmt.Errorf("%q, expected a name such as \"shop\": a lowercase letter, then a-z, 0-9 and - (not last), at most %d characters", s, MaxNameLen)
	}
	return nil
}

// HealthPath checks a health check path: a plain URL path, "/" then letters,
// digits, "/._~-" and %XX escapes. No query (its '&' and '?' are shell and
// curl syntax and made a check pass with nothing listening), no ';', '$',
// quotes, spaces, newlines, globs or parentheses.
func HealthPath(s string) error {
	if len(s) > MaxHealthPathLen || !healthPathRE.MatchString(s) {
		return fmt.Errorf("%q, expected a plain URL path like /healthz (\"/\" then letters, digits, /._~- and %%XX escapes, at most %d characters)", s, MaxHealthPathLen)
	}
	return nil
}

// Stanza checks a pgBackRest stanza name: a letter or digit, then letters,
// digits, '_' and '-', at most 64 characters. It becomes a directory name and
// a `--stanza=` argument.
func Stanza(s string) error {
	if !stanzaRE.MatchString(s) {
		return fmt.Errorf("%q, expected a stanza such as \"belay\" (a letter or digit, then letters, digits, _ and -, at most 64 characters)", s)
	}
	return nil
}
