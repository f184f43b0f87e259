package lab

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRunCancelEndsTheWholeCommand: a cancelled command whose child keeps
// stdout open (as nsenter's forked child does) returns, and the child is gone.
func TestRunCancelEndsTheWholeCommand(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		// The background sleep inherits stdout; killing only sh would leave it
		// holding the pipe and Run waiting on it.
		_, err := ExecRunner{}.Run(ctx, Cmd{Argv: []string{"sh", "-c", `sleep 300 & echo $! > "$1"; wait`, "sh", pidFile}})
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a cancelled command reported success")
		}
	case <-time.After(time.Minute):
		t.Fatal("Run did not return after its context was cancelled (a child held stdout open)")
	}
	raw, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("the command did not start its child: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatalf("child pid %q: %v", raw, err)
	}
	// Reaped by init or a zombie for an instant at most: poll its state.
	for i := 0; i < 100; i++ {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return
		}
		if st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); err == nil && strings.Contains(string(st), ") Z ") {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Errorf("the child %d outlived the cancelled command", pid)
}
