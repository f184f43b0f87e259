// Package shq is belay's one rule for putting a value into a POSIX shell
// command line. Every command belay sends to a host (over SSH the remote login
// shell parses it; `sudo -n`, `sh -c` and `flock ... sh -c` parse it again) is
// a string, and every app name, path, URL, release id, unit name, token or
// argv word that goes into one passes through Quote or Join. Nothing else in
// the module quotes for a shell.
//
// Quoting makes a value one inert word; it does not make it a safe argument:
// a word starting with '-' is still read as an option by the command. The
// entrances (config, inventory, roles, flags; see package safe) refuse such
// values, and commands put "--" before operands where that matters.
package shq

import "strings"

// bare reports whether r needs no quoting anywhere in a word. '=' is bare: no
// value belay quotes is ever a command name, where `a=b` would be an
// assignment. '~' is not (tilde expansion at a word's start), nor any glob,
// expansion, redirection, separator, quote or whitespace character.
func bare(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=@%+,", r)
}

// Quote returns s as exactly one POSIX sh word that expands to s: unchanged when
// every character is plain (so commands stay readable and golden files stable),
// else in single quotes, each single quote closed, escaped and reopened. Inside single quotes the shell
// interprets nothing ($, `, \, newlines, globs are literal). The empty string
// becomes a pair of single quotes. A NUL byte cannot be passed through a shell at all; the entrances
// refuse control characters before a value gets here.
func Quote(s string) string {
	if rest, ok := strings.CutPrefix(s, RootVar); ok && (rest == "" || rest[0] == '/') {
		// The host root of a test layout: "$BELAY_ROOT" expands (in double
		// quotes: one word whatever it holds), the rest is quoted as usual.
		if rest == "" {
			return `"` + RootVar + `"`
		}
		return `"` + RootVar + `"` + quote(rest)
	}
	return quote(s)
}

// RootVar is the one expansion Quote keeps: a release.Layout whose Base is
// "$BELAY_ROOT" stands several hosts' filesystems on one machine in tests
// (each host's session sets the variable). Production layouts are absolute
// paths, and the entrances refuse '$' in every value, so no hostile value can
// reach this branch; if one did, it would expand one variable, nothing else.
const RootVar = "$BELAY_ROOT"

func quote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool { return !bare(r) }) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Join quotes every word and joins them with spaces: argv as one command line
// that the shell splits back into exactly argv.
func Join(argv ...string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = Quote(a)
	}
	return strings.Join(q, " ")
}
