package components

import (
	"fmt"
	"regexp"
	"sort"

	"github.com/pulumi/pulumi-digitalocean/sdk/v4/go/digitalocean"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/belay-sh/belay/config"
)

// DigitalOceanImage is the droplet image belay boots (Debian 12, cloud-init 22.4).
const DigitalOceanImage = "debian-12-x64"

// digitalOcean is the Cloud and DNS adapter for DigitalOcean.
//
// Differences from Hetzner that shape the program:
//   - VPC addresses cannot be chosen, so keepalived peers are discovered at boot
//     (hostspec sets roles.PeerDiscovery) and the inventory reports the assigned ones.
//   - There is no anti-affinity group; SpreadGroup returns nil.
//   - Cloud firewalls filter VPC traffic too, so intra-site rules are written as
//     source tags; and they pass only TCP, UDP and ICMP, which is why app droplets
//     (whose keepalived speaks VRRP, IP protocol 112) carry no cloud firewall.
type digitalOcean struct {
	// root parents the shared tags, so their URNs do not depend on which
	// component happened to use a tag first.
	root pulumi.Resource
	tags map[string]*digitalocean.Tag
}

// NewDigitalOcean returns the DigitalOcean adapter; shared resources (tags) are
// children of root. It needs `digitalocean:token`.
func NewDigitalOcean(root pulumi.Resource) Cloud {
	return &digitalOcean{root: root, tags: map[string]*digitalocean.Tag{}}
}

// NewDigitalOceanDNS returns the DigitalOcean DNS adapter.
func NewDigitalOceanDNS() DNS { return &digitalOcean{tags: map[string]*digitalocean.Tag{}} }

func (d *digitalOcean) Provider() config.Provider  { return config.DigitalOcean }
func (d *digitalOcean) PinsPrivateAddresses() bool { return false }
func (d *digitalOcean) FirewallPassesVRRP() bool   { return false }
func (d *digitalOcean) Image() string              { return DigitalOceanImage }

func (d *digitalOcean) Network(ctx *pulumi.Context, name string, a NetworkArgs, opts ...pulumi.ResourceOption) (*Network, error) {
	vpc, err := digitalocean.NewVpc(ctx, name, &digitalocean.VpcArgs{
		Region:      pulumi.String(a.Region),
		IpRange:     pulumi.String(a.CIDR),
		Description: pulumi.String(describe(a.Labels)),
	}, opts...)
	if err != nil {
		return nil, err
	}
	return &Network{CIDR: a.CIDR, ID: vpc.ID(), Ready: []pulumi.Resource{vpc}}, nil
}

func (d *digitalOcean) SpreadGroup(*pulumi.Context, string, SpreadArgs, ...pulumi.ResourceOption) (*SpreadGroup, error) {
	// DigitalOcean has no placement/anti-affinity groups for droplets.
	return nil, nil
}

// tag returns the Tag resource of a group, creating it once. Explicit tags make
// every firewall that targets or admits a tag depend on the tag existing.
func (d *digitalOcean) tag(ctx *pulumi.Context, name string) (*digitalocean.Tag, error) {
	if t, ok := d.tags[name]; ok {
		return t, nil
	}
	t, err := digitalocean.NewTag(ctx, "tag-"+name, &digitalocean.TagArgs{Name: pulumi.String(name)}, pulumi.Parent(d.root))
	if err != nil {
		return nil, err
	}
	d.tags[name] = t
	return t, nil
}

func (d *digitalOcean) tagNames(ctx *pulumi.Context, groups []string) (pulumi.StringArray, error) {
	var out pulumi.StringArray
	for _, g := range groups {
		t, err := d.tag(ctx, g)
		if err != nil {
			return nil, err
		}
		out = append(out, t.Name)
	}
	return out, nil
}

