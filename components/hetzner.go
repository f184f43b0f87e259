package components

import (
	"fmt"
	"sort"
	"strings"

	"github.com/pulumi/pulumi-hcloud/sdk/go/hcloud"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/belay-sh/belay/config"
	"github.com/belay-sh/belay/hostspec"
)

// HetznerImage is the server image belay boots (Debian 12, cloud-init 22.4).
const HetznerImage = "debian-12"

// hetznerZones maps a Hetzner location to the network zone its subnets live in.
var hetznerZones = map[string]string{
	"fsn1": "eu-central",
	"nbg1": "eu-central",
	"hel1": "eu-central",
	"ash":  "us-east",
	"hil":  "us-west",
	"sin":  "ap-southeast",
}

// hetzner is the Cloud adapter for Hetzner Cloud.
//
// Differences from DigitalOcean that shape the program:
//   - Private addresses are pinned (the planned ones), so keepalived peers are static.
//   - Spread placement groups keep an app's servers (and the DB nodes) on
//     different physical hosts (at most 10 servers per group).
//   - Cloud firewalls filter only the public interface; private-network traffic
//     is restricted by each host's own firewall (roles).
//   - Servers and primary IPs are placed by location: Hetzner removed the
//     datacenter field from its API.
//   - Stateful servers, floating/primary IPs and volumes carry Hetzner's own
//     delete (and rebuild) protection, so neither a mistaken `pulumi up` nor a
//     click in the console destroys them; turn it off deliberately to remove one.
type hetzner struct{}

// NewHetzner returns the Hetzner Cloud adapter. It needs `hcloud:token`.
func NewHetzner() Cloud { return hetzner{} }

func (hetzner) Provider() config.Provider  { return config.Hetzner }
func (hetzner) PinsPrivateAddresses() bool { return true }
func (hetzner) FirewallPassesVRRP() bool   { return true }
func (hetzner) Image() string              { return HetznerImage }

// CheckSite requires a location with a known network zone.
func (hetzner) CheckSite(key string, s config.Site) error {
	if _, ok := hetznerZones[s.Region]; !ok {
		known := make([]string, 0, len(hetznerZones))
		for k := range hetznerZones {
			known = append(known, k)
		}
		sort.Strings(known)
		return fmt.Errorf("%s.region: %q is not a Hetzner Cloud location (expected one of %s)", key, s.Region, strings.Join(known, ", "))
	}
	return nil
}

func (hetzner) Network(ctx *pulumi.Context, name string, a NetworkArgs, opts ...pulumi.ResourceOption) (*Network, error) {
	zone, ok := hetznerZones[a.Region]
	if !ok {
		return nil, fmt.Errorf("hetzner: no network zone for location %q", a.Region)
	}
	net, err := hcloud.NewNetwork(ctx, name, &hcloud.NetworkArgs{
		IpRange: pulumi.String(a.CIDR),
		Labels:  pulumi.ToStringMap(a.Labels),
	}, opts...)
	if err != nil {
		return nil, err
	}
	sub, err := hcloud.NewNetworkSubnet(ctx, name, &hcloud.NetworkSubnetArgs{
		NetworkId:   intID(net.ID()),
		Type:        pulumi.String("cloud"),
		NetworkZone: pulumi.String(zone),
		IpRange:     pulumi.String(a.CIDR),
	}, opts...)
	if err != nil {
		return nil, err
	}
	// Servers must wait for the subnet: attaching to a network without one fails.
	return &Network{CIDR: a.CIDR, ID: net.ID(), Ready: []pulumi.Resource{net, sub}}, nil
}

func (hetzner) SpreadGroup(ctx *pulumi.Context, name string, a SpreadArgs, opts ...pulumi.ResourceOption) (*SpreadGroup, error) {
	pg, err := hcloud.NewPlacementGroup(ctx, name, &hcloud.PlacementGroupArgs{
		Type:   pulumi.String("spread"),
		Labels: pulumi.ToStringMap(a.Labels),
	}, opts...)
	if err != nil {
		return nil, err
	}
	return &SpreadGroup{ID: pg.ID()}, nil
}

