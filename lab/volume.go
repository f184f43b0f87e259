package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/belay-sh/belay/hostspec"
)

// DataDiskSize is a stateful machine's second disk (a sparse file): the lab's
// equivalent of a cloud volume, holding what roles.DataVolume mounts.
const DataDiskSize = 2 << 30

// DataDisk is a machine's second disk in the lab state.
type DataDisk struct {
	// Image is the sparse file backing the disk; it outlives the machine's root.
	Image string `json:"image"`
	// Loop is the host loop device the file is attached to (bound into the
	// machine as hostspec.LabDataDevice); "" when detached.
	Loop string `json:"loop,omitempty"`
}

func (p Paths) volumesDir() string          { return filepath.Join(p.State, "volumes") }
func (p Paths) volumeImage(n string) string { return filepath.Join(p.volumesDir(), n+".img") }

// sysBlock is where the kernel lists block devices; tests point it at a fake tree.
var sysBlock = "/sys/block"

// loopsBackedBy lists the loop devices (/dev/loopN) whose backing file is
// file, from sysfs: the kernel's own record, so a detach never hits a loop
// number some other program reused.
func loopsBackedBy(file string) []string {
	var out []string
	for dev, backing := range loopBackings() {
		if backing == file {
			out = append(out, dev)
		}
	}
	sort.Strings(out)
	return out
}

// loopBackings maps every attached loop device to its backing file.
func loopBackings() map[string]string {
	out := map[string]string{}
	entries, _ := os.ReadDir(sysBlock)
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "loop") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(sysBlock, e.Name(), "loop", "backing_file"))
		if err != nil {
			continue // not attached
		}
		out["/dev/"+e.Name()] = strings.TrimSuffix(strings.TrimSpace(string(b)), " (deleted)")
	}
	return out
}

// attachDataDisk makes machine name's second disk available: the sparse file
// is created once (never reformatted or truncated here: the machine's role
// formats a blank disk only) and attached to a loop device, reusing an
// attachment that is still there (a machine booted again after a kill).
func attachDataDisk(ctx context.Context, r Runner, p Paths, name string) (*DataDisk, error) {
	img := p.volumeImage(name)
	if err := os.MkdirAll(p.volumesDir(), 0o700); err != nil {
		return nil, fmt.Errorf("machine %s: data disk: %w", name, err)
	}
	f, err := os.OpenFile(img, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("machine %s: data disk: %w", name, err)
	}
	fi, err := f.Stat()
	if err == nil && fi.Size() == 0 {
		err = f.Truncate(DataDiskSize)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("machine %s: data disk %s: %w", name, img, err)
	}
	if loops := loopsBackedBy(img); len(loops) == 1 {
		return &DataDisk{Image: img, Loop: loops[0]}, nil
	} else if len(loops) > 1 {
		return nil, fmt.Errorf("machine %s: data disk %s is attached %d times (%s), expected once; run `belay lab down`", name, img, len(loops), strings.Join(loops, ", "))
	}
	out, err := r.Run(ctx, cmd("losetup", "--find", "--show", img))
	if err != nil {
		return nil, fmt.Errorf("machine %s: data disk: %w", name, err)
	}
	loop := strings.TrimSpace(string(out))
	if !strings.HasPrefix(loop, "/dev/loop") {
		return nil, fmt.Errorf("machine %s: losetup printed %q, expected a /dev/loopN path", name, loop)
	}
	return &DataDisk{Image: img, Loop: loop}, nil
}

// detachDataDisk releases every loop device backed by machine name's disk
// file (the machine must be stopped) and checks that none is left.
func detachDataDisk(ctx context.Context, r Runner, p Paths, name string) error {
	img := p.volumeImage(name)
	var errs []error
	for _, loop := range loopsBackedBy(img) {
		if _, err := r.Run(ctx, cmd("losetup", "--detach", loop)); err != nil {
			errs = append(errs, err)
		}
	}
	if left := loopsBackedBy(img); len(left) > 0 {
		errs = append(errs, fmt.Errorf("machine %s: data disk %s still attached to %s", name, img, strings.Join(left, ", ")))
	}
	return errors.Join(errs...)
}

// removeDataDisk detaches machine name's disk and deletes its file: the data is gone.
func removeDataDisk(ctx context.Context, r Runner, p Paths, name string) error {
	if err := detachDataDisk(ctx, r, p, name); err != nil {
		return err
	}
	if err := os.Remove(p.volumeImage(name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("machine %s: data disk: %w", name, err)
	}
	return nil
}

// dataDiskNames lists the machines with a disk file in the volumes dir
// (including ones the state lost track of).
func dataDiskNames(p Paths) []string {
	var out []string
	entries, _ := os.ReadDir(p.volumesDir())
	for _, e := range entries {
		if n, ok := strings.CutSuffix(e.Name(), ".img"); ok && !e.IsDir() {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// loopLeftovers lists loop devices backed by any file under the lab's state
// dir (data disks, and root disks whose autoclear did not happen).
func loopLeftovers(p Paths) []string {
	var out []string
	prefix := strings.TrimSuffix(p.State, "/") + "/"
	for dev, backing := range loopBackings() {
		if strings.HasPrefix(backing, prefix) {
			out = append(out, fmt.Sprintf("loop device %s (%s)", dev, backing))
		}
	}
	sort.Strings(out)
	return out
}

// dataDiskArgs are the systemd-nspawn arguments giving a machine its second
// disk: the loop device node bound at the fixed path its user data mounts.
// Nothing else restricts it: with --register=no there is no device policy from
// a host systemd, and the machine runs in the host's root devices cgroup.
func dataDiskArgs(d *DataDisk) []string {
	if d == nil || d.Loop == "" {
		return nil
	}
	return []string{"--bind=" + d.Loop + ":" + hostspec.LabDataDevice}
}
