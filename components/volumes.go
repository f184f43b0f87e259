package components

import (
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/belay-sh/belay/hostspec"
	"github.com/belay-sh/belay/topology"
)

// dataMount is where a stateful host's volume goes (hostspec.DataMounts: the
// user data that mounts it and this program that creates it read one table).
type dataMount = hostspec.DataMount

// dataLabelKey marks a data volume at the provider.
const dataLabelKey = "belay-data"

// statefulHosts are the servers with provider delete/rebuild protection: the
// hosts with data volumes (dedicated cells' data nodes too), plus the monitor (losing it stops automatic failover).
func statefulHosts(t *topology.Topology) map[string]bool {
	out := map[string]bool{t.DBMonitor: true, t.StandbyDB: true, t.BackupRepo: true}
	for _, n := range append(append(append([]string{}, t.DBNodes...), t.CellDBNodes()...), t.CellStandbyDBs()...) {
		out[n] = true
	}
	return out
}

// volumeName is a volume's provider-side name (hostspec.VolumeName).
func volumeName(stack, host string) string { return hostspec.VolumeName(stack, host) }

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
