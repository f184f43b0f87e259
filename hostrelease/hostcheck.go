package hostrelease

import (
	"fmt"
	"strings"

	"github.com/belay-sh/belay/internal/shq"
)

// Why a listing check on the host and not belay's agent: the agent's version is
// whatever the host was provisioned with, while this program travels with every
// deploy, so the host always applies the deployer's rules (deploy/release/rules.go). GNU tar
// cannot cap entries or bytes itself, so the host lists the archive first
// (`tar -tv`, names C-quoted so a name cannot forge a line) and awk applies the
// same rules and limits, stopping at the first violation (tar then dies of
// SIGPIPE at its next write). Only then does tar extract. A gzip bomb that got
// past the local check costs the host one decompression pass while listing,
// bounded by gzip's ~1000:1 maximum ratio; nothing is written to disk.

// hostCheckAwk reads `LC_ALL=C tar -tv --numeric-owner --quoting-style=c`
// followed by one line "belay-tar-exit N". Variables: maxe, maxb, ratio, floor,
// asize. Exit 67 with a message naming the entry on any refusal.
const hostCheckAwk = `
function fail(e, why) { if (!bad) printf "artifact entry \"%s\" refused: %s\n", e, why > "/dev/stderr"; bad = 1; exit 67 }
function q(s) { if (!match(s, /^"([^"\\]|\\.)*"/)) return 0; Q = substr(s, 2, RLENGTH - 2); return RLENGTH }
function chars(s,   x) { x = s; gsub(/\\"/, "", x); gsub(/\\[23][0-7][0-7]/, "", x); return index(x, "\\") == 0 }
function clean(s,   k, i, p, out) {
	if (s == "") return "!empty name"
	if (substr(s, 1, 1) == "/") return "!absolute path"
	if (!chars(s)) return "!backslash or control character in name"
	k = split(s, p, "/"); out = ""
	for (i = 1; i <= k; i++) {
		if (p[i] == "..") return "!contains a .. component"
		if (p[i] == "" || p[i] == ".") continue
		out = out == "" ? p[i] : out "/" p[i]
	}
	return out == "" ? "." : out
}
function dirof(s,   i) { for (i = length(s); i > 0; i--) if (substr(s, i, 1) == "/") return substr(s, 1, i - 1); return "." }
# walk: resolve target t from directory d; R is the result ("." for the root,
# "!" when it leaves the release), V the first archive symlink passed through
# before the last component.
function walk(d, t,   k, p, i, j, st, top, last) {
	top = 0; V = ""
	if (d != ".") { k = split(d, p, "/"); for (i = 1; i <= k; i++) st[++top] = p[i] }
	k = split(t, p, "/")
	for (i = 1; i <= k; i++) {
		if (p[i] == "" || p[i] == ".") continue
		if (p[i] == "..") { if (top == 0) { R = "!"; return } top--; continue }
		st[++top] = p[i]
		R = st[1]; for (j = 2; j <= top; j++) R = R "/" st[j]
		last = 1; for (j = i + 1; j <= k; j++) if (p[j] != "" && p[j] != ".") last = 0
		if (!last && V == "" && (R in typ) && typ[R] == "l") V = R
	}
	R = top == 0 ? "." : st[1]; for (j = 2; j <= top; j++) R = R "/" st[j]
}
/^belay-tar-exit / { if ($2 != 0) { bad = 1; print "tar could not list the archive" > "/dev/stderr"; exit 67 } done = 1; next }
{
	if (++n > maxe) fail("(entry " n ")", "more than " maxe " entries (raise --max-entries if this is intended)")
	t = substr($0, 1, 1); m = substr($0, 2, 9)
	if (!match($0, /^[^ ]+ +[^ ]+ +[^ ]+ +[^ ]+ +[^ ]+ +"/)) fail($0, "unreadable listing line")
	rest = substr($0, RLENGTH); l = q(rest); if (!l) fail($0, "unreadable name")
	name = Q; rest = substr(rest, l + 1); link = ""
	if (t == "l") { if (substr(rest, 1, 4) != " -> " || !q(substr(rest, 5))) fail(name, "unreadable symlink target"); link = Q }
	if (t == "h") { if (substr(rest, 1, 9) != " link to " || !q(substr(rest, 10))) fail(name, "unreadable hardlink target"); link = Q }
	c = clean(name); if (substr(c, 1, 1) == "!") fail(name, substr(c, 2))
	if (substr(m, 3, 1) ~ /[sS]/ || substr(m, 6, 1) ~ /[sS]/) fail(name, "setuid/setgid bit")
	if (t == "-") {
		bytes += $3
		if (bytes > maxb) fail(name, "unpacks to more than " maxb " bytes (raise --max-unpacked-size if this is intended)")
		if (bytes > floor && bytes > ratio * asize) fail(name, "unpacks to more than " ratio " times the artifact size (raise --max-ratio if this is intended)")
	} else if (t == "l") {
		if (link == "") fail(name, "symlink with empty target")
		if (!chars(link)) fail(name, "backslash or control character in symlink target")
		if (substr(link, 1, 1) == "/") fail(name, "symlink to an absolute path")
		walk(dirof(c), link); if (R == "!") fail(name, "symlink points outside the release")
	} else if (t == "h") {
		lc = clean(link); if (substr(lc, 1, 1) == "!") fail(name, "hardlink target: " substr(lc, 2))
		if (!(lc in typ) || typ[lc] != "-") fail(name, "hardlink to something that is not a regular file earlier in the archive")
	} else if (t != "d") fail(name, "entry type " t " (devices, fifos and the like are not allowed)")
	if (c == ".") { if (t != "d") fail(name, "the archive root may only be a directory"); next }
	if ((c in typ) && (typ[c] != "d" || t != "d")) fail(name, "appears twice in the archive")
	typ[c] = t; mode[c] = m; lnk[c] = link; order[++o] = c
	if (t == "h") mode[c] = mode[lc]
}
END {
	if (bad) exit 67
	if (!done) { print "tar listing ended early" > "/dev/stderr"; exit 67 }
	for (i = 1; i <= o; i++) for (d = dirof(order[i]); d != "."; d = dirof(d))
		if ((d in typ) && typ[d] != "d") fail(order[i], "lies below the non-directory " d)
	for (i = 1; i <= o; i++) if (typ[order[i]] == "l") { walk(dirof(order[i]), lnk[order[i]]); if (V != "") fail(order[i], "symlink target goes through the symlink " V) }
	if (!("start" in typ)) fail("start", "no start at the archive root")
	s = "start"
	if (typ[s] == "l") { walk(".", lnk[s]); s = R; if (typ[s] != "-") fail("start", "symlink to something that is not a regular file in the archive") }
	else if (typ[s] != "-" && typ[s] != "h") fail("start", "not a regular file")
	if (substr(mode[s], 3, 1) !~ /[xs]/) fail("start", "not executable by its owner")
}`

