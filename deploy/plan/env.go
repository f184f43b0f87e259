package plan

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/belay-sh/belay/hostrelease"
	"github.com/belay-sh/belay/internal/shq"
)

// Host layout contract for the app's env and release command (roles renders
// the other side: belay-app-run reads these files as the app user).
const (
	// EnvFile is the app's env inside a release directory: KEY=VALUE lines,
	// mode 0640, owner the deploy user, group AppGroup.
	EnvFile = ".belay-env"
	// ReleaseCommandFile is the release command inside a release directory,
	// one word per line (the first a path relative to the release).
	ReleaseCommandFile = ".belay-release-command"
	// AppGroup is the group of the user app releases run as.
	AppGroup = "belay-app"
	// DefaultReleaseTimeout bounds a release command.
	DefaultReleaseTimeout = 10 * time.Minute
)

// ReleaseUnit runs an app's release command once (a oneshot template unit
// the roles install; the deploy user may start and stop it).
func ReleaseUnit(app string) string { return "belay-release@" + app + ".service" }

// HookLink is the link the release unit runs from (Layout.Root()/hook).
func HookLink(l hostrelease.Layout) string { return l.Root() + "/hook" }

var (
	cmdPathRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_./-]{0,254}$`)
	cmdArgRE  = regexp.MustCompile(`^[^\x00-\x1f\x7f]{0,1000}$`)
)

// ParseReleaseCommand splits "bin/migrate --up" into words: the first a path
// inside the release (relative, no ".."), the others single-line arguments.
// No shell parses it on the host; each word is one argv entry.
func ParseReleaseCommand(s string) ([]string, error) {
	w := strings.Fields(s)
	if len(w) == 0 {
		return nil, errors.New("release command: empty")
	}
	if !cmdPathRE.MatchString(w[0]) || strings.Contains("/"+w[0]+"/", "/../") || strings.HasPrefix(w[0], "/") {
		return nil, fmt.Errorf("release command %q: %q must be a path inside the release (relative, e.g. bin/migrate; letters, digits, _ . / -; no ..)", s, w[0])
	}
	for _, a := range w[1:] {
		if !cmdArgRE.MatchString(a) {
			return nil, fmt.Errorf("release command %q: argument %q has control characters", s, a)
		}
	}
	if len(w) > 64 {
		return nil, fmt.Errorf("release command %q: %d words, at most 64", s, len(w))
	}
	return w, nil
}

// EnvSuffix is how an env-only release is named: <base>.env<serial>.
var envSuffixRE = regexp.MustCompile(`\.env[0-9]+$`)

// EnvRelease names the env-only release of current with env serial n.
func EnvRelease(current string, serial int) string {
	return envSuffixRE.ReplaceAllString(current, "") + ".env" + strconv.Itoa(serial)
}

// copyStep makes releases/<Release> from releases/<CopyFrom> (env-only
// deploys: the running artifact, a new release id, the env written next).
func (b *builder) copyStep(p *Plan) {
	l, id, from := b.l, b.in.Release, b.in.CopyFrom
	src, dst, tmp := l.Release(from), l.Release(id), l.Releases()+"/.copy-"+id
	b.step(p, Step{ID: "copy", Stage: Unpack, Title: "copy " + from + " as " + id, Hosts: b.withStandby(), Pipeline: "prepare",
		Skip: "test -d " + shq.Quote(dst) + " && test -f " + shq.Quote(l.Sum(id)),
		Command: strings.Join([]string{
			"set -eu",
			"umask 022",
			"test -x " + shq.Quote(src+"/start") + " || { echo " + shq.Quote("release "+from+" is not on this host ("+src+"/start missing)") + " >&2; exit 1; }",
			"test ! -e " + shq.Quote(dst) + " || { echo " + shq.Quote("release "+id+" already exists on this host from another source; set the env again (new serial) or deploy an artifact") + " >&2; exit 66; }",
			"rm -rf " + shq.Quote(tmp),
			"cp -a " + shq.Join(src, tmp),
			// The env and the release command are the new release's own.
			"rm -f " + shq.Join(tmp+"/"+EnvFile, tmp+"/"+ReleaseCommandFile),
			"cp " + shq.Join(l.Sum(from), l.Sum(id)+".tmp") + " 2>/dev/null || echo copied-from-" + shq.Quote(from) + " > " + shq.Quote(l.Sum(id)+".tmp"),
			"mv -f " + shq.Join(l.Sum(id)+".tmp", l.Sum(id)),
			"mv -T " + shq.Join(tmp, dst),
		}, "\n"),
		Timeout: Duration(5 * time.Minute)})
}

// envStep writes the app's env (the runner streams it on stdin; it never
// appears in the plan) into the release as a 0640 file of the deploy user and
// the app's group. The deploy user is not in that group; it gets the group from
// the setgid shared directory (deploy:belay-app 2775): a private mktemp
// directory there inherits it, the file is written inside, then renamed into
// the release. The app's wrapper reads the file as the app user, so no root
// process ever opens a path the deploy user controls.
//
// A release whose canary or stable already runs keeps the env it started with:
// a different env for it is refused (deploy it with --env-only: a new release).
func (b *builder) envStep(p *Plan) {
	l, id := b.l, b.in.Release
	rel, shared := l.Release(id), l.Root()+"/shared"
	dst := rel + "/" + EnvFile
	b.step(p, Step{ID: "env", Stage: Unpack, Title: "env of " + id + " (stdin, 0640 deploy:" + AppGroup + ")", Hosts: b.withStandby(), Pipeline: "prepare",
		Stdin: "env",
		Command: strings.Join([]string{
			"set -eu",
			"umask 077",
			"rel=" + shq.Quote(rel),
			"dst=" + shq.Quote(dst),
			"test -d \"$rel\" && test ! -L \"$rel\" || { echo \"$rel: not a release directory\" >&2; exit 1; }",
			"test -d " + shq.Quote(shared) + " && test -g " + shq.Quote(shared) + " || { echo " + shq.Quote(shared+": expected the setgid shared directory (group "+AppGroup+") of the host layout") + " >&2; exit 1; }",
			"tmp=$(mktemp -d " + shq.Quote(shared+"/.belay-env.XXXXXX") + ")",
			"trap 'rm -rf \"$tmp\"' EXIT",
			"umask 027",
			"cat > \"$tmp/env\"",
			"chmod 0640 \"$tmp/env\"",
			"g=$(stat -c %G \"$tmp/env\")",
			"[ \"$g\" = " + shq.Quote(AppGroup) + " ] || { echo \"env file group is $g, expected " + AppGroup + " (from the setgid " + shared + ")\" >&2; exit 1; }",
			"if [ -e \"$dst\" ] || [ -L \"$dst\" ]; then",
			"  if ! { [ -f \"$dst\" ] && [ ! -L \"$dst\" ] && cmp -s \"$tmp/env\" \"$dst\"; }; then",
			"    for link in " + shq.Join(l.Current(), l.Canary()) + "; do",
			"      if [ \"$(readlink \"$link\" 2>/dev/null)\" = \"$rel\" ]; then echo " + shq.Quote("release "+id+" already runs with another env; roll the env out with `belay deploy --env-only` (a new release)") + " >&2; exit 1; fi",
			"    done",
			"  fi",
			"fi",
			"mv -fT \"$tmp/env\" \"$dst\"",
		}, "\n"),
		Timeout: Duration(time.Minute)})
}

// hookSteps run the release command once, on the first app host, from the
// new release with the app's env, before any canary starts: the oneshot unit
// runs belay-app-run APP release as the app user (DATABASE_URL included). Its
// journal is streamed back; a failure or timeout stops it and fails the step,
// so nothing was switched.
func (b *builder) hookSteps(p *Plan) {
	l, id, app := b.l, b.in.Release, b.in.App
	rel, link, unit := l.Release(id), HookLink(l), ReleaseUnit(app)
	timeout := b.in.ReleaseTimeout
	if timeout <= 0 {
		timeout = DefaultReleaseTimeout
	}
	secs := strconv.Itoa(int((timeout + time.Second - 1) / time.Second))
	words := append([]string{"printf", "%s\\n"}, b.in.ReleaseCommand...)
	b.step(p, Step{ID: "release-command", Stage: Release, Hosts: b.hosts[:1], Stream: true,
		Title: "release command `" + strings.Join(b.in.ReleaseCommand, " ") + "` in " + id + " (once, timeout " + timeout.String() + ")",
		Command: strings.Join([]string{
			"set -u",
			"unit=" + shq.Quote(unit),
			shq.Join(words...) + " > " + shq.Quote(rel+"/"+ReleaseCommandFile+".tmp") + " && mv -f " + shq.Join(rel+"/"+ReleaseCommandFile+".tmp", rel+"/"+ReleaseCommandFile) + " || exit 1",
			linkCommand(rel, link) + " || exit 1",
			// Follow the unit's journal from after its last entry (the deploy user is in systemd-journal).
			"cur=$(journalctl --quiet --unit=\"$unit\" --lines=1 --show-cursor 2>/dev/null | sed -n 's/^-- cursor: //p')",
			// Bounded, and without the fence's lock fd: the follower never outlives the step nor holds the fence.
			"follow() { timeout " + strconv.Itoa(int((timeout+2*time.Minute)/time.Second)) + " journalctl --quiet --follow --output=cat --unit=\"$unit\" \"$@\" 9>&- </dev/null & }",
			"if [ -n \"$cur\" ]; then follow --after-cursor=\"$cur\"; else follow --since=now; fi",
			"jp=$!",
			"sleep 0.3",
			systemctl("reset-failed", unit) + " 2>/dev/null || true",
			"rc=0",
			"timeout --kill-after=10 " + secs + " " + systemctl("start", unit) + " || rc=$?",
			"if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then " + systemctl("stop", unit) + " || true; echo " + shq.Quote("release command timed out after "+timeout.String()+" and was stopped") + " >&2; fi",
			"sleep 1",
			"kill $jp 2>/dev/null || true",
			"rm -f " + shq.Quote(link),
			"if [ $rc -ne 0 ]; then echo " + shq.Quote("release command failed (exit status of "+unit+": see the lines above); nothing was switched") + " >&2; exit 1; fi",
		}, "\n"),
		Timeout: Duration(timeout + time.Minute)})
}

// checkPrepare checks how the new release gets onto the hosts.
func checkPrepare(in Input, st Strategy) error {
	if in.CopyFrom != "" {
		if in.Artifact != nil {
			return errors.New("copy from: set with an artifact, expected one or the other")
		}
		if err := hostrelease.ValidateID(in.CopyFrom); err != nil {
			return fmt.Errorf("copy from: %w", err)
		}
		if in.CopyFrom == in.Release {
			return fmt.Errorf("copy from: %s is the release itself", in.CopyFrom)
		}
	}
	if !st.Direct && in.Artifact == nil && in.CopyFrom == "" {
		return errors.New("artifact: required for a canary deploy (--artifact)")
	}
	if st.Direct && (in.Env || len(in.ReleaseCommand) > 0) {
		return errors.New("env and release command: only for a new release (a direct move keeps the release's own env)")
	}
	if len(in.ReleaseCommand) > 0 {
		if _, err := ParseReleaseCommand(strings.Join(in.ReleaseCommand, " ")); err != nil {
			return err
		}
		if in.ReleaseTimeout != 0 && (in.ReleaseTimeout < time.Second || in.ReleaseTimeout > 24*time.Hour) {
			return fmt.Errorf("release timeout: %s, expected 1s-24h", in.ReleaseTimeout)
		}
	}
	return nil
}
