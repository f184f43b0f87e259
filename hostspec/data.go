package hostspec

import (
	"sort"

	"github.com/belay-sh/belay/roles"
	"github.com/belay-sh/belay/seedkeys"
	"github.com/belay-sh/belay/topology"
)

// The database and backup hosts' Specs (split from hostspec.go).

// allowFrom is who may reach PostgreSQL on a primary-site DB server.
func (b *builder) dbAllowFrom(h topology.Host) ([]string, error) {
	if !b.site(h).PinnedAddresses {
		// Addresses are assigned after the DB servers exist: allow the site
		// network (the firewall still keeps 5432 off the public interface).
		return []string{b.cidr(h.Site)}, nil
	}
	var names []string
	names = append(names, b.topo.DBNodes...)
	names = append(names, b.topo.DBMonitor)
	if h.Name == b.topo.DBMonitor {
		// Dedicated cells' pairs register and report here too.
		names = append(names, b.topo.CellDBNodes()...)
	} else {
		for _, app := range b.cfg.Apps {
			names = append(names, b.topo.AppHosts[app.Name]...)
		}
		names = append(names, b.cellAndRouterHosts(h.Site)...)
	}
	return b.peerAddrs(h, names)
}

// peerAddrs is the sorted addresses of names, h itself left out.
func (b *builder) peerAddrs(h topology.Host, names []string) ([]string, error) {
	var out []string
	for _, n := range names {
		if n == h.Name {
			continue
		}
		a, err := b.addr(n)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	sort.Strings(out)
	return out, nil
}

func (b *builder) db(h topology.Host, s *roles.Spec) error {
	monitor := h.Name == b.topo.DBMonitor
	monAddr, err := b.addr(b.topo.DBMonitor)
	if err != nil {
		return err
	}
	allow, err := b.dbAllowFrom(h)
	if err != nil {
		return err
	}
	pw := map[string]string{}
	for _, p := range []string{"postgres/app", "postgres/replication", "postgres/monitor"} {
		if pw[p], err = b.password(p); err != nil {
			return err
		}
	}
	s.DB = &roles.DB{
		Monitor:             monitor,
		PostgresVersion:     b.cfg.Database.PostgresVersion,
		Name:                b.cfg.Database.Name,
		Port:                DBPort,
		MonitorAddress:      monAddr,
		AllowFrom:           allow,
		Synchronous:         b.cfg.Database.Synchronous,
		AppPassword:         pw["postgres/app"],
		ReplicationPassword: pw["postgres/replication"],
		MonitorPassword:     pw["postgres/monitor"],
		ArchiveTimeout:      b.cfg.Backups.ArchiveTimeoutSeconds,
	}
	if monitor {
		for _, tc := range b.dedicatedCells() {
			s.DB.Formations = append(s.DB.Formations, tc.Formation)
		}
		return nil
	}
	if s.DB.Tenants, err = b.tenants(h); err != nil {
		return err
	}
	// belay db copy reads a dedicated cell's old database here (docs/cells.md).
	for _, tc := range b.dedicatedCells() {
		s.DB.MovedCells = append(s.DB.MovedCells, tc.Database)
	}
	return b.dbBackupClient(h, s, Stanza)
}

// repoLink is what a PostgreSQL host needs to reach the pgBackRest
// repository over SSH: its address from the host's site, its pinned host
// key, and the host's own client key.
type repoLink struct {
	addr, hostKey string
	client        seedkeys.Key
}

func (b *builder) repoLink(h topology.Host) (repoLink, error) {
	addr, err := b.reach(h.Site, b.topo.BackupRepo)
	if err != nil {
		return repoLink{}, err
	}
	hostKey, err := b.key(b.topo.BackupRepo)
	if err != nil {
		return repoLink{}, err
	}
	client, err := b.key(pgClientKeyName(h.Name))
	if err != nil {
		return repoLink{}, err
	}
	return repoLink{addr: addr, hostKey: hostKey.Public, client: client}, nil
}

// dbBackupClient sets a data node's side of pgBackRest: WAL archived to
// stanza on the repository host over SSH, which connects back for backups.
func (b *builder) dbBackupClient(h topology.Host, s *roles.Spec, stanza string) error {
	// The repository host connects back over SSH for backups.
	s.SSHFrom = append(s.SSHFrom, b.egress(other(h.Site))...)
	repo, err := b.repoLink(h)
	if err != nil {
		return err
	}
	repoKey, err := b.key(pgRepoKeyName)
	if err != nil {
		return err
	}
	s.DB.Backup = &roles.BackupClient{
		RepoHost:    repo.addr,
		RepoHostKey: repo.hostKey,
		Stanza:      stanza,
		ClientKey:   repo.client,
		RepoKey:     repoKey.Public,
	}
	return nil
}

func (b *builder) standbyDB(h topology.Host, s *roles.Spec) error {
	repo, err := b.repoLink(h)
	if err != nil {
		return err
	}
	appPW, err := b.password("postgres/app")
	if err != nil {
		return err
	}
	var allow []string
	if b.site(h).PinnedAddresses {
		names := b.cellAndRouterHosts(h.Site)
		for _, app := range b.cfg.Apps {
			if n, ok := b.topo.StandbyApp[app.Name]; ok {
				names = append(names, n)
			}
		}
		for _, n := range names {
			a, err := b.addr(n)
			if err != nil {
				return err
			}
			allow = append(allow, a)
		}
		sort.Strings(allow)
	} else {
		allow = []string{b.cidr(h.Site)}
	}
	s.StandbyDB = &roles.StandbyDB{
		PostgresVersion: b.cfg.Database.PostgresVersion,
		Name:            b.cfg.Database.Name,
		Port:            DBPort,
		Stanza:          Stanza,
		RepoHost:        repo.addr,
		RepoHostKey:     repo.hostKey,
		ClientKey:       repo.client,
		AllowFrom:       allow,
		AppPassword:     appPW,
	}
	if s.StandbyDB.Tenants, err = b.tenants(h); err != nil {
		return err
	}
	return nil
}

func (b *builder) backup(h topology.Host, s *roles.Spec) error {
	// WAL pushes and restic snapshots come from both sites.
	s.SSHFrom = append(s.SSHFrom, b.cidr(h.Site))
	s.SSHFrom = append(s.SSHFrom, b.egress(other(h.Site))...)
	repoKey, err := b.key(pgRepoKeyName)
	if err != nil {
		return err
	}
	resticPW, err := b.password("restic")
	if err != nil {
		return err
	}
	bk := &roles.Backup{
		Stanza:          Stanza,
		RepoKey:         repoKey,
		FullEvery:       b.cfg.Backups.FullEvery,
		RetentionDays:   b.cfg.Backups.RetentionDays,
		ResticPassword:  resticPW,
		PostgresVersion: b.cfg.Database.PostgresVersion,
	}
	for _, n := range b.topo.DBNodes {
		a, err := b.reach(h.Site, n)
		if err != nil {
			return err
		}
		k, err := b.key(n)
		if err != nil {
			return err
		}
		bk.DBHosts = append(bk.DBHosts, roles.KnownHost{Name: n, Address: a, HostKey: k.Public})
	}
	for _, n := range append(append([]string(nil), b.topo.DBNodes...), b.topo.StandbyDB) {
		k, err := b.key(pgClientKeyName(n))
		if err != nil {
			return err
		}
		bk.ClientKeys = append(bk.ClientKeys, k.Public)
	}
	// Every app server (pair, standby, cells) holds a certificate of this CA
	// for its app's user (app()); the backup host needs only the CA and the names.
	ca, err := b.key(resticCAKeyName)
	if err != nil {
		return err
	}
	bk.ResticCA = ca.Public
	for _, app := range b.cfg.Apps {
		bk.ResticApps = append(bk.ResticApps, app.Name)
	}
	if bk.Cells, err = b.cellStanzas(h); err != nil {
		return err
	}
	s.Backup = bk
	return nil
}
