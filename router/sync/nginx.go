package sync

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// nginx renames its processes; these titles tell the generations apart.
const (
	workerTitle   = "nginx: worker process"
	shuttingTitle = "nginx: worker process is shutting down"
)

// generation lists the master's workers: current ones and those shutting down.
func (d *Daemon) generation() (current, shutting map[int]bool) {
	current, shutting = map[int]bool{}, map[int]bool{}
	b, err := os.ReadFile(d.o.PIDFile)
	if err != nil {
		return
	}
	master, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	ps, err := d.o.Procs()
	if err != nil || master == 0 {
		return
	}
	for _, p := range ps {
		switch {
		case p.PPID != master:
		case p.Title == workerTitle:
			current[p.PID] = true
		case p.Title == shuttingTitle:
			shutting[p.PID] = true
		}
	}
	return
}

// settle waits until nginx serves only with the new map: every worker that
// ran before the reload (before) has stopped being a current worker, and no
// worker of an older generation is left with a request in flight. Only then
// may a move rely on a frozen shop getting no request routed by the old map.
// `nginx -s reload` and `systemctl reload` return as soon as the signal is
// sent, before any of this.
func (d *Daemon) settle(ctx context.Context, before map[int]bool) error {
	deadline := time.Now().Add(d.o.DrainTimeout)
	for {
		cur, shutting := d.generation()
		stale := 0
		for pid := range cur {
			if before[pid] {
				stale++
			}
		}
		if (len(before) == 0 || (stale == 0 && len(cur) > 0)) && len(shutting) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nginx still has %d workers of the old map and %d finishing requests after %s", stale, len(shutting), d.o.DrainTimeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}
