package components

import (
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/belay-sh/belay/inventory"
)

// SiteArgs describes one site's network.
type SiteArgs struct {
	Cloud  Cloud
	Site   inventory.SiteName
	Region string
	CIDR   string
	Labels Labels
	// StaticHosts are the hosts that get a static public address (see Cloud.StaticIP):
	// those other hosts' user data names across sites.
	StaticHosts []string
}

// Site is one provider region's private network (belay:index:Site).
type Site struct {
	pulumi.ResourceState

	Name    inventory.SiteName
	Cloud   Cloud
	Region  string
	Network *Network
	// StaticIPs are the static public addresses by host name.
	StaticIPs map[string]*FloatingIP
}

// NewSite creates the private network every server of a site joins.
func NewSite(ctx *pulumi.Context, name string, a SiteArgs, opts ...pulumi.ResourceOption) (*Site, error) {
	s := &Site{Name: a.Site, Cloud: a.Cloud, Region: a.Region}
	if err := ctx.RegisterComponentResource("belay:index:Site", name, s, opts...); err != nil {
		return nil, err
	}
	net, err := a.Cloud.Network(ctx, name+"-network", NetworkArgs{Region: a.Region, CIDR: a.CIDR, Labels: a.Labels}, pulumi.Parent(s))
	if err != nil {
		return nil, err
	}
	s.Network = net
	s.StaticIPs = map[string]*FloatingIP{}
	for _, h := range a.StaticHosts {
		ip, err := a.Cloud.StaticIP(ctx, h+"-ip", FloatingIPArgs{Region: a.Region, Labels: withLabel(a.Labels, "belay-host", h)}, pulumi.Parent(s))
		if err != nil {
			return nil, err
		}
		s.StaticIPs[h] = ip
	}
	if err := ctx.RegisterResourceOutputs(s, pulumi.Map{
		"networkId": net.ID,
		"cidr":      pulumi.String(a.CIDR),
	}); err != nil {
		return nil, err
	}
	return s, nil
}

// withLabel returns a copy of l with k=v added.
func withLabel(l Labels, k, v string) Labels {
	out := Labels{}
	for a, b := range l {
		out[a] = b
	}
	out[k] = v
	return out
}
