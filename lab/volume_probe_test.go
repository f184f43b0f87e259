package lab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/belay-sh/belay/hostspec"
	"github.com/belay-sh/belay/roles"
	"github.com/belay-sh/belay/topology"
)

// roleVolumeStep returns the bootcmd entry the real roles render for host's
// data volume in the default lab stack (["sh", "-c", script, ...]), and its spec.
func roleVolumeStep(t *testing.T, host string) ([]string, *roles.DataVolume) {
	t.Helper()
	const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGf2dDm0m3ka+P5OhGw3qJsnOhCTcDpVEd8PT8zQvQ0I belay-lab-admin"
	cfg, err := LoadStack(StackInput{}, strings.Repeat("v", 40), key)
	if err != nil {
		t.Fatal(err)
	}
	topo, err := topology.Plan(cfg)
	if err != nil {
		t.Fatal(err)
	}
	env, err := hostspec.DefaultEnv(cfg, topo, true)
	if err != nil {
		t.Fatal(err)
	}
	specs, err := hostspec.Build(cfg, topo, StackName, env)
	if err != nil {
		t.Fatal(err)
	}
	ud, err := roles.Render(specs[host])
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Bootcmd [][]string `yaml:"bootcmd"`
	}
	if err := yaml.Unmarshal(ud, &doc); err != nil {
		t.Fatalf("user data of %s: %v", host, err)
	}
	for _, c := range doc.Bootcmd {
		if len(c) > 4 && c[3] == "belay-data-volume" {
			return c, specs[host].DataVolume
		}
	}
	t.Fatalf("user data of %s has no data volume step in bootcmd", host)
	return nil, nil
}

// TestDataDiskInsideNspawn proves the lab's second-disk mechanics on this
// host with one throwaway machine (no network, not booted): a sparse file on a
// loop device, bound into systemd-nspawn at hostspec.LabDataDevice, where the
// roles' own data-volume step formats it once and mounts it through /etc/fstab
// (UUID=, resolved without udev). A second run on a fresh root — what `lab
// replace` does — mounts the same filesystem (same UUID, data kept) without
// formatting, and detaching leaves no loop device behind. Root only; skips
// without the lab image.
func TestDataDiskInsideNspawn(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (loop devices, overlayfs, systemd-nspawn)")
	}
	image := filepath.Join(DefaultPaths.Cache, "images", imageKey(buildScript, ImagePackages, DetectMirrors("/etc/apt")), "rootfs")
	if _, err := os.Stat(filepath.Join(filepath.Dir(image), "complete")); err != nil {
		t.Skipf("no lab image at %s (built by `belay lab image`)", image)
	}
	for _, tool := range []string{"systemd-nspawn", "losetup", "mount"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	// owner: the fresh filesystem takes over the covered directory's owner
	// (the image's postgresql packages made /var/lib/postgresql postgres's).
	for _, tc := range []struct{ host, owner string }{{"db-1", "postgres"}, {"backup", "root"}} {
		t.Run(tc.host, func(t *testing.T) { probeDataDisk(t, image, tc.host, tc.owner) })
	}
}

