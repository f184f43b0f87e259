package lab

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// DiskSize is each machine's writable disk (a sparse ext4 file holding the
// overlay's upper layer): filling it fills the machine, not the host.
const DiskSize = 3 << 30

// MachineSpec is one machine as the cloud would create it: a name, an address on
// a site network, and the NoCloud seed (the cloud-provided metadata plus user data).
type MachineSpec struct {
	Name    string
	Site    string
	Address netip.Addr
	Segment Segment
	// UserData is exactly what roles.Render produced for this host.
	UserData []byte
	// DataDisk: the host keeps its state on a volume in a cloud (its Spec has a
	// DataVolume), so the machine gets a second disk (see volume.go).
	DataDisk bool
}

// metaData is the NoCloud meta-data: a new instance-id whenever the user data
// changes, as a cloud gives a replaced server, so cloud-init runs per-instance again.
func (m MachineSpec) metaData() []byte {
	sum := sha256.Sum256(m.UserData)
	return []byte(fmt.Sprintf("instance-id: belay-lab-%s-%s\nlocal-hostname: %s\n", m.Name, hex.EncodeToString(sum[:])[:12], m.Name))
}

// networkConfig is the cloud-provided network (NoCloud network-config v2): the
// planned address on host0, and a route to the other site through the lab
// router. No default route: nothing in a lab machine may leave 10.213.0.0/24.
func (m MachineSpec) networkConfig() []byte {
	return []byte(fmt.Sprintf(`version: 2
ethernets:
  host0:
    addresses: [%s/%d]
    routes:
      - to: %s
        via: %s
`, m.Address, m.Segment.CIDR.Bits(), LabCIDR, m.Segment.Router))
}

// hash identifies everything a machine is created from; a change replaces the machine.
func (m MachineSpec) hash(imageKey, binaryHash string) string {
	h := sha256.New()
	for _, part := range [][]byte{m.UserData, m.metaData(), m.networkConfig(), []byte(imageKey), []byte(binaryHash)} {
		fmt.Fprintf(h, "%d\x00", len(part))
		h.Write(part)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

type machineDirs struct{ base, disk, img, root, console string }

func (p Paths) dirs(name string) machineDirs {
	b := p.machineDir(name)
	return machineDirs{base: b, disk: filepath.Join(b, "disk"), img: filepath.Join(b, "disk.img"), root: filepath.Join(b, "root"), console: filepath.Join(b, "console.log")}
}

// rootfsCmds mounts a machine's root: a size-limited ext4 disk (loop file) holding
// the upper and work dirs of an overlay whose lower dir is the shared image, so
// eight machines share one image and each can be filled without filling the host.
func rootfsCmds(d machineDirs, image string) []Cmd {
	return []Cmd{
		cmd("mkfs.ext4", "-q", "-F", "-m", "0", "-E", "lazy_itable_init=1,lazy_journal_init=1", d.img),
		cmd("mount", "-o", "loop", d.img, d.disk),
		cmd("mkdir", "-p", filepath.Join(d.disk, "upper"), filepath.Join(d.disk, "work")),
		cmd("mount", "-t", "overlay", "overlay", "-o",
			fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", image, filepath.Join(d.disk, "upper"), filepath.Join(d.disk, "work")), d.root),
	}
}

// unmountCmds releases a machine's root; the loop device goes with the disk (autoclear).
func unmountCmds(d machineDirs) []Cmd {
	return []Cmd{tryCmd("umount", d.root), tryCmd("umount", "-d", d.disk)}
}

// prepareMachine creates the machine's disk and root and writes what a cloud
// puts there: the NoCloud seed, and belay itself at /usr/local/bin/belay (the
// cloud image carries the belay binary that provisioned it).
func prepareMachine(ctx context.Context, r Runner, p Paths, image string, m MachineSpec, belayBinary string) error {
	d := p.dirs(m.Name)
	for _, dir := range []string{d.disk, d.root} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("machine %s: %w", m.Name, err)
		}
	}
	f, err := os.Create(d.img)
	if err != nil {
		return fmt.Errorf("machine %s: %w", m.Name, err)
	}
	err = f.Truncate(DiskSize)
	f.Close()
	if err != nil {
		return fmt.Errorf("machine %s: disk: %w", m.Name, err)
	}
	if err := runAll(ctx, r, rootfsCmds(d, image)); err != nil {
		return fmt.Errorf("machine %s: root: %w", m.Name, err)
	}
	seed := filepath.Join(d.root, "var/lib/cloud/seed/nocloud")
	if err := os.MkdirAll(seed, 0o700); err != nil {
		return fmt.Errorf("machine %s: %w", m.Name, err)
	}
	files := []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{"user-data", m.UserData, 0o600}, // carries private keys and passwords
		{"meta-data", m.metaData(), 0o644},
		{"network-config", m.networkConfig(), 0o644},
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(seed, f.name), f.data, f.mode); err != nil {
			return fmt.Errorf("machine %s: seed %s: %w", m.Name, f.name, err)
		}
	}
	if err := copyFile(belayBinary, filepath.Join(d.root, "usr/local/bin/belay"), 0o755); err != nil {
		return fmt.Errorf("machine %s: belay binary: %w", m.Name, err)
	}
	return nil
}

