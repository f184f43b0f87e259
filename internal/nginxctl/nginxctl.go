// Package nginxctl is what belay's root-side helpers (`belay host route`,
// `belay host router-sync`) share to change the local nginx: files replaced
// atomically, commands run with a timeout, and the wait until a reload took
// effect, told from the titles of nginx's worker processes. It knows nothing
// of apps, stages or cells; the callers render the files.
package nginxctl

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// WriteFile replaces path atomically with a 0644 file (nginx never reads half
// a file; the caller's umask does not narrow the mode).
func WriteFile(path string, b []byte) error {
	tmp := path + ".belay-new"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Run runs argv (no shell), at most 30 s, and returns its trimmed combined output.
func Run(ctx context.Context, argv []string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// Generation lists the workers of the nginx master whose PID is in pidFile:
// the current ones and those shutting down (finishing their requests after a
// reload). Both are empty when there is no master or procs fails.
func Generation(pidFile string, procs func() ([]Proc, error)) (current, shutting map[int]bool) {
	current, shutting = map[int]bool{}, map[int]bool{}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return
	}
	master, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	ps, err := procs()
	if err != nil || master == 0 {
		return
	}
	for _, p := range ps {
		switch {
		case p.PPID != master:
		case p.Title == WorkerTitle:
			current[p.PID] = true
		case p.Title == ShuttingTitle:
			shutting[p.PID] = true
		}
	}
	return
}

// Wait says what WaitReloaded waits for.
type Wait struct {
	// PIDFile is nginx's master PID file; Procs lists processes (ProcFS on a host).
	PIDFile string
	Procs   func() ([]Proc, error)
	// Before are the current workers from Generation taken before the reload.
	Before map[int]bool
	// Drained also waits until none of the master's workers is shutting down,
	// so no request routed by an older configuration is still in flight.
	Drained bool
	// Timeout bounds the wait; Poll is the pause between checks.
	Timeout, Poll time.Duration
}

// ErrTimeout is WaitReloaded's error when Timeout passed first.
var ErrTimeout = errors.New("nginxctl: timed out waiting for the reload")

// WaitReloaded waits until nginx took the new configuration: none of the
// workers in Before is still a current worker (each exited or is shutting
// down) and a new worker runs; with Drained, also no worker is shutting down.
// `nginx -s reload` and `systemctl reload` return as soon as the signal is
// sent, before any of this. With an empty Before there is no old generation
// to retire. It returns the old workers still current and the workers
// shutting down at the last check, with ErrTimeout or the context's error.
func WaitReloaded(ctx context.Context, w Wait) (stale, shutting int, err error) {
	deadline := time.Now().Add(w.Timeout)
	for {
		cur, sh := Generation(w.PIDFile, w.Procs)
		stale = 0
		for pid := range cur {
			if w.Before[pid] {
				stale++
			}
		}
		shutting = len(sh)
		retired := len(w.Before) == 0 || (stale == 0 && len(cur) > 0)
		if retired && (!w.Drained || shutting == 0) {
			return stale, shutting, nil
		}
		if time.Now().After(deadline) {
			return stale, shutting, ErrTimeout
		}
		select {
		case <-ctx.Done():
			return stale, shutting, ctx.Err()
		case <-time.After(w.Poll):
		}
	}
}
