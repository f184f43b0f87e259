package components

import (
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/belay-sh/belay/topology"
)

// StandbyArgs describes the standby site's servers.
type StandbyArgs struct {
	Backup    topology.Host
	StandbyDB topology.Host
	// CellDBs are the dedicated cells' standby databases, in config order:
	// made like StandbyDB (its group, a protected and retained data volume),
	// before the standby app servers whose DATABASE_URL names them.
	CellDBs []topology.Host
	// Apps are the standby app servers, one per app, in config order.
	Apps []topology.Host
	Host hostArgs
}

// Standby is the standby site at the other provider (belay:index:Standby): the
// backup repository, the PostgreSQL standby restored from it, and one app
// server per app (per cell), a standby database per dedicated cell, ready for
// a site switch.
type Standby struct {
	pulumi.ResourceState

	Backup    *Server
	StandbyDB *Server
	CellDBs   []*Server
	Apps      []*Server
}

// NewStandby creates the backup host first: the standby database restores from it.
func NewStandby(ctx *pulumi.Context, name string, a StandbyArgs, opts ...pulumi.ResourceOption) (*Standby, error) {
	s := &Standby{}
	if err := ctx.RegisterComponentResource("belay:index:Standby", name, s, opts...); err != nil {
		return nil, err
	}
	var err error
	ba := a.Host
	ba.Groups = []string{groupBackup}
	if s.Backup, err = createHost(ctx, a.Backup, ba, s); err != nil {
		return nil, err
	}
	da := a.Host
	da.Groups = []string{groupStandbyDB}
	if s.StandbyDB, err = createHost(ctx, a.StandbyDB, da, s); err != nil {
		return nil, err
	}
	for _, h := range a.CellDBs {
		srv, err := createHost(ctx, h, da, s)
		if err != nil {
			return nil, err
		}
		s.CellDBs = append(s.CellDBs, srv)
	}
	aa := a.Host
	aa.Groups = []string{groupStandbyApp}
	for _, h := range a.Apps {
		srv, err := createHost(ctx, h, aa, s)
		if err != nil {
			return nil, err
		}
		s.Apps = append(s.Apps, srv)
	}
	if err := ctx.RegisterResourceOutputs(s, pulumi.Map{
		"backupId":    s.Backup.ID,
		"standbyDbId": s.StandbyDB.ID,
	}); err != nil {
		return nil, err
	}
	return s, nil
}
