package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// FaultKind names one kind of injected failure.
type FaultKind string

// The faults the lab can inject.
const (
	// FaultKill is a power cut: SIGKILL to the machine's PID 1 and systemd-nspawn.
	FaultKill FaultKind = "kill"
	// FaultStopService stops one systemd unit inside a machine.
	FaultStopService FaultKind = "stop-service"
	// FaultCutLink takes the machine's cable out: its host-side veth goes down.
	FaultCutLink FaultKind = "cut-link"
	// FaultNetem adds latency/loss (tc netem) on the machine's host-side veth.
	FaultNetem FaultKind = "netem"
	// FaultFillDisk fills the machine's disk to ~0 bytes free.
	FaultFillDisk FaultKind = "fill-disk"
	// FaultPartition stops the lab router forwarding between the two sites.
	FaultPartition FaultKind = "partition"
)

// FaultKinds lists every kind, in the order `lab fault` documents them.
var FaultKinds = []FaultKind{FaultKill, FaultStopService, FaultCutLink, FaultNetem, FaultFillDisk, FaultPartition}

// Fault is one injected failure, recorded in the lab state until healed.
type Fault struct {
	Kind    FaultKind `json:"kind"`
	Machine string    `json:"machine,omitempty"`
	// Service is the unit stop-service stopped.
	Service string `json:"service,omitempty"`
	// Netem is the tc netem arguments (e.g. ["delay", "200ms", "loss", "5%"]).
	Netem []string `json:"netem,omitempty"`
	// Iface is the host-side interface a link fault was applied to.
	Iface string `json:"iface,omitempty"`
	// NftTable is the nftables bridge table emulating loss where the kernel has no netem.
	NftTable string `json:"nftTable,omitempty"`
	// File is the file fill-disk created (path inside the machine).
	File string    `json:"file,omitempty"`
	At   time.Time `json:"at"`
}

func (f Fault) String() string {
	s := string(f.Kind)
	if f.Machine != "" {
		s += " " + f.Machine
	}
	if f.Service != "" {
		s += " " + f.Service
	}
	if len(f.Netem) > 0 {
		s += " " + strings.Join(f.Netem, " ")
	}
	return s
}

// fillFile is where fill-disk allocates, inside the machine.
const fillFile = "/var/lib/belay-lab-fill"

// netemWords are the tc netem parameters accepted (arguments are passed as
// argv, never through a shell; this only rejects typos early).
var netemWords = map[string]bool{"delay": true, "loss": true, "duplicate": true, "corrupt": true, "reorder": true, "rate": true, "distribution": true, "limit": true, "gap": true, "slot": true}

// Validate checks a fault before anything is changed.
func (f Fault) Validate() error {
	needMachine := f.Kind != FaultPartition
	switch f.Kind {
	case FaultKill, FaultCutLink, FaultFillDisk, FaultPartition:
	case FaultStopService:
		if f.Service == "" || strings.ContainsAny(f.Service, " /\x00") {
			return fmt.Errorf("stop-service: service %q, expected a unit name such as nginx or keepalived.service", f.Service)
		}
	case FaultNetem:
		if len(f.Netem) == 0 || !netemWords[f.Netem[0]] {
			return fmt.Errorf("netem: arguments %q, expected tc netem parameters such as \"delay 200ms\" or \"loss 10%%\"", strings.Join(f.Netem, " "))
		}
	default:
		return fmt.Errorf("fault kind %q, expected one of kill, stop-service, cut-link, netem, fill-disk, partition", f.Kind)
	}
	if needMachine && f.Machine == "" {
		return fmt.Errorf("%s: which machine? (a host name from `belay lab status`)", f.Kind)
	}
	return nil
}

