package hostrelease

import (
	"bufio"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// A release copy moves the release a host runs (what `current` points to) to
// another host of the same app, host to host through belay: SendCommand
// streams a tar of the release directory, ReceiveCopyCommand receives it as
// an artifact (the same listing rules and extraction as UnpackCommand),
// checks its manifest digest against the source's and activates it the way a
// deploy leaves a host (sums file, `current` link), without starting it.
//
// The manifest digest is the sha256 of two sorted listings of the release
// directory: every entry's type, mode, owner:group and C-quoted name (with
// the target of a symlink), then the sha256 of every regular file. Both hosts
// run the same commands (GNU find, sort, stat, sha256sum), so equal digests
// mean the same tree, content, modes and owners by name.

// EnvFileName is the app's env inside a release (deploy/plan.EnvFile: the
// plan package imports this one, not the other way round). It is 0640 of the
// deploy user and the app group, which the deploy user only gets through the
// setgid shared directory, so a copy re-creates it there.
const EnvFileName = ".belay-env"

// manifestFn defines manifest DIR: prints the manifest digest of DIR (see
// above), or fails when a listing fails (an unreadable file): a failing
// listing must never produce a digest two broken hosts could agree on.
const manifestFn = `manifest() {
  ( cd -- "$1" || exit 1
    export LC_ALL=C QUOTING_STYLE=c
    m=$(find . -print0 | sort -z | xargs -0 -r stat --printf '%F %a %U:%G %N\n') || exit 1
    h=$(find . -type f -print0 | sort -z | xargs -0 -r sha256sum) || exit 1
    [ -n "$m" ] || exit 1
    printf '%s\n--\n%s\n' "$m" "$h" | sha256sum | cut -d' ' -f1 )
}`

// Manifest is what ManifestCommand reports about one release on a host.
type Manifest struct {
	// Current is the release `current` points to ("" when none, or when it
	// points outside the releases directory: CurrentPath says where).
	Current     string
	CurrentPath string
	// Present: releases/<id> exists; the fields below describe it.
	Present bool
	// Sum is the sums file's content (the artifact's sha256, or
	// "copied-from-<id>" for an env-only release).
	Sum     string
	Digest  string
	Entries int
	Bytes   int64
}

// ManifestCommand prints, as key=value lines, where `current` points and the
// manifest of releases/<id> (id "" is the release `current` points to).
// Read-only.
func (l Layout) ManifestCommand(id string) string {
	rel := `"$releases/$id"`
	return strings.Join([]string{
		"set -u",
		manifestFn,
		assign("releases", l.Releases()),
		assign("cur", l.Current()),
		assign("id", id),
		assign("sums", l.State()+"/releases"),
		`t=$(readlink -- "$cur" 2>/dev/null || true)`,
		`echo "currentPath=$t"`,
		`case "$t" in "$releases"/*) c=${t#"$releases"/};; *) c=;; esac`,
		`case "$c" in */*) c=;; esac`,
		`echo "current=$c"`,
		`[ -n "$id" ] || id=$c`,
		`[ -n "$id" ] && [ -d ` + rel + ` ] && [ ! -L ` + rel + ` ] || { echo present=no; exit 0; }`,
		`echo present=yes`,
		`echo "id=$id"`,
		`echo "sum=$(head -c 200 -- "$sums/$id.sha256" 2>/dev/null | head -n 1)"`,
		`echo "entries=$(find ` + rel + ` | wc -l)"`,
		`echo "bytes=$(find ` + rel + ` -type f -printf '%s\n' | awk '{s+=$1} END {printf "%d", s}')"`,
		`d=$(manifest ` + rel + `) || { echo "release $id: cannot list or read it (manifest failed)" >&2; exit 1; }`,
		`echo "digest=$d"`,
	}, "\n")
}

// ParseManifest reads ManifestCommand's output; id is the release asked for
// ("" for the current one).
func ParseManifest(out string) (*Manifest, error) {
	m := &Manifest{}
	kv := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if ok {
			kv[k] = v
		}
	}
	if _, ok := kv["present"]; !ok {
		return nil, fmt.Errorf("release manifest: no present= line in %q", firstLine(out))
	}
	m.CurrentPath, m.Current = kv["currentPath"], kv["current"]
	if m.Current != "" {
		if err := ValidateID(m.Current); err != nil {
			return nil, fmt.Errorf("current link: %w", err)
		}
	}
	if kv["present"] != "yes" {
		return m, nil
	}
	m.Present, m.Sum, m.Digest = true, kv["sum"], kv["digest"]
	var err error
	if m.Entries, err = strconv.Atoi(kv["entries"]); err != nil {
		return nil, fmt.Errorf("release manifest entries=%q: expected a number", kv["entries"])
	}
	if m.Bytes, err = strconv.ParseInt(kv["bytes"], 10, 64); err != nil {
		return nil, fmt.Errorf("release manifest bytes=%q: expected a number", kv["bytes"])
	}
	if !shaRe.MatchString(m.Digest) {
		return nil, fmt.Errorf("release manifest digest=%q: expected 64 hex digits", m.Digest)
	}
	return m, nil
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return l
}

