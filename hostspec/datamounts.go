package hostspec

import (
	"github.com/belay-sh/belay/config"
	"github.com/belay-sh/belay/roles"
	"github.com/belay-sh/belay/topology"
)

// LabDataDevice is a lab machine's second disk as the machine sees it: the lab
// binds the machine's loop device to this path (no udev in a container, so no
// /dev/disk/by-id name; one fixed name matches exactly one device).
const LabDataDevice = "/dev/belay-data"

// labDataVolumes are the lab's volumes: the same mounts as a cloud's
// (DataMounts), on the second disk the lab gives each stateful machine.
func labDataVolumes(cfg *config.Config, t *topology.Topology) map[string]roles.DataVolume {
	out := map[string]roles.DataVolume{}
	for h, m := range DataMounts(cfg, t) {
		out[h] = roles.DataVolume{Device: LabDataDevice, MountPoint: m.MountPoint, Binds: m.Binds}
	}
	return out
}
