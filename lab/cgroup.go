package lab

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// cgroupRoots are the cgroup hierarchies a machine's systemd manages: the
// unified (v2) one, and on hybrid hosts also the legacy name=systemd one.
func cgroupRoots() []string {
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		return []string{"/sys/fs/cgroup"}
	}
	var roots []string
	for _, r := range []string{"/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified"} {
		if _, err := os.Stat(filepath.Join(r, "cgroup.procs")); err == nil {
			roots = append(roots, r)
		}
	}
	return roots
}

// machineCgroups returns (and creates) the machine's own cgroup in each
// hierarchy. Why: with --keep-unit and no systemd on the host, systemd-nspawn
// uses its caller's cgroup as the machine's; machines started from one process
// would share it, and their systemds would remove each other's unit cgroups
// (units then fail at random with "Failed to attach to cgroup").
func machineCgroups(name string) ([]string, error) {
	var out []string
	for _, r := range cgroupRoots() {
		d := filepath.Join(r, "belay-lab", name)
		clearCgroup(d) // left over from a killed run
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

// clearCgroup removes a (process-free) cgroup tree, deepest first; cgroups
// can only be removed with rmdir, one empty level at a time.
func clearCgroup(dir string) {
	var dirs []string
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	sort.Slice(dirs, func(i, j int) bool { return strings.Count(dirs[i], "/") > strings.Count(dirs[j], "/") })
	for _, d := range dirs {
		_ = os.Remove(d)
	}
}

// removeMachineCgroups clears a stopped machine's cgroups, and the lab's
// parent when empty. Why the retry: a cgroup stays busy for a moment after its
// last process exited (until the exited systemd-nspawn is reaped, by init when
// `lab up` has already exited), and rmdir then fails with EBUSY. CI saw
// exactly that: the parent left behind after an otherwise clean `lab down`.
func removeMachineCgroups(name string) {
	removeCgroupsWithin(cgroupRoots(), cgroupRemoveWait, func(r string) string { return filepath.Join(r, "belay-lab", name) })
}

// removeLabCgroups clears the whole lab tree: machines the state no longer
// names (a killed run) leave empty cgroups only this sweep finds.
func removeLabCgroups() {
	removeCgroupsWithin(cgroupRoots(), cgroupRemoveWait, func(r string) string { return filepath.Join(r, "belay-lab") })
}

const cgroupRemoveWait = 10 * time.Second

// removeCgroupsWithin clears dir(root) in every hierarchy, and the lab's
// parent when empty, retrying until dir is gone or wait has passed. A cgroup
// with a live process in it is never forced: Leftovers reports it.
func removeCgroupsWithin(roots []string, wait time.Duration, dir func(root string) string) {
	deadline := time.Now().Add(wait)
	for {
		left := false
		for _, r := range roots {
			d := dir(r)
			clearCgroup(d)
			_ = os.Remove(filepath.Join(r, "belay-lab"))
			if _, err := os.Stat(d); err == nil {
				left = true
			}
		}
		if !left || time.Now().After(deadline) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// cgroupLeftovers lists lab cgroups still present.
func cgroupLeftovers() []string {
	var out []string
	for _, r := range cgroupRoots() {
		if _, err := os.Stat(filepath.Join(r, "belay-lab")); err == nil {
			out = append(out, "cgroup "+filepath.Join(r, "belay-lab"))
		}
	}
	return out
}

// cgroupWrapper runs argv after moving itself into cgroups: a shell that
// writes its PID into each cgroup.procs and then execs argv (same PID).
func cgroupWrapper(cgroups []string, argv []string) []string {
	w := []string{"/bin/sh", "-ec", `while [ "$1" != -- ]; do echo $$ >"$1/cgroup.procs"; shift; done; shift; exec "$@"`, "belay-lab-start"}
	w = append(w, cgroups...)
	w = append(w, "--")
	return append(w, argv...)
}
