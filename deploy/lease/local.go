package lease

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"syscall"
)

// LocalLock is a holder's proof of life on its own machine: while it holds a
// lease, a run keeps an exclusive flock on <Dir>/lease-<token>.lock. The kernel
// drops the flock when the process dies, however it dies. So a later run that
// finds the file for the lease's token AND gets the flock has proven the holder
// gone: same machine (the file is there) and no process holds it. Hostname and
// PID prove nothing (CI containers share hostnames and reuse PIDs); a holder on
// another machine (or container) has no file here, so only expiry or an audited
// `belay lease break` frees its lease.
type LocalLock struct {
	// Dir holds the lock files (e.g. $XDG_RUNTIME_DIR/belay or ~/.cache/belay/leases).
	Dir string
}

// DefaultLockDir is where the CLI keeps its lease locks for the current user.
func DefaultLockDir(getenv func(string) string) string {
	if d := getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "belay", "leases")
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "belay", "leases")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("belay-leases-%d", os.Getuid()))
}

var tokenRE = regexp.MustCompile(`^[0-9a-f]{16,64}$`)

func (l *LocalLock) path(token string) (string, error) {
	if !tokenRE.MatchString(token) {
		return "", fmt.Errorf("lease token %q: expected 16-64 lowercase hex digits", token)
	}
	return filepath.Join(l.Dir, "lease-"+token+".lock"), nil
}

// Hold creates and locks the file for token; release unlocks and removes it.
func (l *LocalLock) Hold(token string) (release func(), err error) {
	p, err := l.path(token)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(l.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("lease lock dir %s: %w", l.Dir, err)
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lease lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("lease lock %s: %w", p, err)
	}
	return func() {
		_ = os.Remove(p)
		f.Close()
	}, nil
}

// Gone reports whether the holder of token is proven dead: its lock file is
// on this machine and nobody holds its flock.
func (l *LocalLock) Gone(token string) bool {
	p, err := l.path(token)
	if err != nil {
		return false
	}
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return false // not ours to judge: another machine, user or container
	}
	defer f.Close()
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) || err != nil {
		return false
	}
	_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return true
}

// Forget removes a dead holder's lock file once its lease was taken over.
func (l *LocalLock) Forget(token string) {
	if p, err := l.path(token); err == nil {
		_ = os.Remove(p)
	}
}