// nspawnArgs boots a machine. --register=no --keep-unit because this host has no
// systemd as PID 1 (see docs); the console goes to a log file for post-mortems.
func nspawnArgs(d machineDirs, m MachineSpec, disk *DataDisk) []string {
	args := []string{"systemd-nspawn", "--quiet", "--register=no", "--keep-unit", "--boot",
		"--directory=" + d.root, "--machine=" + m.Name, "--hostname=" + m.Name,
		"--network-bridge=" + m.Segment.Bridge, "--console=read-only",
		"--link-journal=no", "--resolv-conf=off", "--timezone=off"}
	return append(args, dataDiskArgs(disk)...)
}

// startMachine launches systemd-nspawn detached from this process (it outlives
// `belay lab up`) and returns its PID. disk is its second disk, attached (nil: none).
func startMachine(p Paths, m MachineSpec, disk *DataDisk) (int, error) {
	d := p.dirs(m.Name)
	log, err := os.OpenFile(d.console, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return 0, fmt.Errorf("machine %s: %w", m.Name, err)
	}
	defer log.Close()
	fmt.Fprintf(log, "---- belay lab: boot %s\n", time.Now().UTC().Format(time.RFC3339))
	cgroups, err := machineCgroups(m.Name)
	if err != nil {
		return 0, fmt.Errorf("machine %s: cgroup: %w", m.Name, err)
	}
	args := cgroupWrapper(cgroups, nspawnArgs(d, m, disk))
	c := exec.Command(args[0], args[1:]...)
	c.Stdin, c.Stdout, c.Stderr = nil, log, log
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := c.Start(); err != nil {
		return 0, fmt.Errorf("machine %s: systemd-nspawn: %w", m.Name, err)
	}
	pid := c.Process.Pid
	exited := make(chan struct{})
	// Reap it if it dies while we still run, so a failed boot is not a zombie.
	go func() { _ = c.Wait(); close(exited) }()
	// The wrapper shell becomes systemd-nspawn (same PID) once it joined the cgroups.
	for deadline := time.Now().Add(10 * time.Second); !running(pid, m.Name); {
		select {
		case <-exited:
			return 0, fmt.Errorf("machine %s: systemd-nspawn exited at once; console: %s", m.Name, tailFile(d.console, 10))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("machine %s: systemd-nspawn did not start", m.Name)
		}
	}
	return pid, nil
}