func (d *digitalOcean) Server(ctx *pulumi.Context, name string, a ServerArgs, opts ...pulumi.ResourceOption) (*Server, error) {
	tags, err := d.tagNames(ctx, a.Groups)
	if err != nil {
		return nil, err
	}
	drop, err := digitalocean.NewDroplet(ctx, name, &digitalocean.DropletArgs{
		Name:     pulumi.String(a.Name),
		Region:   pulumi.String(a.Region),
		Size:     pulumi.String(a.Size),
		Image:    pulumi.String(a.Image),
		VpcUuid:  a.Network.ID.ToStringOutput().ToStringPtrOutput(),
		Tags:     tags,
		UserData: a.UserData.ToStringOutput().ToStringPtrOutput(),
		// The host key comes from the seed and root login is off, so no
		// provider SSH key (and no emailed root password matters).
		GracefulShutdown: pulumi.Bool(true),
		// No DigitalOcean agent: it would be an unmanaged second way in (the web
		// console) next to the pinned-key sshd, and it installs from the network.
		DropletAgent: pulumi.Bool(false),
	}, append(opts, pulumi.DependsOn(a.Network.Ready),
		// User data only bootstraps a droplet (ForceNew at the provider):
		// later changes reach it by `belay converge`, never by a replacement.
		pulumi.IgnoreChanges([]string{"userData"}))...)
	if err != nil {
		return nil, err
	}
	srv := &Server{
		Host:           a.Host,
		Resource:       drop,
		ID:             drop.ID(),
		PublicAddress:  drop.Ipv4Address,
		IngressAddress: drop.Ipv4Address,
		PrivateAddress: drop.Ipv4AddressPrivate,
	}
	if a.StaticIP != nil {
		// A reserved IP is inbound-only on DigitalOcean (outbound traffic keeps the
		// droplet's own address), and this one follows the droplet: a replacement
		// gets the same address, so no ignoreChanges here. Delete first: creating
		// the new assignment moves the address, deleting the old one afterwards
		// would unassign it again.
		if _, err := digitalocean.NewReservedIpAssignment(ctx, name+"-static", &digitalocean.ReservedIpAssignmentArgs{
			IpAddress: a.StaticIP.Address,
			DropletId: intID(drop.ID()),
		}, append(opts, pulumi.DeleteBeforeReplace(true))...); err != nil {
			return nil, err
		}
		srv.IngressAddress = a.StaticIP.Address
	}
	return srv, nil
}

func (d *digitalOcean) FloatingIP(ctx *pulumi.Context, name string, a FloatingIPArgs, opts ...pulumi.ResourceOption) (*FloatingIP, error) {
	// The reserved IP's own droplet field reflects wherever keepalived (or a
	// ReservedIpAssignment) put it: never an update to make.
	ip, err := digitalocean.NewReservedIp(ctx, name, &digitalocean.ReservedIpArgs{
		Region: pulumi.String(a.Region),
	}, append(opts, pulumi.IgnoreChanges([]string{"dropletId"}))...)
	if err != nil {
		return nil, err
	}
	return &FloatingIP{Address: ip.IpAddress, ID: ip.ID(), Resource: ip}, nil
}

func (d *digitalOcean) StaticIP(ctx *pulumi.Context, name string, a FloatingIPArgs, opts ...pulumi.ResourceOption) (*FloatingIP, error) {
	return d.FloatingIP(ctx, name, a, opts...)
}

// AssignFloatingIP registers nothing on DigitalOcean: the provider's
// ReservedIpAssignment drops out of the state on `pulumi refresh` once
// keepalived has moved the address, and the next `up` would move it back to
// the first server. The first server's keepalived claims the address through
// the API when it becomes MASTER at boot, so no Pulumi resource owns where it is.
func (d *digitalOcean) AssignFloatingIP(*pulumi.Context, string, *FloatingIP, *Server, ...pulumi.ResourceOption) (pulumi.CustomResource, error) {
	return nil, nil
}

// doUserDataLimit is DigitalOcean's user data limit (64 KiB).
const doUserDataLimit = 64 << 10

func (d *digitalOcean) UserDataLimit() int { return doUserDataLimit }

func (d *digitalOcean) Volume(ctx *pulumi.Context, name string, a VolumeArgs, opts ...pulumi.ResourceOption) (*Volume, error) {
	// No initial filesystem: the host formats the blank volume once (roles.DataVolume).
	v, err := digitalocean.NewVolume(ctx, name, &digitalocean.VolumeArgs{
		Name:        pulumi.String(a.Name),
		Region:      pulumi.String(a.Region),
		Size:        pulumi.Int(a.SizeGB),
		Description: pulumi.String(describe(a.Labels)),
	}, opts...)
	if err != nil {
		return nil, err
	}
	return &Volume{ID: v.ID(), Resource: v, Device: "/dev/disk/by-id/scsi-0DO_Volume_" + a.Name}, nil
}