// Inject applies one fault and records it. It refuses a fault that is already in place.
func Inject(ctx context.Context, p Paths, r Runner, f Fault) error {
	if r == nil {
		r = ExecRunner{}
	}
	if err := f.Validate(); err != nil {
		return err
	}
	if err := Preflight(true); err != nil {
		return err
	}
	unlock, err := p.lock()
	if err != nil {
		return err
	}
	defer unlock()
	st, err := p.loadState()
	if err != nil {
		return err
	}
	for _, g := range st.Faults {
		if g.Kind == f.Kind && g.Machine == f.Machine && g.Service == f.Service {
			return fmt.Errorf("fault %q is already injected (since %s); `belay lab heal` first", g, g.At.Format(time.RFC3339))
		}
		if g.Kind == FaultKill && g.Machine == f.Machine && f.Machine != "" {
			return fmt.Errorf("machine %s is killed; `belay lab heal` first", f.Machine)
		}
	}
	var m *MachineState
	if f.Machine != "" {
		var ok bool
		if m, ok = st.Machines[f.Machine]; !ok {
			return unknownMachine(st, f.Machine)
		}
	}
	f.At = time.Now().UTC()
	switch f.Kind {
	case FaultPartition:
		if networkState() != "up" {
			return errors.New("partition: the lab network is not up")
		}
		if _, err := r.Run(ctx, routerForwardCmd(false)); err != nil {
			return err
		}
	case FaultKill:
		if !running(m.PID, f.Machine) {
			return &notRunningError{f.Machine}
		}
		killMachine(m.PID, f.Machine)
	case FaultFillDisk:
		root := p.dirs(f.Machine).root
		if !mounted(root) {
			return fmt.Errorf("fill-disk: machine %s has no mounted disk", f.Machine)
		}
		f.File = fillFile
		if err := fillDisk(root, filepath.Join(root, fillFile)); err != nil {
			return fmt.Errorf("fill-disk %s: %w", f.Machine, err)
		}
	default:
		if !running(m.PID, f.Machine) {
			return &notRunningError{f.Machine}
		}
		init, err := initPID(ctx, m.PID, f.Machine, 10*time.Second)
		if err != nil {
			return err
		}
		switch f.Kind {
		case FaultStopService:
			if _, err := r.Run(ctx, insideCmd(init, "systemctl", "stop", f.Service)); err != nil {
				return err
			}
		case FaultCutLink, FaultNetem:
			veth, err := hostVeth(ctx, r, init)
			if err != nil {
				return fmt.Errorf("%s %s: %w", f.Kind, f.Machine, err)
			}
			f.Iface = veth
			if f.Kind == FaultCutLink {
				if _, err := r.Run(ctx, cmd("ip", "link", "set", veth, "down")); err != nil {
					return err
				}
				break
			}
			_, err = r.Run(ctx, cmd(append([]string{"tc", "qdisc", "replace", "dev", veth, "root", "netem"}, f.Netem...)...))
			if err != nil && strings.Contains(err.Error(), "qdisc kind is unknown") {
				pct, ok := lossOnly(f.Netem)
				if !ok {
					return fmt.Errorf("netem %s: this kernel has no netem qdisc (CONFIG_NET_SCH_NETEM is not set), so latency cannot be injected here; packet loss (netem MACHINE loss N%%) is emulated with nftables instead", f.Machine)
				}
				f.NftTable = lossTable(f.Machine)
				err = runAll(ctx, r, lossCmds(f.NftTable, veth, pct))
				if err != nil {
					_, _ = r.Run(ctx, tryCmd("nft", "delete", "table", "bridge", f.NftTable))
				}
			}
			if err != nil {
				return err
			}
		}
	}
	st.Faults = append(st.Faults, f)
	return p.saveState(st)
}

// fillDisk allocates all free space of the filesystem holding path (the
// machine's own disk, so the host's is untouched), backing off a little when
// the filesystem needs blocks for the file's own metadata.
func fillDisk(root, path string) error {
	var s syscall.Statfs_t
	if err := syscall.Statfs(root, &s); err != nil {
		return err
	}
	size := int64(s.Bavail) * int64(s.Bsize)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	for size > 0 {
		err = syscall.Fallocate(int(f.Fd()), 0, 0, size)
		if err == nil {
			return nil
		}
		if !errors.Is(err, syscall.ENOSPC) {
			return err
		}
		size -= 4 << 20
	}
	return errors.New("no space to fill (the disk is already full)")
}

// Heal undoes every recorded fault, newest first, and reports what it healed.
// A killed machine is booted again (same disk) and waited for.
func Heal(ctx context.Context, p Paths, r Runner, progress io.Writer) ([]Fault, error) {
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
	var healed []Fault
	var errs []error
	for i := len(st.Faults) - 1; i >= 0; i-- {
		f := st.Faults[i]
		if err := heal(ctx, p, r, st, f); err != nil {
			errs = append(errs, fmt.Errorf("heal %s: %w", f, err))
			continue
		}
		fmt.Fprintf(progress, "healed: %s\n", f)
		healed = append(healed, f)
		st.Faults = append(st.Faults[:i], st.Faults[i+1:]...)
		if err := p.saveState(st); err != nil {
			return healed, err
		}
	}
	return healed, errors.Join(errs...)
}

