package components

import (
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/belay-sh/belay/topology"
)

// DatabaseArgs describes the primary site's PostgreSQL servers.
type DatabaseArgs struct {
	// Monitor is the pg_auto_failover monitor; Nodes are the data nodes.
	Monitor topology.Host
	Nodes   []topology.Host
	Host    hostArgs
}

// Database is the primary site's PostgreSQL (belay:index:Database): two data
// nodes and the pg_auto_failover monitor, on the site network only. No
// firewall rule admits 5432 from a public network (see firewallPolicies).
type Database struct {
	pulumi.ResourceState

	Monitor *Server
	Nodes   []*Server
}

// NewDatabase creates the monitor first (on DigitalOcean its assigned address
// goes into the data nodes' user data), then the data nodes.
func NewDatabase(ctx *pulumi.Context, name string, a DatabaseArgs, opts ...pulumi.ResourceOption) (*Database, error) {
	d := &Database{}
	if err := ctx.RegisterComponentResource("belay:index:Database", name, d, opts...); err != nil {
		return nil, err
	}
	cloud := a.Host.Site.Cloud
	labels := Labels{"belay-role": "database"}
	for k, v := range a.Host.Labels {
		labels[k] = v
	}
	spread, err := cloud.SpreadGroup(ctx, name+"-spread", SpreadArgs{Labels: labels}, pulumi.Parent(d))
	if err != nil {
		return nil, err
	}
	ha := a.Host
	ha.Spread, ha.Labels = spread, labels

	ma := ha
	ma.Groups = []string{groupDBMonitor}
	if d.Monitor, err = createHost(ctx, a.Monitor, ma, d); err != nil {
		return nil, err
	}
	na := ha
	na.Groups = []string{groupDB}
	for _, h := range a.Nodes {
		srv, err := createHost(ctx, h, na, d)
		if err != nil {
			return nil, err
		}
		d.Nodes = append(d.Nodes, srv)
	}
	ids := pulumi.StringArray{}
	for _, s := range d.Nodes {
		ids = append(ids, s.ID.ToStringOutput())
	}
	if err := ctx.RegisterResourceOutputs(d, pulumi.Map{
		"monitorId": d.Monitor.ID,
		"nodeIds":   ids,
	}); err != nil {
		return nil, err
	}
	return d, nil
}
