package hostspec

import (
	"fmt"

	"github.com/belay-sh/belay/roles"
	"github.com/belay-sh/belay/topology"
)

// A dedicated cell's own PostgreSQL pair (config cells[].database:
// dedicated): the same data node role as db-1/db-2, in the cell's own
// pg_auto_failover formation on the stack's monitor. Its one application
// database is the cell's (role and database config.CellDatabase, owned by
// that role, with the cell's password), reachable by the cell's app servers,
// the peer node and the monitor only.

// cellDB builds the Spec of a dedicated cell's data node.
func (b *builder) cellDB(h topology.Host, s *roles.Spec) error {
	tc := b.topo.DedicatedCellOf(h.Name)
	if tc == nil {
		return fmt.Errorf("%s: data node of cell %s/%s, which has no data nodes in the topology", h.Name, h.App, h.Cell)
	}
	monAddr, err := b.addr(b.topo.DBMonitor)
	if err != nil {
		return err
	}
	allow, err := b.cellDBAllowFrom(h, tc)
	if err != nil {
		return err
	}
	cellPW, err := b.password(cellPassword(tc.App, tc.Name))
	if err != nil {
		return err
	}
	pw := map[string]string{}
	for _, p := range []string{"postgres/replication", "postgres/monitor"} {
		if pw[p], err = b.password(p); err != nil {
			return err
		}
	}
	s.DB = &roles.DB{
		PostgresVersion:     b.cfg.Database.PostgresVersion,
		Name:                tc.Database,
		AppUser:             tc.Database,
		AppPassword:         cellPW,
		Port:                DBPort,
		MonitorAddress:      monAddr,
		AllowFrom:           allow,
		Synchronous:         b.cfg.Database.Synchronous,
		ReplicationPassword: pw["postgres/replication"],
		MonitorPassword:     pw["postgres/monitor"],
		ArchiveTimeout:      b.cfg.Backups.ArchiveTimeoutSeconds,
		Formation:           tc.Formation,
	}
	return b.dbBackupClient(h, s, CellStanza(tc))
}

// CellStanza is the pgBackRest stanza of a dedicated cell's pair: its
// formation's name (one stanza per PostgreSQL cluster).
func CellStanza(tc *topology.Cell) string { return tc.Formation }

// cellDBAllowFrom is who may reach a dedicated cell's data node: its peer, the
// monitor and the cell's own app servers; never another cell's or app's
// servers, nor the routers (the mapping lives in the stack's database).
func (b *builder) cellDBAllowFrom(h topology.Host, tc *topology.Cell) ([]string, error) {
	if !b.site(h).PinnedAddresses {
		return []string{b.cidr(h.Site)}, nil
	}
	names := append(append(append([]string{}, tc.DBNodes...), b.topo.DBMonitor), tc.Hosts...)
	return b.peerAddrs(h, names)
}

// dedicatedCells are the cells with their own data nodes, in config order
// (apps, then their cells): the monitor's formations and the repository's
// stanzas are listed in this order, so a new cell appends a line.
func (b *builder) dedicatedCells() []*topology.Cell {
	var out []*topology.Cell
	for _, app := range b.cfg.Apps {
		cells := b.topo.Cells[app.Name]
		for i := range cells {
			if len(cells[i].DBNodes) > 0 {
				out = append(out, &cells[i])
			}
		}
	}
	return out
}

// cellStanzas is the repository host's view of each dedicated cell's pair:
// its stanza, its data nodes (reached from the repository's site) with
// their pinned host keys, and their pgBackRest client keys.
func (b *builder) cellStanzas(repo topology.Host) ([]roles.BackupStanza, error) {
	var out []roles.BackupStanza
	for _, tc := range b.dedicatedCells() {
		st := roles.BackupStanza{Stanza: CellStanza(tc)}
		for _, n := range tc.DBNodes {
			a, err := b.reach(repo.Site, n)
			if err != nil {
				return nil, err
			}
			k, err := b.key(n)
			if err != nil {
				return nil, err
			}
			st.DBHosts = append(st.DBHosts, roles.KnownHost{Name: n, Address: a, HostKey: k.Public})
			ck, err := b.key(pgClientKeyName(n))
			if err != nil {
				return nil, err
			}
			st.ClientKeys = append(st.ClientKeys, ck.Public)
		}
		// Its standby database restores the stanza, and archives to it
		// once a site switch promoted it: its key is bound to the stanza
		// like the pair's (no write into the stack's or another cell's).
		ck, err := b.key(pgClientKeyName(tc.StandbyDB))
		if err != nil {
			return nil, err
		}
		st.ClientKeys = append(st.ClientKeys, ck.Public)
		out = append(out, st)
	}
	return out, nil
}

// cellStandbyDB builds the Spec of a dedicated cell's standby-site database:
// the stack's standby-db role (roles/standbydb.go) restoring the cell's
// stanza instead of the stack's, its database the cell's (role and database
// config.CellDatabase, the cell's password), admitting the cell's standby
// server only. A site switch promotes it for that server (failover).
func (b *builder) cellStandbyDB(h topology.Host, s *roles.Spec) error {
	tc := b.topo.DedicatedCellOf(h.Name)
	if tc == nil || tc.StandbyDB != h.Name {
		return fmt.Errorf("%s: standby database of cell %s/%s, which has no data nodes in the topology", h.Name, h.App, h.Cell)
	}
	repo, err := b.repoLink(h)
	if err != nil {
		return err
	}
	cellPW, err := b.password(cellPassword(tc.App, tc.Name))
	if err != nil {
		return err
	}
	allow := []string{b.cidr(h.Site)}
	if b.site(h).PinnedAddresses {
		if allow, err = b.peerAddrs(h, []string{tc.Standby}); err != nil {
			return err
		}
	}
	s.StandbyDB = &roles.StandbyDB{
		PostgresVersion: b.cfg.Database.PostgresVersion,
		Name:            tc.Database,
		AppUser:         tc.Database,
		Port:            DBPort,
		Stanza:          CellStanza(tc),
		RepoHost:        repo.addr,
		RepoHostKey:     repo.hostKey,
		ClientKey:       repo.client,
		AllowFrom:       allow,
		AppPassword:     cellPW,
	}
	return nil
}
