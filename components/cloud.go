// Package components is belay's Pulumi program: component resources for the
// site networks, each app's HA pair, the database, the standby site and DNS,
// built on one small provider-neutral Cloud interface with a DigitalOcean and a
// Hetzner adapter. The stack output `inventory` is the contract every later
// step reads (see docs/inventory.md).
package components

import (
	"fmt"
	"strconv"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/belay-sh/belay/config"
)

// Cloud is everything belay needs from a provider. The components speak only
// this interface, so provider differences live in one adapter file each.
type Cloud interface {
	// Provider names the adapter's provider.
	Provider() config.Provider
	// PinsPrivateAddresses reports whether Server honours ServerArgs.PrivateAddress.
	PinsPrivateAddresses() bool
	// FirewallPassesVRRP reports whether a cloud firewall on the app servers still
	// lets keepalived's VRRP (IP protocol 112) through on the site network.
	FirewallPassesVRRP() bool
	// Image is the server image belay boots (Debian 12).
	Image() string
	// CheckSite validates a site's region for this provider before anything is created.
	CheckSite(key string, s config.Site) error
	// Network creates a site's private network.
	Network(ctx *pulumi.Context, name string, a NetworkArgs, opts ...pulumi.ResourceOption) (*Network, error)
	// SpreadGroup creates an anti-affinity group; nil (and no error) where the provider has none.
	SpreadGroup(ctx *pulumi.Context, name string, a SpreadArgs, opts ...pulumi.ResourceOption) (*SpreadGroup, error)
	// Server creates one server on a network.
	Server(ctx *pulumi.Context, name string, a ServerArgs, opts ...pulumi.ResourceOption) (*Server, error)
	// FloatingIP reserves an address that keepalived moves between an app's servers.
	FloatingIP(ctx *pulumi.Context, name string, a FloatingIPArgs, opts ...pulumi.ResourceOption) (*FloatingIP, error)
	// StaticIP reserves a public address for one server that outlives it, so a
	// replaced server keeps the address other hosts' user data names.
	StaticIP(ctx *pulumi.Context, name string, a FloatingIPArgs, opts ...pulumi.ResourceOption) (*FloatingIP, error)
	// AssignFloatingIP assigns the address once to a server; later moves are
	// keepalived's, never Pulumi's (see assignmentOptions).
	AssignFloatingIP(ctx *pulumi.Context, name string, ip *FloatingIP, to *Server, opts ...pulumi.ResourceOption) (pulumi.CustomResource, error)
	// Volume creates a block volume for a stateful host's data (see volumes.go).
	Volume(ctx *pulumi.Context, name string, a VolumeArgs, opts ...pulumi.ResourceOption) (*Volume, error)
	// AttachVolume attaches a volume to its server.
	AttachVolume(ctx *pulumi.Context, name string, v *Volume, to *Server, opts ...pulumi.ResourceOption) (pulumi.CustomResource, error)
	// UserDataLimit is the most bytes of user data the provider accepts.
	UserDataLimit() int
	// Firewall creates a cloud firewall that applies to every server in a group.
	Firewall(ctx *pulumi.Context, name string, a FirewallArgs, opts ...pulumi.ResourceOption) (pulumi.Resource, error)
}

// DNS creates records in a zone the DNS provider hosts.
type DNS interface {
	// Provider names the DNS provider.
	Provider() config.Provider
	// ARecord creates one A record; name is relative to the zone ("@" for the apex).
	ARecord(ctx *pulumi.Context, resourceName string, a RecordArgs, opts ...pulumi.ResourceOption) (pulumi.Resource, error)
}

// NetworkArgs describes a site network.
type NetworkArgs struct {
	Region string
	CIDR   string
	Labels Labels
}

// Network is a created site network.
type Network struct {
	CIDR string
	// ID is the provider's ID (a VPC UUID on DigitalOcean, a numeric ID on Hetzner).
	ID pulumi.IDOutput
	// Ready lists the resources a server on this network must wait for (Hetzner's subnet).
	Ready []pulumi.Resource
}

// SpreadArgs describes an anti-affinity group.
type SpreadArgs struct {
	Labels Labels
}

