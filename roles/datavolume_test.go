package roles

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestDataVolumeRendered: a DB node with a volume mounts it first thing in
// bootcmd; without one (the lab) nothing about volumes is rendered.
func TestDataVolumeRendered(t *testing.T) {
	s := dbSpec(t, "db-1", "10.213.0.10")
	c, _ := renderParsed(t, s)
	for _, cmd := range c.Bootcmd {
		if strings.Contains(strings.Join(cmd, " "), "belay-data-volume") {
			t.Fatalf("no DataVolume, yet bootcmd mounts one: %q", cmd)
		}
	}
	s.DataVolume = &DataVolume{Device: "/dev/disk/by-id/scsi-0HC_Volume_*", MountPoint: "/var/lib/postgresql"}
	c, _ = renderParsed(t, s)
	if len(c.Bootcmd) == 0 {
		t.Fatal("DataVolume set, bootcmd empty")
	}
	want := []string{"sh", "-c", dataVolumeScript, "belay-data-volume", "/dev/disk/by-id/scsi-0HC_Volume_*", "/var/lib/postgresql", "belay-data"}
	if !reflect.DeepEqual(c.Bootcmd[0], want) {
		t.Errorf("bootcmd[0] = %q, want the data-volume script first", c.Bootcmd[0][3:])
	}
}

func TestDataVolumeInvalid(t *testing.T) {
	for name, tc := range map[string]struct {
		v    DataVolume
		want string
	}{
		"device outside /dev": {DataVolume{Device: "sdb", MountPoint: "/srv/data"}, "Spec.DataVolume.Device"},
		"relative mount":      {DataVolume{Device: "/dev/sdb", MountPoint: "srv/data"}, "Spec.DataVolume.MountPoint"},
		"root mount":          {DataVolume{Device: "/dev/sdb", MountPoint: "/"}, "Spec.DataVolume.MountPoint"},
		"unclean bind":        {DataVolume{Device: "/dev/sdb", MountPoint: "/srv/data", Binds: []string{"/srv/../etc"}}, "Spec.DataVolume.Binds[0]"},
		"space in bind":       {DataVolume{Device: "/dev/sdb", MountPoint: "/srv/data", Binds: []string{"/srv/a b"}}, "Spec.DataVolume.Binds[0]"},
		"long label":          {DataVolume{Device: "/dev/sdb", MountPoint: "/srv/data", Label: "a-label-of-17-chr"}, "Spec.DataVolume.Label"},
	} {
		t.Run(name, func(t *testing.T) {
			s := dbSpec(t, "db-1", "10.213.0.10")
			v := tc.v
			s.DataVolume = &v
			_, err := Render(s)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Render: %v, want an error naming %s", err, tc.want)
			}
		})
	}
}

// TestDataVolumeScript runs the bootcmd script against a real disk image
// (a file) with real blkid and mkfs.ext4; only /etc/fstab and mount(8) are
// redirected. It formats a blank device once, never formats one that holds a
// filesystem, and writes each fstab line once however often it boots.
func TestDataVolumeScript(t *testing.T) {
	for _, tool := range []string{"blkid", "mkfs.ext4"} {
		if _, err := exec.LookPath(tool); err != nil {
			if _, err := os.Stat("/usr/sbin/" + tool); err != nil {
				t.Skipf("%s not installed", tool)
			}
		}
	}
	dir := t.TempDir()
	img := filepath.Join(dir, "disk-1.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 8<<20); err != nil {
		t.Fatal(err)
	}
	fstab := filepath.Join(dir, "fstab")
	if err := os.WriteFile(fstab, []byte("# root\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// mount/mountpoint shims: record, never touch the real mount table.
	bin := filepath.Join(dir, "bin")
	writeTemp(t, bin, "mount", "#!/bin/sh\necho \"$@\" >> "+dir+"/mounted\n", 0o755)
	writeTemp(t, bin, "mountpoint", "#!/bin/sh\nexit 1\n", 0o755)
	script := strings.ReplaceAll(dataVolumeScript, "/etc/fstab", fstab)
	mnt, bind := filepath.Join(dir, "data"), filepath.Join(dir, "var/lib/pgbackrest")
	boot := func() string {
		t.Helper()
		cmd := exec.Command("sh", "-c", script, "belay-data-volume", filepath.Join(dir, "disk-*.img"), mnt, "belay-data", bind)
		cmd.Env = append(os.Environ(), "PATH="+bin+":/usr/sbin:/sbin:"+os.Getenv("PATH"))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("data volume script: %v\n%s", err, out)
		}
		uuid, err := exec.Command("blkid", "-p", "-s", "UUID", "-o", "value", img).Output()
		if err != nil {
			uuid, err = exec.Command("/usr/sbin/blkid", "-p", "-s", "UUID", "-o", "value", img).Output()
		}
		if err != nil || len(uuid) == 0 {
			t.Fatalf("blkid after boot: %v (not formatted?)", err)
		}
		return strings.TrimSpace(string(uuid))
	}
	first := boot()
	second := boot()
	if first != second {
		t.Errorf("second boot reformatted the volume: UUID %s -> %s", first, second)
	}
	b, err := os.ReadFile(fstab)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), "UUID="+first+" "+mnt+" ext4"); n != 1 {
		t.Errorf("fstab has %d entries for the volume, want 1:\n%s", n, b)
	}
	if n := strings.Count(string(b), " "+bind+" none bind"); n != 1 {
		t.Errorf("fstab has %d bind entries for %s, want 1:\n%s", n, bind, b)
	}
	if _, err := os.Stat(filepath.Join(mnt, strings.ReplaceAll(strings.TrimPrefix(bind, "/"), "/", "_"))); err != nil {
		t.Errorf("bind source directory on the volume: %v", err)
	}

	// Two matching devices: refuse rather than guess.
	if err := os.WriteFile(filepath.Join(dir, "disk-2.img"), make([]byte, 1024), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-c", script, "belay-data-volume", filepath.Join(dir, "disk-*.img"), mnt, "belay-data")
	cmd.Env = append(os.Environ(), "PATH="+bin+":/usr/sbin:/sbin:"+os.Getenv("PATH"))
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "matches 2 devices") {
		t.Errorf("two matching devices: err=%v out=%q, want a refusal", err, out)
	}
}
