package components

import (
	"fmt"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/belay-sh/belay/topology"
)

// userDataFunc returns one host's rendered user data, a secret, once the
// addresses it depends on exist (see userdata.go).
type userDataFunc func(h topology.Host) (pulumi.StringOutput, error)

// hostArgs is what every server of a component shares.
type hostArgs struct {
	Stack  string
	Site   *Site
	Groups []string // unscoped belay groups
	// Tags are further provider tags/label keys, already scoped (the VRRP group).
	Tags     []string
	Spread   *SpreadGroup
	UserData userDataFunc
	Labels   Labels
	// Created receives each server as soon as it exists, so later hosts' user
	// data and the inventory can use its addresses.
	Created func(*Server)
	// Mounts are the data volumes by host (volumes.go); Stateful the hosts with
	// provider delete protection.
	Mounts   map[string]dataMount
	Stateful map[string]bool
	// After are resources every server waits for: the firewalls that must be
	// in place before a server boots and takes traffic.
	After []pulumi.Resource
}

// createHost creates the server of a planned host as a child of parent.
func createHost(ctx *pulumi.Context, h topology.Host, a hostArgs, parent pulumi.Resource) (*Server, error) {
	cloud := a.Site.Cloud
	ud, err := a.UserData(h)
	if err != nil {
		return nil, fmt.Errorf("%s: user data: %w", h.Name, err)
	}
	groups := make([]string, 0, len(a.Groups))
	for _, g := range a.Groups {
		groups = append(groups, groupName(a.Stack, g))
	}
	groups = append(groups, a.Tags...)
	private := ""
	if cloud.PinsPrivateAddresses() {
		private = h.PrivateAddress.String()
	}
	labels := Labels{}
	for k, v := range a.Labels {
		labels[k] = v
	}
	labels["belay-host"] = h.Name
	mount, hasVolume := a.Mounts[h.Name]
	var vol *Volume
	if hasVolume {
		if vol, err = createVolume(ctx, h, a, mount, parent); err != nil {
			return nil, fmt.Errorf("%s: data volume: %w", h.Name, err)
		}
	}
	srv, err := cloud.Server(ctx, h.Name, ServerArgs{
		Host:           h.Name,
		Name:           serverName(a.Stack, h.Name),
		Region:         a.Site.Region,
		Size:           h.Size,
		Image:          cloud.Image(),
		Network:        a.Site.Network,
		PrivateAddress: private,
		UserData:       ud,
		Groups:         groups,
		Labels:         labels,
		Spread:         a.Spread,
		StaticIP:       a.Site.StaticIPs[h.Name],
		Stateful:       a.Stateful[h.Name],
	}, pulumi.Parent(parent), pulumi.DependsOn(a.After))
	if err != nil {
		return nil, err
	}
	if vol != nil {
		if _, err := cloud.AttachVolume(ctx, h.Name+"-data", vol, srv, pulumi.Parent(parent)); err != nil {
			return nil, fmt.Errorf("%s: data volume attachment: %w", h.Name, err)
		}
	}
	if a.Created != nil {
		a.Created(srv)
	}
	return srv, nil
}
