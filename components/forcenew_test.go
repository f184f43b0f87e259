package components

// forceNew lists, per resource type this program registers for stateful data,
// the input properties whose change makes the provider replace the resource
// (delete and create). Read from the Terraform providers the pinned Pulumi
// SDKs bridge, not guessed:
//
//   - pulumi-hcloud sdk v1.41.0 bridges terraform-provider-hcloud v1.58.x (the
//     first release whose primary IP has `location`, which the v1.41 SDK has,
//     while servers still take `datacenter`). Read at tag v1.58.0:
//     internal/server/resource.go (ForceNew: image, location, datacenter,
//     user_data, ssh_keys), internal/volume/resource.go (location),
//     internal/volume/resource_attachment.go (volume_id, server_id),
//     internal/primaryip/resource.go (type, location, datacenter),
//     internal/floatingip/resource.go (type, home_location),
//     internal/floatingip/resource_assignment.go (floating_ip_id).
//   - pulumi-digitalocean sdk/v4 v4.64.0 bridges terraform-provider-digitalocean
//     v2.82–v2.96 (droplets have `public_networking`, added in v2.82, and no
//     `gpu_partition_mode`, added in v2.97); the lists are identical across that
//     range. digitalocean/droplet/resource_droplet.go (ForceNew: image, region,
//     public_networking, ssh_keys, user_data, monitoring, droplet_agent,
//     vpc_uuid), volume/resource_volume.go (region, name, description,
//     snapshot_id, initial_filesystem_type, initial_filesystem_label),
//     volume/resource_volume_attachment.go (droplet_id, volume_id),
//     reservedip/resource_reserved_ip.go (region),
//     reservedip/resource_reserved_ip_assignment.go (ip_address, droplet_id).
//
// Keys are the Pulumi (camelCase) property names the mocks see.
var forceNew = map[string][]string{
	"hcloud:index/server:Server":                             {"image", "location", "datacenter", "userData", "sshKeys"},
	"hcloud:index/volume:Volume":                             {"location"},
	"hcloud:index/volumeAttachment:VolumeAttachment":         {"volumeId", "serverId"},
	"hcloud:index/primaryIp:PrimaryIp":                       {"type", "location", "datacenter"},
	"hcloud:index/floatingIp:FloatingIp":                     {"type", "homeLocation"},
	"hcloud:index/floatingIpAssignment:FloatingIpAssignment": {"floatingIpId"},

	"digitalocean:index/droplet:Droplet":                           {"image", "region", "publicNetworking", "sshKeys", "userData", "monitoring", "dropletAgent", "vpcUuid"},
	"digitalocean:index/volume:Volume":                             {"region", "name", "description", "snapshotId", "initialFilesystemType", "initialFilesystemLabel"},
	"digitalocean:index/volumeAttachment:VolumeAttachment":         {"dropletId", "volumeId"},
	"digitalocean:index/reservedIp:ReservedIp":                     {"region"},
	"digitalocean:index/reservedIpAssignment:ReservedIpAssignment": {"ipAddress", "dropletId"},
}
