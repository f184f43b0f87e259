package opsenv

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/belay-sh/belay/deploy/lease"
	"github.com/belay-sh/belay/hostrelease"
	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/remote/remotetest"
)

// sudoRunner runs deploy-user commands with sh under a per-host root, with a
// `sudo` that runs its command (after -n) and records it in the host's root.
func sudoRunner(t *testing.T) (*remotetest.Runner, map[string]string) {
	t.Helper()
	roots := map[string]string{}
	for _, h := range []string{"shop-1", "shop-2", "shop-standby", "db-1"} {
		roots[h] = filepath.Join(t.TempDir(), h)
		os.MkdirAll(roots[h], 0o755)
	}
	const sudo = `sudo() { [ "$1" = -n ] && shift; echo "$*" >> "$BELAY_ROOT/sudo.log"; "$@"; }` + "\n"
	return &remotetest.Runner{Handle: func(c remotetest.Call) ([]byte, error) {
		cmd := exec.Command("sh", "-c", sudo+c.Cmd)
		if c.Root {
			cmd = exec.Command("sh", "-c", sudo+"sudo -n "+c.Cmd)
		}
		cmd.Env = append(os.Environ(), "BELAY_ROOT="+roots[c.Host])
		out, err := cmd.Output()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return out, &exitErr{ee.ExitCode(), string(ee.Stderr)}
		}
		return out, err
	}}, roots
}

type exitErr struct {
	code int
	msg  string
}

func (e *exitErr) Error() string { return e.msg }
func (e *exitErr) ExitCode() int { return e.code }

// TestFencedStepsRefusedAfterBreak: a drill's (or a site switch's) host
// commands, plain and root, run under the fence of the lease it holds; once
// the lease is broken (or taken over), every server of the app refuses them
// with the fence's exit code, and the root command never runs. Hosts that
// serve no held app run commands unfenced.
func TestFencedStepsRefusedAfterBreak(t *testing.T) {
	inv, err := inventory.Load("../../deploy/plan/testdata/inventory.json")
	if err != nil {
		t.Fatal(err)
	}
	r, roots := sudoRunner(t)
	o := LeaseOptions{Apps: []string{"shop"}, Action: "drill app-node/stop-app", Base: "$BELAY_ROOT"}
	ctx, f, done, err := HoldFenced(context.Background(), r, inv, o)
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	for _, h := range []string{"shop-1", "shop-2", "shop-standby"} {
		if out, err := f.Run(ctx, h, "echo ran"); err != nil || strings.TrimSpace(string(out)) != "ran" {
			t.Fatalf("%s: fenced run while holding: %q %v", h, out, err)
		}
		if out, err := f.RunRoot(ctx, h, "echo", "root ran"); err != nil || strings.TrimSpace(string(out)) != "root ran" {
			t.Fatalf("%s: fenced root run while holding: %q %v", h, out, err)
		}
	}
	calls := r.Snapshot()
	last := calls[len(calls)-1]
	if last.Root || !strings.Contains(last.Cmd, "belay fence") || !strings.Contains(last.Cmd, "sudo -n echo 'root ran'") {
		t.Fatalf("root command not sent as `sudo -n` inside the fence: %s", last)
	}
	servers := []string{"shop-1", "shop-2", "shop-standby"}
	if _, err := lease.Break(context.Background(), RunnerExec(r), hostrelease.Layout{App: "shop", Base: "$BELAY_ROOT"}, "shop-1", servers); err != nil {
		t.Fatal(err)
	}
	for _, h := range servers {
		os.Remove(filepath.Join(roots[h], "sudo.log"))
		_, err := f.Run(context.Background(), h, "echo ran")
		var ce interface{ ExitCode() int }
		if !errors.As(err, &ce) || !lease.IsFenced(ce.ExitCode()) {
			t.Errorf("%s: run after the lease was broken: %v, want the fence's refusal", h, err)
		}
		if _, err := f.RunRoot(context.Background(), h, "touch", filepath.Join(roots[h], "root-ran")); err == nil {
			t.Errorf("%s: root command ran after the lease was broken", h)
		}
		if _, err := os.Stat(filepath.Join(roots[h], "root-ran")); err == nil {
			t.Errorf("%s: the root command ran", h)
		}
		if _, err := os.Stat(filepath.Join(roots[h], "sudo.log")); err == nil {
			t.Errorf("%s: sudo was called after the lease was broken", h)
		}
	}
	// A host serving no held app: no fence to check.
	if out, err := f.RunRoot(context.Background(), "db-1", "echo", "db"); err != nil || strings.TrimSpace(string(out)) != "db" {
		t.Errorf("db-1: %q %v", out, err)
	}
}
