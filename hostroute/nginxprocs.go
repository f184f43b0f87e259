package hostroute

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Proc is one process as far as the drain needs it.
type Proc struct {
	PID, PPID int
	// Title is the command line as the process set it ("nginx: worker process").
	Title string
}

// nginx renames its processes; these titles tell the generations apart.
const (
	workerTitle   = "nginx: worker process"
	shuttingTitle = "nginx: worker process is shutting down"
)

// ProcFS lists processes from /proc.
func ProcFS() ([]Proc, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var out []Proc
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		cmd, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		title := strings.TrimRight(strings.ReplaceAll(string(cmd), "\x00", " "), " ")
		out = append(out, Proc{PID: pid, PPID: ppid, Title: title})
	}
	return out, nil
}

func masterPID(o Options) int {
	b, err := os.ReadFile(o.PIDFile)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// workers returns the PIDs of the master's current (not retiring) workers.
func workers(o Options) (map[int]bool, error) {
	m := masterPID(o)
	ps, err := o.Procs()
	if err != nil || m == 0 {
		return nil, err
	}
	out := map[int]bool{}
	for _, p := range ps {
		if p.PPID == m && p.Title == workerTitle {
			out[p.PID] = true
		}
	}
	return out, nil
}

// waitRetired waits until nginx took the new configuration: none of the
// workers that ran before the reload is still a plain worker (each exited or
// is shutting down) and a new worker runs. `systemctl reload` only sends the
// signal, so without this a drain could start before the old generation knows
// it is old.
func waitRetired(ctx context.Context, o Options, before map[int]bool) error {
	if len(before) == 0 {
		return nil // nginx was not running workers: nothing to retire
	}
	deadline := time.Now().Add(o.ReloadTimeout)
	for {
		now, err := workers(o)
		if err == nil {
			fresh, stale := 0, 0
			for pid := range now {
				if before[pid] {
					stale++
				} else {
					fresh++
				}
			}
			if stale == 0 && fresh > 0 {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nginx did not take the new configuration within %s (old workers still current; see journalctl -u nginx)", o.ReloadTimeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(o.Poll):
		}
	}
}

// WaitDrained waits until no nginx worker of an older generation is left (each
// exits once its requests in flight are answered), at most timeout. It returns
// how many were still serving when the timeout passed; that is not an error:
// a request longer than the drain timeout is cut when its backend stops.
func WaitDrained(ctx context.Context, o Options, timeout time.Duration) (int, error) {
	o = o.withDefaults()
	deadline := time.Now().Add(timeout)
	for {
		ps, err := o.Procs()
		if err != nil {
			return 0, err
		}
		left := 0
		for _, p := range ps {
			if p.Title == shuttingTitle {
				left++
			}
		}
		if left == 0 || !time.Now().Before(deadline) {
			return left, nil
		}
		select {
		case <-ctx.Done():
			return left, ctx.Err()
		case <-time.After(o.Poll):
		}
	}
}
