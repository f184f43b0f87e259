package lab

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The lab is one per host. A test run that checks faults end to end reserves
// it, so another run's injections and heals (another package's lab tests, a
// drill) wait instead of healing or killing under it.

func (p Paths) reservation() string { return filepath.Join(p.State, "reserved") }

// Reserve marks the lab as in use by this process (and its children) until
// release is called; other processes' lab commands wait for it. It waits for
// another live reservation first, up to lockWait.
func Reserve(p Paths, who string) (release func(), err error) {
	if err := os.MkdirAll(p.State, 0o700); err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	deadline := time.Now().Add(lockWait)
	for {
		f, err := os.OpenFile(p.reservation(), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err == nil {
			fmt.Fprintf(f, "%d\n%s\n", os.Getpid(), who)
			f.Close()
			return func() { _ = os.Remove(p.reservation()) }, nil
		}
		if !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("lab reservation: %w", err)
		}
		if pid, _ := reservedBy(p); pid == 0 || !alive(pid) {
			_ = os.Remove(p.reservation()) // left by a process that is gone
			continue
		}
		if time.Now().After(deadline) {
			pid, holder := reservedBy(p)
			return nil, fmt.Errorf("lab: reserved by %s (pid %d) for more than %s", holder, pid, lockWait)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// reservedBy returns the reserving process and its label, or 0.
func reservedBy(p Paths) (int, string) {
	b, err := os.ReadFile(p.reservation())
	if err != nil {
		return 0, ""
	}
	lines := strings.SplitN(strings.TrimSpace(string(b)), "\n", 2)
	pid, _ := strconv.Atoi(lines[0])
	who := ""
	if len(lines) > 1 {
		who = lines[1]
	}
	return pid, who
}

// reservedByOther reports a live reservation held by a process that is neither
// this one nor one of its ancestors.
func reservedByOther(p Paths) (int, string, bool) {
	pid, who := reservedBy(p)
	if pid == 0 || !alive(pid) {
		return 0, "", false
	}
	for cur := os.Getpid(); cur > 1; cur = parentOf(cur) {
		if cur == pid {
			return 0, "", false
		}
	}
	return pid, who, true
}

func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] != 'Z'
}

func parentOf(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}
