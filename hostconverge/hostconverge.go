// Package hostconverge is the root side of `belay converge`: `belay host
// converge`, run by the deploy user through exactly one sudoers entry, reads a
// bundle on stdin and trusts nothing in it before its signature verifies with
// the stack's converge key (written root-only at first boot). It refuses
// bundles for another host, replays (serials only go up), paths converge does
// not manage and symlinks anywhere on a target's path; it writes only changed
// files, checks them (sshd -t, nginx -t, nft -c, visudo -c...) before anything
// reloads, and puts every previous file back when a check or reload fails.
package hostconverge

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/belay-sh/belay/converge"
	"github.com/belay-sh/belay/roles"
	"github.com/belay-sh/belay/seedkeys"
)

// Root-side state.
const (
	// SerialFile holds the last serial this host accepted.
	SerialFile = "/var/lib/belay/converge.serial"
	// LockFile serialises two helpers on one host.
	LockFile = "/run/belay-converge.lock"
)

// Options are the helper's dependencies; zero values are the real ones.
type Options struct {
	// Root prefixes every path ("" = /); tests use a temp dir ($BELAY_ROOT).
	Root string
	// Hostname is this host's name (default os.Hostname).
	Hostname string
	// Run runs a root command (default: exec, combined output).
	Run func(ctx context.Context, argv []string) (string, error)
	// IDs resolves "user:group" to uid and gid (default: os/user lookups).
	IDs func(owner string) (uid, gid int, err error)
	// OwnerOf names the owner "user:group" of the file at path (default: looked up).
	OwnerOf func(path string, fi os.FileInfo) string
	// UserExists reports whether a user exists (default: os/user lookup).
	UserExists func(name string) bool
}

// Result is what the helper prints (JSON) for the deployer.
type Result struct {
	Host    string        `json:"host"`
	Serial  uint64        `json:"serial"`
	Applied bool          `json:"applied"`
	Plan    converge.Plan `json:"plan"`
	// UsersCreated and DirsCreated are what was missing and is now there.
	UsersCreated []string `json:"usersCreated,omitempty"`
	DirsCreated  []string `json:"dirsCreated,omitempty"`
	// Ran are the checks and reloads run, in order.
	Ran []string `json:"ran,omitempty"`
	// Restored is true when a failure put the previous files back.
	Restored bool   `json:"restored,omitempty"`
	Error    string `json:"error,omitempty"`
}

func (o Options) withDefaults() Options {
	if o.Root == "" {
		o.Root = "/"
	}
	if o.Hostname == "" {
		o.Hostname, _ = os.Hostname()
	}
	if o.Run == nil {
		o.Run = func(ctx context.Context, argv []string) (string, error) {
			out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
			return string(out), err
		}
	}
	if o.IDs == nil {
		o.IDs = idsByName
	}
	if o.OwnerOf == nil {
		o.OwnerOf = ownerName
	}
	if o.UserExists == nil {
		o.UserExists = userExists
	}
	return o
}

func (o Options) at(p string) string { return filepath.Join(o.Root, p) }