// hostCheck is the shell line that lists "$inc" (set by UnpackCommand) with
// GNU tar and applies the rules and limits to it before anything is extracted.
func hostCheck(a *Artifact, z string) string {
	// An artifact recorded before limits existed (or built by hand) gets the
	// defaults, never "no limit".
	lim, def := a.Limits, DefaultLimits()
	if lim.MaxEntries < 1 {
		lim.MaxEntries = def.MaxEntries
	}
	if lim.MaxUnpacked < 1 {
		lim.MaxUnpacked = def.MaxUnpacked
	}
	if lim.MaxRatio < 1 {
		lim.MaxRatio = def.MaxRatio
	}
	awk := shq.Join("awk",
		"-v", fmt.Sprintf("maxe=%d", lim.MaxEntries), "-v", fmt.Sprintf("maxb=%d", lim.MaxUnpacked),
		"-v", fmt.Sprintf("ratio=%d", lim.MaxRatio), "-v", fmt.Sprintf("floor=%d", RatioFloor),
		"-v", fmt.Sprintf("asize=%d", a.Size), strings.TrimSpace(hostCheckAwk))
	return "{ LC_ALL=C tar --list --verbose --numeric-owner --quoting-style=c" + z + ` --file "$inc"; echo "belay-tar-exit $?"; } | ` +
		"LC_ALL=C " + awk + " || { echo 'the host refused the archive before unpacking' >&2; exit 67; }"
}