// SpreadGroup is a created anti-affinity group.
type SpreadGroup struct {
	ID pulumi.IDOutput
}

// ServerArgs describes one server.
type ServerArgs struct {
	// Host is the belay host name (also the hostname cloud-init sets).
	Host string
	// Name is the provider-side server name (serverName: stack-scoped).
	Name   string
	Region string
	Size   string
	Image  string
	// Network is the site network the server joins.
	Network *Network
	// PrivateAddress pins the server's network address; ignored where the provider cannot pin.
	PrivateAddress string
	// UserData is the rendered cloud-config (a secret).
	UserData pulumi.StringInput
	// Groups are belay group names the server belongs to: DO tags, Hetzner labels.
	// Firewalls and VRRP peer discovery select servers by them.
	Groups []string
	Labels Labels
	Spread *SpreadGroup
	// StaticIP, if set, is the server's stable inbound address (from StaticIP).
	StaticIP *FloatingIP
	// Stateful turns on the provider's delete and rebuild protection where it
	// has one (Hetzner): the server holds (or mounts) data a mistake must not destroy.
	Stateful bool
}

// Server is a created server.
type Server struct {
	Host     string
	Resource pulumi.CustomResource
	// ID is the provider's numeric server ID.
	ID pulumi.IDOutput
	// PublicAddress is the server's own public IPv4 address, the source of its
	// outbound connections (what other hosts' firewalls must admit).
	PublicAddress pulumi.StringOutput
	// IngressAddress is where others reach it: its static IP if it has one, else PublicAddress.
	IngressAddress pulumi.StringOutput
	// PrivateAddress is the address on the site network.
	PrivateAddress pulumi.StringOutput
}

// FloatingIPArgs describes an app's virtual IP.
type FloatingIPArgs struct {
	Region string
	Labels Labels
}

// FloatingIP is a created floating/reserved IP.
type FloatingIP struct {
	Address pulumi.StringOutput
	// ID is the provider's ID (the address itself on DigitalOcean, numeric on Hetzner).
	ID       pulumi.IDOutput
	Resource pulumi.CustomResource
}

// FirewallArgs describes one firewall.
type FirewallArgs struct {
	// Group selects the servers the firewall applies to (DO tag, Hetzner label selector).
	Group  string
	Labels Labels
	Rules  []FirewallRule
}

// FirewallRule admits one protocol/port from sources.
type FirewallRule struct {
	Protocol string // tcp | udp | icmp
	Port     string // "22", "80", "8000-8010"; "" for icmp
	// CIDRs are source networks, including /32s of other servers' public addresses.
	CIDRs pulumi.StringArrayInput
	// Groups admit traffic from servers of these belay groups over the site network.
	// DigitalOcean firewalls filter VPC traffic, so there they become source tags;
	// Hetzner firewalls never filter private-network traffic, so there they are no-ops
	// and the host firewall (roles) is what restricts it.
	Groups      []string
	Description string
}

// RecordArgs describes one DNS A record.
type RecordArgs struct {
	Zone  string
	Name  string
	Value pulumi.StringInput
	TTL   int
}

// VolumeArgs describes one data volume.
type VolumeArgs struct {
	// Name is the provider-side volume name (stack-scoped, stable: DO replaces a renamed volume).
	Name   string
	Region string
	SizeGB int
	Labels Labels
}

// Volume is a created data volume.
type Volume struct {
	ID       pulumi.IDOutput
	Resource pulumi.CustomResource
	// Device is the block device path (or a glob matching exactly one device)
	// under which the attached volume appears on its server.
	Device string
}

// Labels are key/value pairs put on every resource that supports them.
type Labels map[string]string

// intID converts a provider's string resource ID to the int the other resources
// of the same SDK take, failing (instead of sending 0) when it is not numeric.
func intID(id pulumi.IDOutput) pulumi.IntOutput {
	return id.ApplyT(func(s pulumi.ID) (int, error) {
		n, err := strconv.Atoi(string(s))
		if err != nil {
			return 0, fmt.Errorf("expected a numeric provider ID, got %q: %w", s, err)
		}
		return n, nil
	}).(pulumi.IntOutput)
}