func probeDataDisk(t *testing.T, image, host, owner string) {
	ctx := context.Background()
	r := ExecRunner{}
	step, vol := roleVolumeStep(t, host)
	p := Paths{State: t.TempDir()}
	name := "volprobe"
	disk, err := attachDataDisk(ctx, r, p, name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := removeDataDisk(ctx, r, p, name); err != nil {
			t.Errorf("removeDataDisk: %v", err)
		}
		if left := append(loopLeftovers(p), dataDiskNames(p)...); len(left) > 0 {
			t.Errorf("left after removeDataDisk: %v", left)
		}
		if left := loopsBackedBy(p.volumeImage(name)); len(left) > 0 {
			t.Errorf("loop devices leaked: %v", left)
		}
		if _, err := os.Stat(p.volumeImage(name)); !os.IsNotExist(err) {
			t.Errorf("disk file still there: %v", err)
		}
	})
	// Attaching again reuses the attachment (a machine booted again after a kill).
	if again, err := attachDataDisk(ctx, r, p, name); err != nil || again.Loop != disk.Loop {
		t.Fatalf("second attach = %+v, %v; want %s again", again, err, disk.Loop)
	}
	// After the role's step: where the mount point's filesystem comes from, the
	// bind targets' too, the filesystem's UUID, and whether the marker survived.
	report := `"$@"
for m in "$BELAY_MNT" $BELAY_BINDS; do echo "mount $m $(findmnt -n -o SOURCE,FSTYPE --mountpoint "$m" | tr -s ' ')"; done
echo "uuid $(blkid -s UUID -o value /dev/belay-data)"
echo "owner $(stat -c %U "$BELAY_MNT")"
test -f "$BELAY_MNT/probe" && echo kept || echo fresh
echo data >"$BELAY_MNT/probe"
`
	var uuid string
	for round, want := range []string{"fresh", "kept"} {
		root := newProbeRoot(t, image)
		argv := []string{"systemd-nspawn", "--quiet", "--register=no", "--keep-unit", "--private-network",
			"--directory=" + root, "--machine=" + name,
			"--setenv=BELAY_MNT=" + vol.MountPoint, "--setenv=BELAY_BINDS=" + strings.Join(vol.Binds, " ")}
		argv = append(argv, dataDiskArgs(disk)...)
		argv = append(append(argv, "/bin/sh", "-ec", report, "probe"), step...)
		out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
		if err != nil {
			t.Fatalf("round %d: systemd-nspawn: %v\n%s", round, err, out)
		}
		mounts, u, marker, own := parseProbe(string(out))
		if own != owner {
			t.Errorf("round %d: %s is owned by %q, want %q", round, vol.MountPoint, own, owner)
		}
		if marker != want {
			t.Errorf("round %d: marker %q, want %q (output:\n%s)", round, marker, want, out)
		}
		for _, m := range append([]string{vol.MountPoint}, vol.Binds...) {
			if v := mounts[m]; !strings.HasPrefix(v, hostspec.LabDataDevice) || !strings.HasSuffix(v, " ext4") {
				t.Errorf("round %d: %s is on %q, want the data disk (%s, ext4)\n%s", round, m, v, hostspec.LabDataDevice, out)
			}
		}
		if u == "" {
			t.Fatalf("round %d: no filesystem UUID\n%s", round, out)
		}
		if round == 1 && u != uuid {
			t.Errorf("the disk was reformatted: UUID %s, was %s", u, uuid)
		}
		uuid = u
	}
	t.Logf("%s: %s formatted once (UUID %s) and mounted again from a fresh root", host, disk.Loop, uuid)
}

// parseProbe reads the probe's report: "mount PATH SOURCE FSTYPE" lines
// (PATH -> "SOURCE FSTYPE"), "uuid U", and the marker line (kept or fresh).
func parseProbe(out string) (mounts map[string]string, uuid, marker, owner string) {
	mounts = map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 2 && f[0] == "mount":
			mounts[f[1]] = strings.Join(f[2:], " ")
		case len(f) == 2 && f[0] == "uuid":
			uuid = f[1]
		case len(f) == 2 && f[0] == "owner":
			owner = f[1]
		case len(f) == 1 && (f[0] == "kept" || f[0] == "fresh"):
			marker = f[0]
		}
	}
	return mounts, uuid, marker, owner
}

// newProbeRoot mounts a fresh overlay of the lab image (a new, empty upper
// layer: a replaced machine's root) and unmounts it at cleanup.
func newProbeRoot(t *testing.T, image string) string {
	t.Helper()
	dir := t.TempDir()
	root, upper, work := filepath.Join(dir, "root"), filepath.Join(dir, "upper"), filepath.Join(dir, "work")
	for _, d := range []string{root, upper, work} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", image, upper, work)
	if out, err := exec.Command("mount", "-t", "overlay", "overlay", "-o", opts, root).CombinedOutput(); err != nil {
		t.Fatalf("overlay: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", root).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", root, err, out)
		}
	})
	return root
}