// Apply verifies the wire bundle and converges this host (or, for a bundle
// with Apply false, only reports what differs, old contents included).
// Every refusal happens before anything on the host changes.
func Apply(ctx context.Context, wire []byte, o Options) (Result, error) {
	o = o.withDefaults()
	res := Result{Host: o.Hostname}
	pub, err := readPub(o.at(roles.ConvergePubFile))
	if err != nil {
		return res, err
	}
	b, err := converge.Verify(pub, wire)
	if err != nil {
		return res, err
	}
	if err := b.Check(o.Hostname); err != nil {
		return res, err
	}
	res.Serial = b.Serial
	unlock, err := lock(o.at(LockFile))
	if err != nil {
		return res, err
	}
	defer unlock()
	last, err := readSerial(o.at(SerialFile))
	if err != nil {
		return res, err
	}
	if b.Serial <= last {
		return res, fmt.Errorf("bundle serial %d is not newer than %d, the last this host accepted: a replay, or an older converge run", b.Serial, last)
	}
	current := map[string]*converge.Current{}
	for _, f := range b.Files {
		cur, err := o.read(f.Path)
		if err != nil {
			return res, err
		}
		if cur != nil {
			current[f.Path] = cur
		}
	}
	// Consume the serial before changing anything: the same bundle never runs twice.
	if err := writeSerial(o.at(SerialFile), b.Serial); err != nil {
		return res, err
	}
	res.Plan = converge.PlanHost(b.Files, current)
	if !b.Apply {
		// A secret file's old content never leaves root (the session's output
		// passes through processes the deploy user owns).
		for i, c := range res.Plan.Changes {
			if converge.SecretFile(c.Path) {
				res.Plan.Changes[i].Old = ""
			}
		}
		return res, nil
	}
	// The deployer has the new contents; old ones go back only in a dry run.
	for i := range res.Plan.Changes {
		res.Plan.Changes[i].Old = ""
	}
	if err := o.ensureUsers(ctx, b.Users, &res); err != nil {
		return res, err
	}
	if err := o.ensureDirs(b.Dirs, &res); err != nil {
		return res, err
	}
	if res.Plan.Empty() {
		return res, nil
	}
	want := map[string]converge.File{}
	for _, f := range b.Files {
		want[f.Path] = f
	}
	var written []string
	restore := func() error {
		var errs []error
		for i := len(written) - 1; i >= 0; i-- {
			p := written[i]
			if cur := current[p]; cur != nil {
				errs = append(errs, o.write(converge.File{Path: p, Content: cur.Content, Owner: cur.Owner, Mode: cur.Mode}))
			} else {
				errs = append(errs, o.remove(p))
			}
		}
		res.Restored = true
		return errors.Join(errs...)
	}
	for _, c := range res.Plan.Changes {
		if err := o.write(want[c.Path]); err != nil {
			rerr := restore()
			return res, errors.Join(fmt.Errorf("writing %s: %w; previous files restored", c.Path, err), rerr)
		}
		written = append(written, c.Path)
	}
	for _, v := range res.Plan.Validate {
		res.Ran = append(res.Ran, strings.Join(v, " "))
		if out, err := o.Run(ctx, v); err != nil {
			rerr := restore()
			return res, errors.Join(fmt.Errorf("check `%s` failed: %w: %s; previous files restored, nothing reloaded", strings.Join(v, " "), err, strings.TrimSpace(out)), rerr)
		}
	}
	for _, a := range res.Plan.Activate {
		res.Ran = append(res.Ran, strings.Join(a, " "))
		if out, err := o.Run(ctx, a); err != nil {
			rerr := restore()
			// Put the services back on the previous files too.
			for _, again := range res.Plan.Activate {
				_, _ = o.Run(ctx, again)
			}
			return res, errors.Join(fmt.Errorf("`%s` failed: %w: %s; previous files restored and reloaded", strings.Join(a, " "), err, strings.TrimSpace(out)), rerr)
		}
	}
	res.Applied = true
	return res, nil
}

func readPub(p string) ([]byte, error) {
	fi, err := os.Lstat(p)
	if err != nil {
		return nil, fmt.Errorf("converge key %s: %w (this host was created without converge: it needs replacing, or the key installed by hand)", p, err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o022 != 0 {
		return nil, fmt.Errorf("converge key %s: expected a regular file writable by root only", p)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("converge key: %w", err)
	}
	pub, err := seedkeys.ParseConvergePublic(string(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return pub, nil
}

func readSerial(p string) (uint64, error) {
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("converge serial: %w", err)
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("converge serial %s: %q, expected a number", p, strings.TrimSpace(string(b)))
	}
	return n, nil
}

func writeSerial(p string, n uint64) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("converge serial: %w", err)
	}
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.FormatUint(n, 10)+"\n"), 0o600); err != nil {
		return fmt.Errorf("converge serial: %w", err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return fmt.Errorf("converge serial: %w", err)
	}
	return nil
}

func lock(p string) (func(), error) {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return nil, fmt.Errorf("converge lock: %w", err)
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("converge lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("another belay host converge runs on this host")
	}
	return func() { f.Close() }, nil
}
