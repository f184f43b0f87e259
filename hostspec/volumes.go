package hostspec

import (
	"regexp"
	"strings"

	"github.com/belay-sh/belay/config"
	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/roles"
	"github.com/belay-sh/belay/topology"
)

// DataMount is where a stateful host's volume goes: mounted at MountPoint,
// with Binds bind-mounted from directories on it (roles.DataVolume).
type DataMount struct {
	MountPoint string
	Binds      []string
	SizeGB     int
}

// Paths the stateful roles keep their data in. PostgreSQL's whole home goes on
// the volume (the cluster, pg_auto_failover's state, the postgres user's keys);
// the backup host keeps both repositories on one volume.
const (
	PgHome      = "/var/lib/postgresql"
	BackupMount = "/srv/belay-data"
	ResticRepos = "/srv/restic"
)

// HetznerVolumeDevice matches the one Hetzner volume attached to a server: the
// volume's ID (part of its by-id name) only exists after creation, and user
// data must not wait for it.
const HetznerVolumeDevice = "/dev/disk/by-id/scsi-0HC_Volume_*"

// DataMounts are the hosts whose data lives on a volume: the PostgreSQL data
// nodes and standby databases (dedicated cells' too) and the backup host. The monitor's state is
// rebuilt by re-registering the nodes, and app servers hold releases only.
func DataMounts(cfg *config.Config, t *topology.Topology) map[string]DataMount {
	out := map[string]DataMount{}
	// Dedicated cells' pairs keep their data like the stack's pair.
	for _, n := range append(append([]string{}, t.DBNodes...), t.CellDBNodes()...) {
		out[n] = DataMount{MountPoint: PgHome, SizeGB: cfg.Database.VolumeGB}
	}
	for _, n := range append([]string{t.StandbyDB}, t.CellStandbyDBs()...) {
		out[n] = DataMount{MountPoint: PgHome, SizeGB: cfg.Database.VolumeGB}
	}
	out[t.BackupRepo] = DataMount{MountPoint: BackupMount, Binds: []string{roles.PgBackRestRepo, ResticRepos}, SizeGB: cfg.Backups.VolumeGB}
	return out
}

var nonLabel = regexp.MustCompile(`[^a-z0-9-]+`)

// Slug lowercases s and replaces anything but [a-z0-9-] with "-", so a stack
// name is usable in tags, label keys and host names.
func Slug(s string) string {
	return strings.Trim(nonLabel.ReplaceAllString(strings.ToLower(s), "-"), "-")
}

// ServerName is a server's name at the provider: the host name scoped by
// stack, so two stacks can share a Hetzner project (where names are unique).
func ServerName(stack, host string) string {
	return Slug(stack) + "-" + host
}

// VolumeName is a volume's provider-side name: stable (DigitalOcean replaces a
// renamed volume) and stack-scoped like server names.
func VolumeName(stack, host string) string {
	return ServerName(stack, host) + "-data"
}

// DataVolumeSpec is what the host's user data mounts, derived from the plan
// alone (the device is known before the volume exists), so user data never
// waits for, or changes with, the volume resource.
func DataVolumeSpec(p config.Provider, stack, host string, m DataMount) roles.DataVolume {
	dev := HetznerVolumeDevice
	if p == config.DigitalOcean {
		dev = "/dev/disk/by-id/scsi-0DO_Volume_" + VolumeName(stack, host)
	}
	return roles.DataVolume{Device: dev, MountPoint: m.MountPoint, Binds: m.Binds}
}

// DataVolumes are the mounts of every stateful host for its site's provider.
func DataVolumes(cfg *config.Config, t *topology.Topology, stack string) map[string]roles.DataVolume {
	out := map[string]roles.DataVolume{}
	for h, m := range DataMounts(cfg, t) {
		prov := cfg.Sites.Primary.Provider
		if t.Host(h).Site == inventory.Standby {
			prov = cfg.Sites.Standby.Provider
		}
		out[h] = DataVolumeSpec(prov, stack, h, m)
	}
	return out
}
