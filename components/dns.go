package components

import (
	"fmt"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/belay-sh/belay/config"
)

// AppDNSArgs describes an app's DNS records.
type AppDNSArgs struct {
	DNS     DNS
	Zone    string
	TTL     int
	Domains []string
	VIP     pulumi.StringOutput
}

// AppDNS is one app's A records at the DNS provider (belay:index:AppDNS), each
// pointing at the app's floating IP. The TTL bounds how long a site switch
// (which rewrites these records) takes to reach clients.
type AppDNS struct {
	pulumi.ResourceState

	Records []pulumi.Resource
}

// NewAppDNS creates one A record per domain.
func NewAppDNS(ctx *pulumi.Context, name string, a AppDNSArgs, opts ...pulumi.ResourceOption) (*AppDNS, error) {
	d := &AppDNS{}
	if err := ctx.RegisterComponentResource("belay:index:AppDNS", name, d, opts...); err != nil {
		return nil, err
	}
	for _, domain := range a.Domains {
		rel, err := recordName(a.Zone, domain)
		if err != nil {
			return nil, err
		}
		r, err := a.DNS.ARecord(ctx, name+"-"+strings.ReplaceAll(domain, ".", "-"), RecordArgs{
			Zone: a.Zone, Name: rel, Value: a.VIP, TTL: a.TTL,
		}, pulumi.Parent(d))
		if err != nil {
			return nil, err
		}
		d.Records = append(d.Records, r)
	}
	if err := ctx.RegisterResourceOutputs(d, pulumi.Map{"vip": a.VIP}); err != nil {
		return nil, err
	}
	return d, nil
}

// recordName is domain relative to zone ("@" for the apex); a domain outside
// the zone cannot be served by it.
func recordName(zone, domain string) (string, error) {
	z := strings.TrimSuffix(strings.ToLower(zone), ".")
	d := strings.TrimSuffix(strings.ToLower(domain), ".")
	if d == z {
		return "@", nil
	}
	if rel, ok := strings.CutSuffix(d, "."+z); ok && rel != "" {
		return rel, nil
	}
	return "", fmt.Errorf("%s: domain %q is not in the zone %q (%s.zone)", config.KeyApps, domain, zone, config.KeyDNS)
}

// recordOptions are the options of an A record: its value is set at creation
// and then belongs to `belay failover site`, which points it at the other
// site; a later `pulumi up` (or refresh) must not point it back.
func recordOptions(valueField string) []pulumi.ResourceOption {
	return []pulumi.ResourceOption{pulumi.IgnoreChanges([]string{valueField})}
}