// running reports whether pid is the systemd-nspawn of machine name.
func running(pid int, name string) bool {
	if pid <= 0 {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	args := strings.Split(string(b), "\x00")
	if len(args) == 0 || filepath.Base(args[0]) != "systemd-nspawn" {
		return false
	}
	for _, a := range args {
		if a == "--machine="+name {
			return true
		}
	}
	return false
}

// initPID finds the machine's PID 1 (systemd) as seen from the host: a child of
// the systemd-nspawn process. It waits up to timeout for it to appear.
func initPID(ctx context.Context, nspawn int, name string, timeout time.Duration) (int, error) {
	deadline := time.Now().Add(timeout)
	for {
		if !running(nspawn, name) {
			return 0, fmt.Errorf("machine %s: systemd-nspawn (pid %d) exited", name, nspawn)
		}
		for _, c := range children(nspawn) {
			comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", c))
			if strings.TrimSpace(string(comm)) == "systemd" {
				return c, nil
			}
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("machine %s: no systemd inside after %s", name, timeout)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func children(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", n))
		if err != nil {
			continue
		}
		// Fields after the parenthesised comm: state ppid ...
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, n)
		}
	}
	return out
}

// insideCmd runs argv inside a machine through its namespaces: the lab's
// equivalent of a cloud's serial console (used before SSH works, and for faults).
func insideCmd(init int, argv ...string) Cmd {
	return Cmd{Argv: append([]string{"nsenter", "-t", strconv.Itoa(init), "-a", "--",
		"/usr/bin/env", "-i", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"}, argv...)}
}

var ifLinkRE = regexp.MustCompile(`host0@if(\d+)`)

// hostVeth returns the host-side interface of the machine's host0 (the veth in the bridge).
func hostVeth(ctx context.Context, r Runner, init int) (string, error) {
	out, err := r.Run(ctx, cmd("nsenter", "-t", strconv.Itoa(init), "-n", "ip", "-o", "link", "show", "host0"))
	if err != nil {
		return "", err
	}
	m := ifLinkRE.FindSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("host0 has no veth peer: %s", bytes.TrimSpace(out))
	}
	idx, _ := strconv.Atoi(string(m[1]))
	ifc, err := net.InterfaceByIndex(idx)
	if err != nil {
		return "", fmt.Errorf("host side of host0 (ifindex %d): %w", idx, err)
	}
	return ifc.Name, nil
}

// stopMachine powers a machine off (SIGTERM to systemd-nspawn asks the
// machine's systemd to shut down cleanly) and kills it if it lingers.
func stopMachine(ctx context.Context, pid int, name string, grace time.Duration) {
	if !running(pid, name) {
		return
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	for running(pid, name) && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(100 * time.Millisecond)
	}
	if running(pid, name) {
		killMachine(pid, name)
	}
}

// killMachine is a power cut: SIGKILL to the machine's PID 1 (the kernel then
// kills every process of its PID namespace) and to systemd-nspawn.
func killMachine(pid int, name string) {
	kids := children(pid)
	for _, c := range kids {
		_ = syscall.Kill(c, syscall.SIGKILL)
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	// Dead means dead: until PID 1 is reaped its namespace's sockets may still
	// answer, and a caller checking "the machine is gone" must not see that.
	for i := 0; i < 200 && (running(pid, name) || anyAlive(kids)); i++ {
		time.Sleep(25 * time.Millisecond)
	}
}

// anyAlive reports whether any of pids still exists (zombies count as gone).
func anyAlive(pids []int) bool {
	for _, p := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			continue
		}
		s := string(b)
		if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) && s[i+2] != 'Z' {
			return true
		}
	}
	return false
}

// destroyMachine removes a stopped machine's root, disk and directory.
func destroyMachine(ctx context.Context, r Runner, p Paths, name string) error {
	d := p.dirs(name)
	removeMachineCgroups(name)
	_ = runAll(ctx, r, unmountCmds(d))
	if mounted(d.root) || mounted(d.disk) {
		return fmt.Errorf("machine %s: %s is still mounted (something holds it open)", name, d.root)
	}
	if err := os.RemoveAll(d.base); err != nil {
		return fmt.Errorf("machine %s: %w", name, err)
	}
	return nil
}

// mounted reports whether path is a mount point (from /proc/self/mountinfo).
func mounted(path string) bool {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && unescapeMount(f[4]) == path {
			return true
		}
	}
	return false
}

func unescapeMount(s string) string {
	return strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`).Replace(s)
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Chmod(mode); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func fileHash(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}
