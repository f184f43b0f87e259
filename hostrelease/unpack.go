package hostrelease

import (
	"strings"

	"github.com/belay-sh/belay/internal/shq"
)

// Every path, id and checksum below reaches the host's shell through
// shq.Quote, once: the commands assign them to shell variables at the top and
// use "$var" afterwards, so no message or pattern re-quotes a value by hand.
// (The layout's parts are validated at the entrances too; quoting is the rule
// anyway.) A "$BELAY_ROOT" base (tests) still expands: see shq.RootVar.

// assign is `name=<value>` with the value quoted for sh.
func assign(name, value string) string { return name + "=" + shq.Quote(value) }

// Unpacked is a shell test that succeeds when release id is already on the host
// from the same artifact, so a re-run does not send it again.
func (l Layout) Unpacked(id, sha string) string {
	return "test -d " + shq.Quote(l.Release(id)) + " && test \"$(cat " + shq.Quote(l.Sum(id)) + " 2>/dev/null)\" = " + shq.Quote(sha)
}

// ReceiveCommand reads the artifact from stdin into the incoming file and checks
// its sha256 on the host; a mismatch removes it and fails.
//
// The hash is openssl's when the host has it: Debian's coreutils sha256sum is
// gnulib's portable C (no SHA extensions, ~250 MB/s), OpenSSL uses the CPU's
// SHA instructions (several times faster), and on 8 servers hashing 50 MiB each
// was a third of the upload step's CPU. sha256sum is the fallback. Both read
// stdin: given a file name with a newline or backslash, they escape the name
// and prefix the output line with '\', which would corrupt the hash field.
func (l Layout) ReceiveCommand(id, sha string) string {
	return strings.Join([]string{
		"set -eu",
		"umask 077",
		assign("dir", l.State()+"/incoming"),
		assign("part", l.Incoming(id)+".part"),
		assign("inc", l.Incoming(id)),
		assign("want", sha),
		`mkdir -p -- "$dir"`,
		`cat > "$part"`,
		`if command -v openssl >/dev/null 2>&1; then got=$(openssl dgst -sha256 -r < "$part" | cut -d' ' -f1)`,
		`else got=$(sha256sum < "$part" | cut -d' ' -f1); fi`,
		`if [ "$got" != "$want" ]; then rm -f -- "$part"; echo "artifact checksum mismatch on arrival: sha256 $got, expected $want" >&2; exit 65; fi`,
		`mv -f -- "$part" "$inc"`,
	}, "\n")
}

// UnpackCommand turns the received artifact into releases/<id>: the archive
// rules and limits checked on tar's listing (hostcheck.go), extraction into a
// staging directory with GNU tar flags that refuse to write outside it,
// directories made u+rwx, a second check that no symlink resolves outside,
// then one rename. Re-running with the same
// artifact is a no-op; the same id with another artifact is refused.
func (l Layout) UnpackCommand(id string, a *Artifact) string {
	lines := []string{
		"set -eu",
		"umask 022",
		assign("id", id),
		assign("rel", l.Release(id)),
		assign("inc", l.Incoming(id)),
		assign("tmp", l.Releases()+"/.unpack-"+id),
		assign("sum", l.Sum(id)),
		assign("releases", l.Releases()),
		assign("sums", l.State()+"/releases"),
		assign("sha", a.SHA256),
		`if [ -d "$rel" ]; then`,
		`  if [ "$(cat -- "$sum" 2>/dev/null)" = "$sha" ]; then rm -f -- "$inc"; exit 0; fi`,
		`  echo "release $id already exists on this host from another artifact (sha256 $(cat -- "$sum" 2>/dev/null || echo unknown)); deploy under a new release id" >&2; exit 66`,
		"fi",
		`test -f "$inc" || { echo "artifact not received ($inc missing)" >&2; exit 65; }`,
	}
	z := ""
	if a.Gzip {
		z = " --gzip"
	}
	if a.Kind != Binary {
		// The same rules and limits as Inspect, before a byte is extracted.
		lines = append(lines, hostCheck(a, z))
	}
	lines = append(lines,
		`rm -rf -- "$tmp"`,
		`mkdir -p -- "$releases" "$sums"`,
		`mkdir -m 0755 -- "$tmp"`,
	)
	if a.Kind == Binary {
		lines = append(lines, `install -m 0755 -- "$inc" "$tmp/start"`)
	} else {
		lines = append(lines, extractLines(z)...)
	}
	lines = append(lines,
		`printf '%s\n' "$sha" > "$sum.tmp"`,
		`mv -f -- "$sum.tmp" "$sum"`,
		`mv -T -- "$tmp" "$rel"`,
		`rm -f -- "$inc"`,
	)
	return strings.Join(lines, "\n")
}

// extractLines extract the checked archive "$inc" into the staging directory
// "$tmp" (both set by the caller): GNU tar refuses members with '..' and
// strips leading '/' by default; the flags add: never replace what exists,
// never restore owners/ACLs/xattrs. Symlinks are checked again after
// extraction. UnpackCommand and ReceiveCopyCommand share them, so a copied
// release passes exactly the rules a deployed one does.
func extractLines(z string) []string {
	return []string{
		"tar --extract" + z + ` --file "$inc" --directory "$tmp"` +
			" --no-same-owner --no-same-permissions --keep-old-files" +
			" --no-acls --no-xattrs --no-selinux --delay-directory-restore" +
			` || { rm -rf -- "$tmp"; echo 'tar refused the archive' >&2; exit 67; }`,
		// A directory packed as 0644 or 0555 would unpack unwritable or
		// untraversable for the deploy user and make the cleanup of old
		// releases fail later; directories are normalised to u+rwx (find
		// visits a directory before reading it, so nested ones are reached).
		`find "$tmp" -type d ! -perm -u=rwx -exec chmod u+rwx {} \; || { rm -rf -- "$tmp"; echo 'could not make the release directories writable' >&2; exit 67; }`,
		`find "$tmp" -type l | while IFS= read -r l; do`,
		`  t=$(readlink -m -- "$l")`,
		`  case "$t" in "$tmp"|"$tmp"/*) ;; *) echo "symlink ${l#"$tmp"/} resolves outside the release ($t)" >&2; exit 67;; esac`,
		`done || { rm -rf -- "$tmp"; exit 67; }`,
		`test -f "$tmp/start" && test -x "$tmp/start" || { rm -rf -- "$tmp"; echo 'no executable start at the release root' >&2; exit 68; }`,
	}
}