func heal(ctx context.Context, p Paths, r Runner, st *State, f Fault) error {
	m := st.Machines[f.Machine]
	if f.Machine != "" && m == nil {
		return nil // the machine is gone; so is its fault
	}
	switch f.Kind {
	case FaultPartition:
		_, err := r.Run(ctx, routerForwardCmd(true))
		return err
	case FaultKill:
		if running(m.PID, f.Machine) {
			return nil
		}
		seg, err := segmentOf(m)
		if err != nil {
			return err
		}
		// The loop device may be gone (host rebooted): attach the same file again.
		if m.DataDisk != nil {
			if m.DataDisk, err = attachDataDisk(ctx, r, p, m.Name); err != nil {
				return err
			}
		}
		pid, err := startMachine(p, MachineSpec{Name: m.Name, Site: m.Site, Segment: seg}, m.DataDisk)
		if err != nil {
			return err
		}
		m.PID = pid
		if err := p.saveState(st); err != nil {
			return err
		}
		init, err := initPID(ctx, pid, m.Name, 30*time.Second)
		if err != nil {
			return err
		}
		// Back when cloud-init has run its per-boot stages, as after `lab up`
		// (whether services are healthy is for the drill to judge).
		_, err = waitCloudInit(ctx, r, init, 3*time.Minute)
		return err
	case FaultFillDisk:
		err := os.Remove(filepath.Join(p.dirs(f.Machine).root, f.File))
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	if f.NftTable != "" {
		if _, err := r.Run(ctx, tryCmd("nft", "delete", "table", "bridge", f.NftTable)); err != nil {
			return err
		}
	}
	if !running(m.PID, f.Machine) {
		return nil // a stopped machine's link and services come back with it
	}
	init, err := initPID(ctx, m.PID, f.Machine, 10*time.Second)
	if err != nil {
		return err
	}
	switch f.Kind {
	case FaultStopService:
		_, err = r.Run(ctx, insideCmd(init, "systemctl", "start", f.Service))
	case FaultCutLink, FaultNetem:
		veth, verr := hostVeth(ctx, r, init)
		if verr != nil {
			return verr
		}
		c := cmd("ip", "link", "set", veth, "up")
		if f.Kind == FaultNetem {
			c = tryCmd("tc", "qdisc", "del", "dev", veth, "root")
		}
		_, err = r.Run(ctx, c)
	}
	return err
}

func segmentOf(m *MachineState) (Segment, error) {
	for _, s := range Segments() {
		if s.Bridge == m.Bridge {
			return s, nil
		}
	}
	return Segment{}, fmt.Errorf("machine %s: unknown bridge %q in the lab state", m.Name, m.Bridge)
}

// lossOnly reports the percentage of netem arguments that ask for loss only ("loss 10%").
func lossOnly(args []string) (int, bool) {
	if len(args) == 3 && args[1] == "random" {
		args = []string{args[0], args[2]}
	}
	if len(args) != 2 || args[0] != "loss" {
		return 0, false
	}
	v, err := strconv.ParseFloat(strings.TrimSuffix(args[1], "%"), 64)
	if err != nil || v <= 0 || v > 100 {
		return 0, false
	}
	return int(math.Round(v)), true
}

// lossTablePrefix names the nftables tables the lab makes (`lab down` removes them all).
const lossTablePrefix = "belay_lab_loss_"

func lossTable(machine string) string {
	return lossTablePrefix + strings.NewReplacer("-", "_", ".", "_").Replace(machine)
}

// lossCmds drop pct% of the frames to and from a machine's veth at random, in
// an nftables bridge table of the lab's own: the host's firewall is untouched.
// Bridged frames pass the forward hook; the host leg's pass output and input.
func lossCmds(table, veth string, pct int) []Cmd {
	cmds := []Cmd{cmd("nft", "add", "table", "bridge", table)}
	for _, h := range []struct{ chain, dirs string }{{"forward", "io"}, {"output", "o"}, {"input", "i"}} {
		cmds = append(cmds, cmd("nft", "add", "chain", "bridge", table, h.chain,
			"{ type filter hook "+h.chain+" priority 0 ; policy accept ; }"))
		for _, d := range h.dirs {
			match := "oifname"
			if d == 'i' {
				match = "iifname"
			}
			rule := []string{"nft", "add", "rule", "bridge", table, h.chain, match, veth}
			if pct < 100 { // numgen's range is 0-99: 100% is a plain drop
				rule = append(rule, "numgen", "random", "mod", "100", "<", strconv.Itoa(pct))
			}
			cmds = append(cmds, cmd(append(rule, "drop")...))
		}
	}
	return cmds
}

// lossTables lists the lab's nftables loss tables present on the host.
func lossTables(ctx context.Context, r Runner) []string {
	out, err := r.Run(ctx, Cmd{Argv: []string{"nft", "list", "tables", "bridge"}, IgnoreFail: true})
	if err != nil {
		return nil
	}
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 3 && f[0] == "table" && strings.HasPrefix(f[2], lossTablePrefix) {
			names = append(names, f[2])
		}
	}
	return names
}
