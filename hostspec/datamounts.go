package hostspec

import (
	"github.com/belay-sh/belay/roles"
	"github.com/belay-sh/belay/topology"
)

// DataMount is where a stateful host's data volume goes: mounted at
// MountPoint, with Binds bind-mounted from directories on it (roles.DataVolume).
type DataMount struct {
	MountPoint string
	Binds      []string
}

// Paths the stateful roles keep their data in. PostgreSQL's whole home goes on
// the volume (the cluster, pg_auto_failover's state, the postgres user's keys);
// the backup host keeps both repositories on one volume.
const (
	PGHome      = "/var/lib/postgresql"
	BackupMount = "/srv/belay-data"
	ResticRepos = "/srv/restic"
)

// LabDataDevice is a lab machine's second disk as the machine sees it: the lab
// binds the machine's loop device to this path (no udev in a container, so no
// /dev/disk/by-id name; one fixed name matches exactly one device).
const LabDataDevice = "/dev/belay-data"

// DataMounts are the hosts whose data lives on a volume, in a cloud and in the
// lab alike: the PostgreSQL data nodes, the standby database and the backup
// host. The monitor's state is rebuilt by re-registering the nodes, and app
// servers hold releases only.
func DataMounts(t *topology.Topology) map[string]DataMount {
	out := map[string]DataMount{}
	for _, n := range t.DBNodes {
		out[n] = DataMount{MountPoint: PGHome}
	}
	out[t.StandbyDB] = DataMount{MountPoint: PGHome}
	out[t.BackupRepo] = DataMount{MountPoint: BackupMount, Binds: []string{roles.PgBackRestRepo, ResticRepos}}
	return out
}

// labDataVolumes are the lab's volumes: the same mounts as a cloud's, on the
// second disk the lab gives each stateful machine.
func labDataVolumes(t *topology.Topology) map[string]roles.DataVolume {
	out := map[string]roles.DataVolume{}
	for h, m := range DataMounts(t) {
		out[h] = roles.DataVolume{Device: LabDataDevice, MountPoint: m.MountPoint, Binds: m.Binds}
	}
	return out
}
