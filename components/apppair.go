package components

import (
	"fmt"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/belay-sh/belay/config"
	"github.com/belay-sh/belay/topology"
)

// AppPairArgs describes one app's primary-site VRRP group.
type AppPairArgs struct {
	App config.App
	// Hosts are the app's planned servers, in VRRP priority order.
	Hosts []topology.Host
	Host  hostArgs
}

// AppPair is one app's HA group (belay:index:AppPair): its own servers on
// different physical hosts where the provider can promise it, and a floating
// IP that keepalived moves between them.
//
// It is built in two steps because every app server's user data names the
// floating IPs (Hetzner: keepalived holds the address; both: the claim
// command): NewAppPair reserves the address, Provision creates the servers.
type AppPair struct {
	pulumi.ResourceState

	App        string
	Servers    []*Server
	FloatingIP *FloatingIP
	Assignment pulumi.CustomResource
	// VIP is the address the app's DNS records point at.
	VIP pulumi.StringOutput

	args   AppPairArgs
	name   string
	spread *SpreadGroup
}

// NewAppPair registers the app's component, its spread group and its floating IP.
func NewAppPair(ctx *pulumi.Context, name string, a AppPairArgs, opts ...pulumi.ResourceOption) (*AppPair, error) {
	if len(a.Hosts) < 2 {
		return nil, fmt.Errorf("app %s: %d servers planned, an HA pair needs at least 2", a.App.Name, len(a.Hosts))
	}
	for _, h := range a.Hosts {
		if h.App != a.App.Name {
			return nil, fmt.Errorf("app %s: host %s belongs to app %q", a.App.Name, h.Name, h.App)
		}
	}
	p := &AppPair{App: a.App.Name, name: name}
	if err := ctx.RegisterComponentResource("belay:index:AppPair", name, p, opts...); err != nil {
		return nil, err
	}
	cloud := a.Host.Site.Cloud
	a.Host.Labels = withLabel(a.Host.Labels, "belay-app", a.App.Name)
	p.args = a
	var err error
	if p.spread, err = cloud.SpreadGroup(ctx, name+"-spread", SpreadArgs{Labels: a.Host.Labels}, pulumi.Parent(p)); err != nil {
		return nil, err
	}
	fip, err := cloud.FloatingIP(ctx, name+"-vip", FloatingIPArgs{Region: a.Host.Site.Region, Labels: a.Host.Labels}, pulumi.Parent(p))
	if err != nil {
		return nil, err
	}
	p.FloatingIP, p.VIP = fip, fip.Address
	return p, nil
}

// Provision creates the app's servers and the floating IP's first assignment,
// and completes the component.
func (p *AppPair) Provision(ctx *pulumi.Context) error {
	a := p.args
	ha := a.Host
	ha.Spread = p.spread
	for _, h := range a.Hosts {
		srv, err := createHost(ctx, h, ha, p)
		if err != nil {
			return err
		}
		p.Servers = append(p.Servers, srv)
	}
	// The first server (highest VRRP priority) starts with the address; keepalived
	// moves it from then on, and assignmentOptions keeps Pulumi from moving it back.
	asg, err := a.Host.Site.Cloud.AssignFloatingIP(ctx, p.name+"-vip", p.FloatingIP, p.Servers[0], pulumi.Parent(p))
	if err != nil {
		return err
	}
	p.Assignment = asg
	ids := pulumi.StringArray{}
	for _, s := range p.Servers {
		ids = append(ids, s.ID.ToStringOutput())
	}
	return ctx.RegisterResourceOutputs(p, pulumi.Map{
		"vip":       p.FloatingIP.Address,
		"serverIds": ids,
	})
}
