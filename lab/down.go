package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DownSummary is what `lab down` removed.
type DownSummary struct {
	Machines []string `json:"machines"`
	Network  bool     `json:"network"`
	Faults   int      `json:"faultsCleared"`
}

// Down removes every machine, overlay, disk, bridge and the router namespace,
// and checks that nothing of the lab is left. The seed and the admin key stay
// (host keys and logins are the same on the next `lab up`); the image stays cached.
func Down(ctx context.Context, p Paths, r Runner, progress io.Writer) (*DownSummary, error) {
	if r == nil {
		r = ExecRunner{}
	}
	if progress == nil {
		progress = io.Discard
	}
	if err := Preflight(true); err != nil {
		return nil, err
	}
	unlock, err := p.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	st, err := p.loadState()
	if err != nil {
		return nil, err
	}
	sum := &DownSummary{Faults: len(st.Faults)}

	// Machines in the state file, plus any directory or process of ours the state
	// lost track of (an interrupted `up`).
	pids := map[string]int{}
	for name, m := range st.Machines {
		pids[name] = m.PID
	}
	for name, pid := range ourNspawns(p) {
		pids[name] = pid
	}
	entries, _ := os.ReadDir(filepath.Join(p.State, "machines"))
	for _, e := range entries {
		if _, ok := pids[e.Name()]; !ok && e.IsDir() {
			pids[e.Name()] = 0
		}
	}
	names := make([]string, 0, len(pids))
	for n := range pids {
		names = append(names, n)
	}
	sort.Strings(names)
	var wg sync.WaitGroup
	errs := make([]error, len(names))
	for i, name := range names {
		wg.Add(1)
		go func(i int, name string) {
			defer wg.Done()
			stopMachine(ctx, pids[name], name, 20*time.Second)
			if err := destroyMachine(ctx, r, p, name); err != nil {
				errs[i] = err
				return
			}
			if err := removeDataDisk(ctx, r, p, name); err != nil {
				errs[i] = err
				return
			}
			fmt.Fprintf(progress, "[%s] removed\n", name)
		}(i, name)
	}
	wg.Wait()
	sum.Machines = names
	// Disks whose machine the state and the machines dir both lost.
	for _, name := range dataDiskNames(p) {
		if _, ok := pids[name]; !ok {
			if err := removeDataDisk(ctx, r, p, name); err != nil {
				errs = append(errs, err)
			}
		}
	}
	_ = os.Remove(p.volumesDir())
	for _, t := range lossTables(ctx, r) {
		if _, err := r.Run(ctx, cmd("nft", "delete", "table", "bridge", t)); err != nil {
			errs = append(errs, err)
		}
	}
	sum.Network = networkState() != "down"
	if err := removeMachineLinks(ctx, r, machineLinkWait); err != nil {
		errs = append(errs, err)
	}
	if err := runAll(ctx, r, networkDownCmds()); err != nil {
		errs = append(errs, err)
	}
	for _, f := range []string{p.stateFile(), p.inventory(), p.knownHosts()} {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	_ = os.Remove(filepath.Join(p.State, "machines"))
	removeLabCgroups()
	if left := Leftovers(p); len(left) > 0 {
		errs = append(errs, fmt.Errorf("lab down: still present: %s", strings.Join(left, "; ")))
	}
	return sum, errors.Join(errs...)
}

// Leftovers lists anything of the lab still on this host: interfaces, the
// router namespace, machine processes and mounts. Empty after a clean `lab down`.
func Leftovers(p Paths) []string {
	var out []string
	ifs, _ := net.Interfaces()
	for _, ifc := range ifs {
		if strings.HasPrefix(ifc.Name, "belay-") || strings.HasPrefix(ifc.Name, "vb-") {
			out = append(out, "interface "+ifc.Name)
		}
	}
	if _, err := os.Stat("/run/netns/" + RouterNS); err == nil {
		out = append(out, "network namespace "+RouterNS)
	}
	for name, pid := range ourNspawns(p) {
		out = append(out, fmt.Sprintf("machine %s (systemd-nspawn pid %d)", name, pid))
	}
	if b, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		prefix := filepath.Join(p.State, "machines") + "/"
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) > 4 && strings.HasPrefix(unescapeMount(f[4]), prefix) {
				out = append(out, "mount "+unescapeMount(f[4]))
			}
		}
	}
	out = append(out, cgroupLeftovers()...)
	out = append(out, loopLeftovers(p)...)
	for _, name := range dataDiskNames(p) {
		out = append(out, "data disk "+p.volumeImage(name))
	}
	for _, t := range lossTables(context.Background(), ExecRunner{}) {
		out = append(out, "nftables table bridge "+t)
	}
	sort.Strings(out)
	return out
}

// ourNspawns finds systemd-nspawn processes booting a root under the lab's machines dir.
func ourNspawns(p Paths) map[string]int {
	out := map[string]int{}
	prefix := "--directory=" + filepath.Join(p.State, "machines") + "/"
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil || !strings.Contains(string(b), "systemd-nspawn") {
			continue
		}
		var dir, name string
		for _, a := range strings.Split(string(b), "\x00") {
			if strings.HasPrefix(a, prefix) {
				dir = a
			}
			if v, ok := strings.CutPrefix(a, "--machine="); ok {
				name = v
			}
		}
		if dir != "" && name != "" {
			out[name] = pid
		}
	}
	return out
}

// machineLinkWait bounds how long `lab down` waits for the machines' veth
// links to go. Why wait: the kernel deletes a machine's host-side veth when
// its network namespace is destroyed, asynchronously and after the machine's
// processes are gone; with 14 machines stopping at once on a busy box that
// took seconds, and a `lab up` right after failed with "Failed to add new
// veth interfaces (vb-db-1:host0): File exists" (the CI sequence).
const machineLinkWait = 15 * time.Second

// removeMachineLinks waits until no machine veth (vb-*) is left, deleting
// those still there after a short grace (their machine is stopped: the link
// leads nowhere), for at most wait.
func removeMachineLinks(ctx context.Context, r Runner, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	grace := time.Now().Add(2 * time.Second)
	for {
		links := machineLinks()
		if len(links) == 0 {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("lab down: machine links still present after %s: %s", wait, strings.Join(links, ", "))
		}
		if time.Now().After(grace) {
			for _, l := range links {
				// An error is expected when the kernel removed it meanwhile.
				_, _ = r.Run(ctx, cmd("ip", "link", "delete", l))
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// machineLinks lists the host-side veth links systemd-nspawn created (vb-*).
func machineLinks() []string {
	var out []string
	ifs, _ := net.Interfaces()
	for _, ifc := range ifs {
		if strings.HasPrefix(ifc.Name, "vb-") {
			out = append(out, ifc.Name)
		}
	}
	return out
}
