package components

import (
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/belay-sh/belay/topology"
)

// CellDatabaseArgs describes a dedicated cell's own PostgreSQL pair.
type CellDatabaseArgs struct {
	Cell  topology.Cell
	Nodes []topology.Host
	Host  hostArgs
}

// CellDatabase is a dedicated cell's own pair of data nodes
// (belay:index:CellDatabase, named "<app>-<cell>-db"), in the cell's
// pg_auto_failover formation on the stack's monitor. Its servers are made
// exactly like db-1/db-2 (data volume, protect/retainOnDelete, provider
// delete protection, the db firewall group, a spread group of their own):
// adding a dedicated cell registers this component and its children only.
type CellDatabase struct {
	pulumi.ResourceState

	Nodes []*Server
}

// NewCellDatabase creates the pair; the monitor must exist (its address is in
// the nodes' user data).
func NewCellDatabase(ctx *pulumi.Context, name string, a CellDatabaseArgs, opts ...pulumi.ResourceOption) (*CellDatabase, error) {
	d := &CellDatabase{}
	if err := ctx.RegisterComponentResource("belay:index:CellDatabase", name, d, opts...); err != nil {
		return nil, err
	}
	labels := Labels{"belay-role": "database", "belay-cell": a.Cell.Group}
	for k, v := range a.Host.Labels {
		labels[k] = v
	}
	spread, err := a.Host.Site.Cloud.SpreadGroup(ctx, name+"-spread", SpreadArgs{Labels: labels}, pulumi.Parent(d))
	if err != nil {
		return nil, err
	}
	na := a.Host
	na.Spread, na.Labels, na.Groups = spread, labels, []string{groupDB}
	ids := pulumi.StringArray{}
	for _, h := range a.Nodes {
		srv, err := createHost(ctx, h, na, d)
		if err != nil {
			return nil, err
		}
		d.Nodes = append(d.Nodes, srv)
		ids = append(ids, srv.ID.ToStringOutput())
	}
	if err := ctx.RegisterResourceOutputs(d, pulumi.Map{"nodeIds": ids}); err != nil {
		return nil, err
	}
	return d, nil
}