var (
	shaRe = regexp.MustCompile(`^[0-9a-f]{64}$`)
	// copied-from-<id> is what an env-only release's sums file holds when its
	// source had none (deploy/plan copyStep).
	copiedRe = regexp.MustCompile(`^copied-from-[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
)

// ValidateSum checks a sums file's content before it is written on another host.
func ValidateSum(sum string) error {
	if shaRe.MatchString(sum) || copiedRe.MatchString(sum) && !strings.Contains(sum, "..") {
		return nil
	}
	return fmt.Errorf("sums file content %q: expected a sha256 (64 hex digits) or copied-from-<release>", sum)
}

// SendCommand writes a tar of releases/<id> to stdout (read-only on the
// source host). Plain tar: the stream is the release as it is on disk, and
// the receiver's listing check counts its bytes.
func (l Layout) SendCommand(id string) string {
	return strings.Join([]string{
		"set -eu",
		assign("rel", l.Release(id)),
		`test -d "$rel" && test ! -L "$rel" || { echo "release directory $rel is not on this host" >&2; exit 1; }`,
		`LC_ALL=C tar --create --file - --directory "$rel" --numeric-owner --format=gnu .`,
	}, "\n")
}

// Copy is the release a ReceiveCopyCommand expects, as the source host's
// ManifestCommand reported it.
type Copy struct {
	ID      string
	Sum     string
	Digest  string
	Entries int
	Bytes   int64
}

// Validate checks c before any of it reaches a host.
func (c Copy) Validate() error {
	if err := ValidateID(c.ID); err != nil {
		return err
	}
	if err := ValidateSum(c.Sum); err != nil {
		return fmt.Errorf("release %s: %w", c.ID, err)
	}
	if !shaRe.MatchString(c.Digest) {
		return fmt.Errorf("release %s: manifest digest %q, expected 64 hex digits", c.ID, c.Digest)
	}
	if c.Entries < 1 || c.Bytes < 0 {
		return fmt.Errorf("release %s: %d entries, %d bytes: expected at least one entry", c.ID, c.Entries, c.Bytes)
	}
	return nil
}

// ReceiveCopyCommand reads SendCommand's tar on stdin and makes it
// releases/<id>, activated like a deploy leaves it (sums file, `current`
// link) but not started:
//
//   - releases/<id> there already with the same manifest: stdin is not read,
//     the sums file and `current` are set (a rerun is a no-op); with another
//     manifest: refused, nothing changed;
//   - else the stream is stored under .belay/incoming, listed and checked by
//     the deploy's rules (hostcheck.go, deploy/release/rules.go) with the default limits (raised to the
//     source's own counts: it passed them when it was deployed), extracted
//     into a staging directory exactly as UnpackCommand does;
//   - the env file is re-created through the setgid shared directory (mode
//     kept, group the app's), as the deploy's env step writes it;
//   - the staged tree's manifest must equal c.Digest, else it is removed and
//     the step fails naming both digests;
//   - one rename makes the release appear, then `current` points at it.
//
// Whatever fails, the staging directory and the stored stream are removed.
func (l Layout) ReceiveCopyCommand(c Copy) string {
	lim := DefaultLimits()
	lim.MaxEntries = max(lim.MaxEntries, c.Entries)
	lim.MaxUnpacked = max(lim.MaxUnpacked, c.Bytes)
	// A plain tar is larger than its files: the ratio check only bounds a
	// stream that claims more than the source reported.
	a := &Artifact{Kind: Tarball, Size: max(c.Bytes, 1), Limits: lim}
	lines := []string{
		"set -eu",
		"umask 022",
		manifestFn,
		assign("id", c.ID),
		assign("rel", l.Release(c.ID)),
		assign("releases", l.Releases()),
		assign("sums", l.State()+"/releases"),
		assign("sum", l.Sum(c.ID)),
		assign("sha", c.Sum),
		assign("want", c.Digest),
		assign("dir", l.State()+"/incoming"),
		assign("inc", l.State()+"/incoming/"+c.ID+".copy"),
		assign("tmp", l.Releases()+"/.copy-"+c.ID),
		assign("shared", l.Root()+"/shared"),
		assign("cur", l.Current()),
		`e=`,
		// Nothing half-made stays: the stream, the staging tree, the env temp dir.
		`trap 'rm -rf -- "$inc" "$inc.part" "$tmp" ${e:+"$e"}' EXIT`,
		`trap 'exit 70' HUP INT TERM`,
		`activate() {`,
		`  printf '%s\n' "$sha" > "$sum.tmp"`,
		`  mv -f -- "$sum.tmp" "$sum"`,
		`  ln -sfn -- "$rel" "$cur.tmp" && mv -T -- "$cur.tmp" "$cur"`,
		`}`,
		`mkdir -p -- "$dir" "$releases" "$sums"`,
		`if [ -d "$rel" ] || [ -L "$rel" ]; then`,
		`  got=$(manifest "$rel") || got=unreadable`,
		`  if [ ! -L "$rel" ] && [ "$got" = "$want" ]; then activate; echo "release $id is here already with the same content (manifest $got): current -> $id"; exit 0; fi`,
		`  echo "release $id exists on this host with other content (manifest $got, the source's $want): refused, nothing changed; remove $rel if it is not needed, then resume" >&2; exit 66`,
		`fi`,
		`(umask 077; cat > "$inc.part")`,
		`mv -f -- "$inc.part" "$inc"`,
		// The deploy's listing rules and limits, before a byte is extracted.
		hostCheck(a, ""),
		`rm -rf -- "$tmp"`,
		`mkdir -m 0755 -- "$tmp"`,
	}
	lines = append(lines, extractLines("")...)
	lines = append(lines,
		`rm -f -- "$inc"`,
		`env="$tmp/`+EnvFileName+`"`,
		`if [ -e "$env" ] || [ -L "$env" ]; then`,
		`  [ -f "$env" ] && [ ! -L "$env" ] || { echo "`+EnvFileName+` in the release is not a regular file" >&2; exit 67; }`,
		`  test -d "$shared" && test -g "$shared" || { echo "$shared: expected the setgid shared directory of the host layout (the env file takes its group)" >&2; exit 1; }`,
		`  e=$(mktemp -d "$shared/.belay-env.XXXXXX")`,
		`  mode=$(stat -c %a -- "$env")`,
		`  (umask 077; cat -- "$env" > "$e/env")`,
		`  chmod -- "$mode" "$e/env"`,
		`  mv -fT -- "$e/env" "$env"`,
		`fi`,
		`got=$(manifest "$tmp") || got=unreadable`,
		`[ "$got" = "$want" ] || { echo "release $id arrived with manifest $got, the source has $want: refused, nothing kept" >&2; exit 69; }`,
		`mv -T -- "$tmp" "$rel"`,
		`activate`,
		`echo "release $id copied (manifest $got): current -> $id"`,
	)
	return strings.Join(lines, "\n")
}
