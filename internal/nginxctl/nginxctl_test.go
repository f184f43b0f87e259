package nginxctl

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// pidFile writes a master PID file for master 100.
func pidFile(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "nginx.pid")
	if err := os.WriteFile(p, []byte("100\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func worker(pid int) Proc   { return Proc{PID: pid, PPID: 100, Title: WorkerTitle} }
func shutting(pid int) Proc { return Proc{PID: pid, PPID: 100, Title: ShuttingTitle} }

func TestGeneration(t *testing.T) {
	pf := pidFile(t)
	procs := func() ([]Proc, error) {
		return []Proc{
			worker(1), shutting(2),
			{PID: 3, PPID: 999, Title: WorkerTitle}, // another master's worker
			{PID: 4, PPID: 100, Title: "nginx: cache manager process"},
		}, nil
	}
	cur, sh := Generation(pf, procs)
	if len(cur) != 1 || !cur[1] || len(sh) != 1 || !sh[2] {
		t.Fatalf("Generation = %v, %v; want current {1}, shutting {2}", cur, sh)
	}
	cur, sh = Generation(filepath.Join(t.TempDir(), "missing.pid"), procs)
	if len(cur) != 0 || len(sh) != 0 {
		t.Fatalf("without a master: %v, %v; want both empty", cur, sh)
	}
	cur, _ = Generation(pf, func() ([]Proc, error) { return nil, errors.New("no /proc") })
	if len(cur) != 0 {
		t.Fatalf("procs failing: %v, want empty", cur)
	}
}

func TestWaitReloaded(t *testing.T) {
	// Each case lists the process table at successive checks; the last one repeats.
	tests := []struct {
		name      string
		before    map[int]bool
		drained   bool
		steps     [][]Proc
		wantErr   error
		wantStale int
		wantShut  int
	}{
		{name: "no old generation", before: nil, steps: [][]Proc{{shutting(9)}}, wantShut: 1},
		{name: "no old generation, drained waits for shutting", before: nil, drained: true,
			steps: [][]Proc{{shutting(9)}}, wantErr: ErrTimeout, wantShut: 1},
		{name: "retired after a reload", before: map[int]bool{1: true},
			steps: [][]Proc{{worker(1)}, {shutting(1), worker(2)}}, wantShut: 1},
		{name: "retired but not drained", before: map[int]bool{1: true}, drained: true,
			steps: [][]Proc{{shutting(1), worker(2)}}, wantErr: ErrTimeout, wantShut: 1},
		{name: "retired and drained", before: map[int]bool{1: true}, drained: true,
			steps: [][]Proc{{shutting(1), worker(2)}, {worker(2)}}},
		{name: "old worker still current", before: map[int]bool{1: true},
			steps: [][]Proc{{worker(1), worker(2)}}, wantErr: ErrTimeout, wantStale: 1},
		{name: "no new worker yet", before: map[int]bool{1: true},
			steps: [][]Proc{{shutting(1)}}, wantErr: ErrTimeout, wantShut: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var n atomic.Int32
			procs := func() ([]Proc, error) {
				i := int(n.Add(1)) - 1
				if i >= len(tt.steps) {
					i = len(tt.steps) - 1
				}
				return tt.steps[i], nil
			}
			stale, shut, err := WaitReloaded(context.Background(), Wait{
				PIDFile: pidFile(t), Procs: procs, Before: tt.before, Drained: tt.drained,
				Timeout: 50 * time.Millisecond, Poll: time.Millisecond,
			})
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if stale != tt.wantStale || shut != tt.wantShut {
				t.Fatalf("stale, shutting = %d, %d; want %d, %d", stale, shut, tt.wantStale, tt.wantShut)
			}
		})
	}
}

func TestWaitReloadedContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _, err := WaitReloaded(ctx, Wait{
		PIDFile: pidFile(t), Procs: func() ([]Proc, error) { return []Proc{worker(1)}, nil },
		Before: map[int]bool{1: true}, Timeout: time.Minute, Poll: time.Second,
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestWriteFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "map.conf")
	if err := os.WriteFile(p, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(p, []byte("new\n")); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	st, _ := os.Stat(p)
	if string(b) != "new\n" || st.Mode().Perm() != 0o644 {
		t.Fatalf("got %q mode %v, want \"new\\n\" 0644", b, st.Mode().Perm())
	}
	if _, err := os.Stat(p + ".belay-new"); !os.IsNotExist(err) {
		t.Fatalf("temporary file left behind: %v", err)
	}
	if err := WriteFile(filepath.Join(t.TempDir(), "no", "dir"), nil); err == nil {
		t.Fatal("WriteFile into a missing directory: nil error")
	}
}

func TestRun(t *testing.T) {
	out, err := Run(context.Background(), []string{"sh", "-c", "echo '  hi  '; echo err >&2"})
	if err != nil || out != "hi  \nerr" {
		t.Fatalf("Run = %q, %v; want trimmed combined output", out, err)
	}
	if _, err := Run(context.Background(), []string{"false"}); err == nil {
		t.Fatal("Run(false): nil error")
	}
}