func (hetzner) Server(ctx *pulumi.Context, name string, a ServerArgs, opts ...pulumi.ResourceOption) (*Server, error) {
	if a.PrivateAddress == "" {
		return nil, fmt.Errorf("hetzner: server %s: a planned private address is required", a.Host)
	}
	labels := Labels{}
	for k, v := range a.Labels {
		labels[k] = v
	}
	for _, g := range a.Groups {
		labels[g] = "true"
	}
	args := &hcloud.ServerArgs{
		Name:       pulumi.String(a.Name),
		ServerType: pulumi.String(a.Size),
		Image:      pulumi.String(a.Image),
		Location:   pulumi.String(a.Region),
		Labels:     pulumi.ToStringMap(labels),
		UserData:   a.UserData.ToStringOutput().ToStringPtrOutput(),
		Networks: hcloud.ServerNetworkTypeArray{hcloud.ServerNetworkTypeArgs{
			NetworkId: intID(a.Network.ID),
			Ip:        pulumi.String(a.PrivateAddress),
		}},
		ShutdownBeforeDeletion: pulumi.Bool(true),
		DeleteProtection:       pulumi.Bool(a.Stateful),
		// Hetzner requires rebuild protection to equal delete protection.
		RebuildProtection: pulumi.Bool(a.Stateful),
		// Firewalls reach servers through label selectors (see Firewall); the
		// server must not treat them as drift to remove on the next update.
		IgnoreRemoteFirewallIds: pulumi.Bool(true),
	}
	if a.StaticIP != nil {
		// A primary IP is the server's own address, inbound and outbound; it
		// was created in the same location.
		args.PublicNets = hcloud.ServerPublicNetArray{hcloud.ServerPublicNetArgs{
			Ipv4Enabled: pulumi.Bool(true),
			Ipv4:        intID(a.StaticIP.ID).ToIntPtrOutput(),
			Ipv6Enabled: pulumi.Bool(true),
		}}
	}
	if a.Spread != nil {
		args.PlacementGroupId = intID(a.Spread.ID).ToIntPtrOutput()
	}
	// The pinned private address and the unique name both belong to the old
	// server until it is gone, so a replacement must delete first.
	// User data only bootstraps a server (ForceNew at the provider): later
	// changes reach it by `belay converge`, never by a replacement.
	srv, err := hcloud.NewServer(ctx, name, args, append(opts, pulumi.DependsOn(a.Network.Ready), pulumi.DeleteBeforeReplace(true),
		pulumi.IgnoreChanges([]string{"userData"}))...)
	if err != nil {
		return nil, err
	}
	return &Server{
		Host:           a.Host,
		Resource:       srv,
		ID:             srv.ID(),
		PublicAddress:  srv.Ipv4Address,
		IngressAddress: srv.Ipv4Address,
		PrivateAddress: pulumi.String(a.PrivateAddress).ToStringOutput(),
	}, nil
}

func (hetzner) FloatingIP(ctx *pulumi.Context, name string, a FloatingIPArgs, opts ...pulumi.ResourceOption) (*FloatingIP, error) {
	ip, err := hcloud.NewFloatingIp(ctx, name, &hcloud.FloatingIpArgs{
		Type:             pulumi.String("ipv4"),
		HomeLocation:     pulumi.String(a.Region),
		Labels:           pulumi.ToStringMap(a.Labels),
		DeleteProtection: pulumi.Bool(true),
	}, append(opts, pulumi.IgnoreChanges([]string{"serverId"}))...) // where keepalived put it is not drift
	if err != nil {
		return nil, err
	}
	return &FloatingIP{Address: ip.IpAddress, ID: ip.ID(), Resource: ip}, nil
}

