package roles

import (
	"fmt"
	"path"
	"strings"
)

// DataVolume is a block device that holds a host's state (PostgreSQL data, the
// backup repositories) apart from the root disk, so replacing or rebuilding a
// server never takes the data with it. It is formatted only when blank and
// mounted at every boot, before any package or role service touches the paths.
type DataVolume struct {
	// Device is the block device, or a glob that must match exactly one device
	// when the provider names it by an ID only known after creation
	// (Hetzner: /dev/disk/by-id/scsi-0HC_Volume_*).
	Device string
	// MountPoint is where the filesystem is mounted.
	MountPoint string
	// Binds are paths bind-mounted from a directory on the volume, so several
	// state directories share one volume (the pgBackRest and restic repositories).
	Binds []string
	// Label is the ext4 label written when the device is formatted ("" = "belay-data").
	Label string
}

// dataVolumeScript runs from bootcmd (every boot, before write_files, packages
// and runcmd). Arguments: device-or-glob, mount point, label, then the bind
// targets. It never formats a device blkid finds any signature on: a
// filesystem, a partition table or a RAID member all stop it, so an attached
// volume with data is only ever mounted. fstab entries carry nofail so a
// missing volume leaves the host reachable over SSH for repair. A freshly
// formatted volume takes over the owner and mode of the directory it covers:
// where the packages are already installed (the lab's image) no postinst runs
// after the mount to give /var/lib/postgresql back to postgres.
const dataVolumeScript = `set -eu
pattern=$1 mnt=$2 label=$3
shift 3
dev=
i=0
while :; do
  matches=$(ls -d $pattern 2>/dev/null || true)
  n=$(printf '%s' "$matches" | grep -c . || true)
  if [ "$n" = 1 ]; then dev=$matches; break; fi
  if [ "$n" -gt 1 ]; then echo "belay: data volume: $pattern matches $n devices, expected one" >&2; exit 1; fi
  i=$((i+1))
  if [ "$i" -ge 300 ]; then echo "belay: data volume: no device matches $pattern after 300 s" >&2; exit 1; fi
  sleep 1
done
dev=$(readlink -f "$dev")
rc=0
blkid -p "$dev" >/dev/null 2>&1 || rc=$?
fresh=no
if [ "$rc" = 2 ]; then
  mkfs.ext4 -q -L "$label" "$dev"
  fresh=yes
elif [ "$rc" != 0 ]; then
  echo "belay: data volume: blkid -p $dev failed ($rc); not formatting" >&2; exit 1
fi
uuid=$(blkid -s UUID -o value "$dev")
mkdir -p "$mnt"
owner=$(stat -c %u:%g "$mnt") mode=$(stat -c %a "$mnt")
grep -q " $mnt ext4 " /etc/fstab || echo "UUID=$uuid $mnt ext4 defaults,nofail,discard 0 2" >> /etc/fstab
mountpoint -q "$mnt" || mount "$mnt"
if [ "$fresh" = yes ]; then chown "$owner" "$mnt"; chmod "$mode" "$mnt"; fi
for target in "$@"; do
  src="$mnt/$(printf '%s' "${target#/}" | tr / _)"
  mkdir -p "$src" "$target"
  grep -q " $target none bind" /etc/fstab || echo "$src $target none bind,nofail,x-systemd.requires-mounts-for=$mnt 0 0" >> /etc/fstab
  # A bind systemd made before the volume was mounted (a container ignores
  # fstab's device lines) points at the root disk's empty directory: redo it.
  if mountpoint -q "$target" && [ "$(stat -c %d:%i "$target")" != "$(stat -c %d:%i "$src")" ]; then
    umount "$target"
  fi
  mountpoint -q "$target" || mount "$target"
done
`

// validateDataVolume checks the optional volume; nil is valid (root disk only, the lab).
func validateDataVolume(v *DataVolume) error {
	if v == nil {
		return nil
	}
	if !strings.HasPrefix(v.Device, "/dev/") {
		return fmt.Errorf("roles: Spec.DataVolume.Device: %q, expected a path under /dev/", v.Device)
	}
	paths := append([]string{v.MountPoint}, v.Binds...)
	for i, p := range paths {
		field := "Spec.DataVolume.MountPoint"
		if i > 0 {
			field = fmt.Sprintf("Spec.DataVolume.Binds[%d]", i-1)
		}
		if !strings.HasPrefix(p, "/") || path.Clean(p) != p || p == "/" {
			return fmt.Errorf("roles: %s: %q, expected a clean absolute path other than /", field, p)
		}
		if strings.ContainsAny(p, " \t\n") {
			return fmt.Errorf("roles: %s: %q, expected no whitespace (it goes into /etc/fstab)", field, p)
		}
	}
	if len(v.Label) > 16 {
		return fmt.Errorf("roles: Spec.DataVolume.Label: %q is longer than ext4's 16 characters", v.Label)
	}
	return nil
}

// addDataVolume mounts the volume first thing at every boot (bootcmd runs
// before write_files, so role files under the mounted paths land on the volume).
func addDataVolume(s *Spec, c *CloudConfig) {
	v := s.DataVolume
	if v == nil {
		return
	}
	label := v.Label
	if label == "" {
		label = "belay-data"
	}
	cmd := []string{"sh", "-c", dataVolumeScript, "belay-data-volume", v.Device, v.MountPoint, label}
	c.Bootcmd = append(c.Bootcmd, append(cmd, v.Binds...))
}
