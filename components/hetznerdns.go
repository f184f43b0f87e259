package components

import (
	"github.com/pulumi/pulumi-hcloud/sdk/go/hcloud"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/belay-sh/belay/config"
)

// hetznerDNS is the DNS adapter for zones hosted by Hetzner (the DNS of the
// Hetzner Cloud API, pulumi-hcloud's Zone/ZoneRrset). The zone itself must
// exist in the project the `hcloud:token` belongs to; belay only adds records.
type hetznerDNS struct{}

// NewHetznerDNS returns the Hetzner DNS adapter. It needs `hcloud:token`.
func NewHetznerDNS() DNS { return hetznerDNS{} }

func (hetznerDNS) Provider() config.Provider { return config.Hetzner }

// ARecord creates the A record set of one name in the zone. Hetzner addresses
// the apex as "@", as recordName does.
func (hetznerDNS) ARecord(ctx *pulumi.Context, resourceName string, a RecordArgs, opts ...pulumi.ResourceOption) (pulumi.Resource, error) {
	return hcloud.NewZoneRrset(ctx, resourceName, &hcloud.ZoneRrsetArgs{
		Zone: pulumi.String(a.Zone),
		Name: pulumi.String(a.Name),
		Type: pulumi.String("A"),
		Ttl:  pulumi.Int(a.TTL),
		Records: hcloud.ZoneRrsetRecordArray{hcloud.ZoneRrsetRecordArgs{
			Value: a.Value.ToStringOutput(),
		}},
	}, append(opts, recordOptions("records")...)...)
}