func (hetzner) StaticIP(ctx *pulumi.Context, name string, a FloatingIPArgs, opts ...pulumi.ResourceOption) (*FloatingIP, error) {
	if _, ok := hetznerZones[a.Region]; !ok {
		return nil, fmt.Errorf("hetzner: unknown location %q", a.Region)
	}
	ip, err := hcloud.NewPrimaryIp(ctx, name, &hcloud.PrimaryIpArgs{
		Type:             pulumi.String("ipv4"),
		AssigneeType:     pulumi.String("server"),
		Location:         pulumi.String(a.Region),
		DeleteProtection: pulumi.Bool(true),
		// Kept when its server is deleted: a replacement takes the same address.
		AutoDelete: pulumi.Bool(false),
		Labels:     pulumi.ToStringMap(a.Labels),
	}, append(opts, pulumi.IgnoreChanges([]string{"assigneeId"}))...)
	if err != nil {
		return nil, err
	}
	return &FloatingIP{Address: ip.IpAddress, ID: ip.ID(), Resource: ip}, nil
}

func (hetzner) AssignFloatingIP(ctx *pulumi.Context, name string, ip *FloatingIP, to *Server, opts ...pulumi.ResourceOption) (pulumi.CustomResource, error) {
	return hcloud.NewFloatingIpAssignment(ctx, name, &hcloud.FloatingIpAssignmentArgs{
		FloatingIpId: intID(ip.ID),
		ServerId:     intID(to.ID),
	}, assignmentOptions("serverId", opts...)...)
}

// hetznerUserDataLimit is Hetzner Cloud's user data limit (32 KiB).
const hetznerUserDataLimit = 32 << 10

func (hetzner) UserDataLimit() int { return hetznerUserDataLimit }

// hetznerVolumeDevice matches the one Hetzner volume attached to a server: the
// device is named by the volume's numeric ID, which user data cannot know.
const hetznerVolumeDevice = hostspec.HetznerVolumeDevice

func (hetzner) Volume(ctx *pulumi.Context, name string, a VolumeArgs, opts ...pulumi.ResourceOption) (*Volume, error) {
	// No Format: the volume stays blank and the host formats it once (roles.DataVolume).
	v, err := hcloud.NewVolume(ctx, name, &hcloud.VolumeArgs{
		Name:             pulumi.String(a.Name),
		Size:             pulumi.Int(a.SizeGB),
		Location:         pulumi.String(a.Region),
		Labels:           pulumi.ToStringMap(a.Labels),
		DeleteProtection: pulumi.Bool(true),
	}, opts...)
	if err != nil {
		return nil, err
	}
	return &Volume{ID: v.ID(), Resource: v, Device: hetznerVolumeDevice}, nil
}

func (hetzner) AttachVolume(ctx *pulumi.Context, name string, v *Volume, to *Server, opts ...pulumi.ResourceOption) (pulumi.CustomResource, error) {
	return hcloud.NewVolumeAttachment(ctx, name, &hcloud.VolumeAttachmentArgs{
		VolumeId:  intID(v.ID),
		ServerId:  intID(to.ID),
		Automount: pulumi.Bool(false),
	}, append(opts, pulumi.DeleteBeforeReplace(true))...) // detach before the replacement attaches (docs/replace.md)
}

func (hetzner) Firewall(ctx *pulumi.Context, name string, a FirewallArgs, opts ...pulumi.ResourceOption) (pulumi.Resource, error) {
	var rules hcloud.FirewallRuleArray
	for _, r := range a.Rules {
		if r.CIDRs == nil {
			// Group-only rules describe site-network traffic, which Hetzner
			// firewalls do not filter; the host firewall restricts it.
			continue
		}
		rule := hcloud.FirewallRuleArgs{
			Direction: pulumi.String("in"),
			Protocol:  pulumi.String(r.Protocol),
			SourceIps: r.CIDRs,
		}
		if r.Port != "" {
			rule.Port = pulumi.String(r.Port)
		}
		if r.Description != "" {
			rule.Description = pulumi.String(r.Description)
		}
		rules = append(rules, rule)
	}
	// A label selector (rather than server IDs) applies the firewall to a
	// replacement server the moment it is created.
	return hcloud.NewFirewall(ctx, name, &hcloud.FirewallArgs{
		Labels: pulumi.ToStringMap(a.Labels),
		Rules:  rules,
		ApplyTos: hcloud.FirewallApplyToArray{hcloud.FirewallApplyToArgs{
			LabelSelector: pulumi.String(a.Group + "=true"),
		}},
	}, opts...)
}