func (d *digitalOcean) AttachVolume(ctx *pulumi.Context, name string, v *Volume, to *Server, opts ...pulumi.ResourceOption) (pulumi.CustomResource, error) {
	return digitalocean.NewVolumeAttachment(ctx, name, &digitalocean.VolumeAttachmentArgs{
		DropletId: intID(to.ID),
		VolumeId:  v.ID.ToStringOutput(),
		// A replaced droplet is created before the old one is deleted: the
		// volume must be detached from the old one before it attaches to the new.
	}, append(opts, pulumi.DeleteBeforeReplace(true))...)
}

func (d *digitalOcean) Firewall(ctx *pulumi.Context, name string, a FirewallArgs, opts ...pulumi.ResourceOption) (pulumi.Resource, error) {
	target, err := d.tag(ctx, a.Group)
	if err != nil {
		return nil, err
	}
	var in digitalocean.FirewallInboundRuleArray
	for _, r := range a.Rules {
		rule := digitalocean.FirewallInboundRuleArgs{Protocol: pulumi.String(r.Protocol)}
		if r.Port != "" {
			rule.PortRange = pulumi.String(r.Port)
		}
		if r.CIDRs != nil {
			rule.SourceAddresses = r.CIDRs
		}
		if len(r.Groups) > 0 {
			src, err := d.tagNames(ctx, r.Groups)
			if err != nil {
				return nil, err
			}
			rule.SourceTags = src
		}
		in = append(in, rule)
	}
	// A DO firewall with no outbound rule blocks all egress; belay hosts need it
	// (pgBackRest/restic to the other site, package mirrors, NTP, the provider API).
	anywhere := pulumi.StringArray{pulumi.String("0.0.0.0/0"), pulumi.String("::/0")}
	out := digitalocean.FirewallOutboundRuleArray{
		digitalocean.FirewallOutboundRuleArgs{Protocol: pulumi.String("tcp"), PortRange: pulumi.String("1-65535"), DestinationAddresses: anywhere},
		digitalocean.FirewallOutboundRuleArgs{Protocol: pulumi.String("udp"), PortRange: pulumi.String("1-65535"), DestinationAddresses: anywhere},
		digitalocean.FirewallOutboundRuleArgs{Protocol: pulumi.String("icmp"), DestinationAddresses: anywhere},
	}
	return digitalocean.NewFirewall(ctx, name, &digitalocean.FirewallArgs{
		Tags:          pulumi.StringArray{target.Name},
		InboundRules:  in,
		OutboundRules: out,
	}, opts...)
}

// ARecord creates the record in a domain DigitalOcean DNS hosts.
func (d *digitalOcean) ARecord(ctx *pulumi.Context, resourceName string, a RecordArgs, opts ...pulumi.ResourceOption) (pulumi.Resource, error) {
	return digitalocean.NewDnsRecord(ctx, resourceName, &digitalocean.DnsRecordArgs{
		Domain: pulumi.String(a.Zone),
		Name:   pulumi.String(a.Name),
		Type:   pulumi.String("A"),
		Value:  a.Value,
		Ttl:    pulumi.Int(a.TTL),
	}, append(opts, recordOptions("value")...)...)
}

// describe renders labels as a stable "k=v, ..." description (DO VPCs take no tags).
func describe(l Labels) string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	s := ""
	for i, k := range keys {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%s=%s", k, l[k])
	}
	return s
}

// doRegion is the shape of a DigitalOcean region slug (nyc3, fra1, ...).
var doRegion = regexp.MustCompile(`^[a-z]{3}[0-9]$`)

// CheckSite accepts any well-formed region slug; DigitalOcean itself rejects an unknown one.
func (d *digitalOcean) CheckSite(key string, s config.Site) error {
	if !doRegion.MatchString(s.Region) {
		return fmt.Errorf("%s.region: %q is not a DigitalOcean region slug (expected e.g. fra1, ams3, nyc3)", key, s.Region)
	}
	return nil
}
