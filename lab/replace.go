package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"time"
)

// ReplaceOptions configures `belay lab replace`.
type ReplaceOptions struct {
	Paths Paths
	// Host is the machine to replace (a name from the lab state).
	Host string
	// Progress receives one line per step; nil discards.
	Progress io.Writer
	Runner   Runner
	// CloudInitTimeout bounds the new machine's boot to "cloud-init done" (default 10 min).
	CloudInitTimeout time.Duration
}

// ReplaceSummary is what `lab replace` did (printed with --json).
type ReplaceSummary struct {
	Host string `json:"host"`
	// DataDisk is the kept second disk's file ("" for a stateless machine).
	DataDisk  string  `json:"dataDisk,omitempty"`
	CloudInit string  `json:"cloudInit"`
	Seconds   float64 `json:"seconds"`
}

// Replace is the lab's provider replacement of one server: the machine is
// stopped, its root (the overlay's upper layer and its disk) thrown away, and
// a new root booted from the same image and the same NoCloud seed (user data,
// meta-data, network config) and belay binary, so cloud-init provisions it
// from scratch. Its second disk is kept, as a cloud volume is: the role finds
// a filesystem on it and mounts it without formatting.
//
// Faults recorded on the machine: a kill is healed by the replacement; any
// other (a cut link, netem, a stopped service, a filled disk) must be healed
// first, since it names things the replacement removes.
func Replace(ctx context.Context, o ReplaceOptions) (*ReplaceSummary, error) {
	t0 := time.Now()
	if o.Runner == nil {
		o.Runner = ExecRunner{}
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.CloudInitTimeout == 0 {
		o.CloudInitTimeout = 10 * time.Minute
	}
	if o.Host == "" {
		return nil, errors.New("lab replace: which machine? (a host name from `belay lab status`)")
	}
	st, err := o.Paths.loadState()
	if err != nil {
		return nil, err
	}
	if _, ok := st.Machines[o.Host]; !ok {
		return nil, unknownMachine(st, o.Host)
	}
	if err := Preflight(true); err != nil {
		return nil, err
	}
	unlock, err := o.Paths.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	// Read again under the lock: another command may have changed it.
	if st, err = o.Paths.loadState(); err != nil {
		return nil, err
	}
	m, ok := st.Machines[o.Host]
	if !ok {
		return nil, unknownMachine(st, o.Host)
	}
	var keep []Fault
	for _, f := range st.Faults {
		switch {
		case f.Machine != o.Host:
			keep = append(keep, f)
		case f.Kind != FaultKill:
			return nil, fmt.Errorf("lab replace %s: fault %q is injected on it; `belay lab heal` first", o.Host, f)
		}
	}
	say := func(format string, a ...any) { fmt.Fprintf(o.Progress, "[%s] %s\n", o.Host, fmt.Sprintf(format, a...)) }
	seg, err := segmentOf(m)
	if err != nil {
		return nil, err
	}
	d := o.Paths.dirs(o.Host)
	userData, err := readUserData(d.root)
	if err != nil {
		return nil, fmt.Errorf("lab replace %s: %w (is its root mounted? `belay lab up` restores it)", o.Host, err)
	}
	image := filepath.Join(o.Paths.Cache, "images", st.Image, "rootfs")
	if _, err := os.Stat(image); err != nil || st.Image == "" {
		return nil, fmt.Errorf("lab replace %s: lab image %q is not in the cache (run `belay lab up`)", o.Host, st.Image)
	}
	// The new root gets the belay binary the old one had (the machine's hash covers it).
	bin, err := os.CreateTemp(o.Paths.State, ".replace-belay-*")
	if err != nil {
		return nil, fmt.Errorf("lab replace %s: %w", o.Host, err)
	}
	bin.Close()
	defer os.Remove(bin.Name())
	if err := copyFile(filepath.Join(d.root, "usr/local/bin/belay"), bin.Name(), 0o755); err != nil {
		return nil, fmt.Errorf("lab replace %s: belay binary of the old root: %w", o.Host, err)
	}

	say("stopping")
	stopMachine(ctx, m.PID, o.Host, 20*time.Second)
	m.PID = 0
	st.Faults = keep
	if err := o.Paths.saveState(st); err != nil {
		return nil, err
	}
	say("throwing away its root")
	if err := destroyMachine(ctx, o.Runner, o.Paths, o.Host); err != nil {
		return nil, err
	}
	spec := MachineSpec{Name: o.Host, Site: m.Site, Segment: seg, UserData: userData, DataDisk: m.DataDisk != nil}
	if spec.Address, err = netip.ParseAddr(m.Address); err != nil {
		return nil, fmt.Errorf("lab replace %s: state address: %w", o.Host, err)
	}
	say("creating a new root from the same user data")
	if err := prepareMachine(ctx, o.Runner, o.Paths, image, spec, bin.Name()); err != nil {
		// No half-made root: `lab up` then creates the machine again (disk kept).
		if derr := destroyMachine(ctx, o.Runner, o.Paths, o.Host); derr != nil {
			err = errors.Join(err, derr)
		}
		return nil, err
	}
	sum := &ReplaceSummary{Host: o.Host}
	if spec.DataDisk {
		if m.DataDisk, err = attachDataDisk(ctx, o.Runner, o.Paths, o.Host); err != nil {
			return nil, err
		}
		sum.DataDisk = m.DataDisk.Image
		say("keeping its data disk %s (%s)", m.DataDisk.Image, m.DataDisk.Loop)
	}
	pid, err := startMachine(o.Paths, spec, m.DataDisk)
	if err != nil {
		return nil, err
	}
	m.PID, m.Created = pid, time.Now().UTC()
	if err := o.Paths.saveState(st); err != nil {
		return nil, err
	}
	say("booting…")
	init, err := initPID(ctx, pid, o.Host, 30*time.Second)
	if err != nil {
		return nil, fmt.Errorf("%w; console: %s", err, tailFile(d.console, 15))
	}
	status, err := waitCloudInit(ctx, o.Runner, init, o.CloudInitTimeout)
	sum.CloudInit, sum.Seconds = status, time.Since(t0).Seconds()
	if err != nil {
		return sum, fmt.Errorf("lab replace %s: cloud-init %s: %w\n%s", o.Host, status, err, cloudInitLogTail(d.root))
	}
	say("cloud-init %s (%.1fs)", status, sum.Seconds)
	return sum, nil
}

// readUserData reads the user data `lab up` wrote into a machine's root;
// meta-data and network-config are derived from it and the state, as `lab up` does.
func readUserData(root string) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(root, "var/lib/cloud/seed/nocloud/user-data"))
	if err != nil {
		return nil, fmt.Errorf("user data of the old root: %w", err)
	}
	return b, nil
}
