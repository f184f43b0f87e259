package components

import (
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/belay-sh/belay/config"
	"github.com/belay-sh/belay/hostspec"
	"github.com/belay-sh/belay/roles"
	"github.com/belay-sh/belay/topology"
)

// dataMount is where a stateful host's volume goes: mounted at MountPoint,
// with Binds bind-mounted from directories on it (roles.DataVolume).
type dataMount struct {
	MountPoint string
	Binds      []string
	SizeGB     int
}

// dataLabelKey labels a provider volume as belay's data volume.
const dataLabelKey = "belay-data"

// dataMounts are hostspec.DataMounts (shared with the lab) with each volume's size.
func dataMounts(cfg *config.Config, t *topology.Topology) map[string]dataMount {
	out := map[string]dataMount{}
	for h, m := range hostspec.DataMounts(t) {
		size := cfg.Database.VolumeGB
		if h == t.BackupRepo {
			size = cfg.Backups.VolumeGB
		}
		out[h] = dataMount{MountPoint: m.MountPoint, Binds: m.Binds, SizeGB: size}
	}
	return out
}

// statefulHosts are the servers with provider delete/rebuild protection: the
// hosts with data volumes, plus the monitor (losing it stops automatic failover).
func statefulHosts(t *topology.Topology) map[string]bool {
	out := map[string]bool{t.DBMonitor: true, t.StandbyDB: true, t.BackupRepo: true}
	for _, n := range t.DBNodes {
		out[n] = true
	}
	return out
}

// volumeName is a volume's provider-side name: stable (DigitalOcean replaces a
// renamed volume) and stack-scoped like server names.
func volumeName(stack, host string) string {
	return serverName(stack, host) + "-data"
}

// dataVolumeSpec is what the host's user data mounts, derived from the plan
// alone (the device is known before the volume exists), so user data never
// waits for, or changes with, the volume resource.
func dataVolumeSpec(p config.Provider, stack, host string, m dataMount) roles.DataVolume {
	dev := hetznerVolumeDevice
	if p == config.DigitalOcean {
		dev = "/dev/disk/by-id/scsi-0DO_Volume_" + volumeName(stack, host)
	}
	return roles.DataVolume{Device: dev, MountPoint: m.MountPoint, Binds: m.Binds}
}

// volumeOptions protect a data volume twice over: `protect` makes Pulumi
// refuse to delete or replace it, and retainOnDelete keeps it at the provider
// even when someone unprotects and removes it from the stack.
func volumeOptions(parent pulumi.Resource) []pulumi.ResourceOption {
	return []pulumi.ResourceOption{pulumi.Parent(parent), pulumi.Protect(true), pulumi.RetainOnDelete(true)}
}

// createVolume creates host h's data volume (before its server, so a failed
// volume never leaves a server writing to its root disk) and returns it.
func createVolume(ctx *pulumi.Context, h topology.Host, a hostArgs, m dataMount, parent pulumi.Resource) (*Volume, error) {
	labels := withLabel(a.Labels, "belay-host", h.Name)
	labels[dataLabelKey] = "true"
	return a.Site.Cloud.Volume(ctx, h.Name+"-data", VolumeArgs{
		Name: volumeName(a.Stack, h.Name), Region: a.Site.Region, SizeGB: m.SizeGB, Labels: labels,
	}, volumeOptions(parent)...)
}
