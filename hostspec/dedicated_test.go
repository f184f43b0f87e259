package hostspec

import (
	"sort"
	"strings"
	"testing"

	"github.com/belay-sh/belay/config"
	"github.com/belay-sh/belay/roles"
)

// TestBuildDedicatedCell: cell eu-2 with its own pair. Its data nodes are db
// nodes in formation <app>_eu_2 with the cell's database as their one
// application database, reachable by the peer, the monitor and eu-2's servers
// only; the shared pair no longer holds or admits eu-2; the monitor admits
// the pair; eu-2's DATABASE_URL names the pair; both nodes keep their data
// on a volume like db-1/db-2.
func TestBuildDedicatedCell(t *testing.T) {
	cfg := cellsConfig(t)
	eu := &cfg.Apps[0].Cells[1]
	eu.Replicas, eu.Database, eu.DatabaseSize = 2, config.DatabaseDedicated, cfg.Database.Size
	specs, topo := build(t, cfg, true, nil)
	for name, s := range specs {
		if _, err := roles.Render(s); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	app := cfg.Apps[0].Name
	c1, eu2 := topo.Cell(app, "c1"), topo.Cell(app, "eu-2")
	addr := func(n string) string { return topo.Host(n).PrivateAddress.String() }
	if len(eu2.DBNodes) != 2 {
		t.Fatalf("eu-2 DBNodes = %v", eu2.DBNodes)
	}
	for i, n := range eu2.DBNodes {
		d := specs[n].DB
		if d == nil || d.Monitor || d.Formation != eu2.Formation || d.Name != eu2.Database || d.AppUser != eu2.Database || len(d.Tenants) != 0 {
			t.Fatalf("%s DB = %+v", n, d)
		}
		if d.MonitorAddress != addr(topo.DBMonitor) || d.Backup == nil || d.Backup.Stanza != CellStanza(eu2) || d.Backup.Stanza == Stanza {
			t.Errorf("%s: monitor %s backup %+v", n, d.MonitorAddress, d.Backup)
		}
		want := []string{addr(eu2.DBNodes[1-i]), addr(topo.DBMonitor)}
		for _, h := range eu2.Hosts {
			want = append(want, addr(h))
		}
		sort.Strings(want)
		if strings.Join(d.AllowFrom, ",") != strings.Join(want, ",") {
			t.Errorf("%s AllowFrom = %v, want exactly %v (peer, monitor, the cell's servers)", n, d.AllowFrom, want)
		}
		if d.AppPassword != specs[eu2.DBNodes[0]].DB.AppPassword || d.AppPassword == specs[topo.DBNodes[0]].DB.AppPassword {
			t.Errorf("%s: the cell's password, the same on both nodes, not the stack's app password", n)
		}
		if specs[n].DataVolume == nil || specs[n].DataVolume.MountPoint != PgHome {
			t.Errorf("%s: data volume %+v", n, specs[n].DataVolume)
		}
	}
	shared := specs[topo.DBNodes[0]].DB
	if len(shared.Tenants) != 1 || shared.Tenants[0].Database != c1.Database {
		t.Errorf("shared pair tenants = %+v, want c1's only", shared.Tenants)
	}
	// belay db copy reads the cell's old database there (docs/cells.md).
	if len(shared.MovedCells) != 1 || shared.MovedCells[0] != eu2.Database || len(specs[eu2.DBNodes[0]].DB.MovedCells) != 0 {
		t.Errorf("MovedCells: stack's node %v, pair's node %v; want [%s] on the stack's only", shared.MovedCells, specs[eu2.DBNodes[0]].DB.MovedCells, eu2.Database)
	}
	for _, h := range eu2.Hosts {
		if contains(shared.AllowFrom, addr(h)) {
			t.Errorf("shared pair admits %s, a server of a dedicated cell", h)
		}
	}
	mon := specs[topo.DBMonitor].DB
	for _, n := range eu2.DBNodes {
		if !contains(mon.AllowFrom, addr(n)) {
			t.Errorf("monitor AllowFrom %v lacks %s", mon.AllowFrom, n)
		}
	}
	pair := addr(eu2.DBNodes[0]) + ":5432," + addr(eu2.DBNodes[1]) + ":5432/" + eu2.Database + "?target_session_attrs=read-write"
	for _, h := range eu2.Hosts {
		if u := specs[h].App.DatabaseURL; !strings.Contains(u, "://"+eu2.Database+":") || !strings.Contains(u, "@"+pair) {
			t.Errorf("%s DATABASE_URL = %s, want its pair %s", h, u, pair)
		}
	}
	if u := specs[c1.Hosts[0]].App.DatabaseURL; !strings.Contains(u, "@"+addr(topo.DBNodes[0])+":5432,"+addr(topo.DBNodes[1])+":5432/") {
		t.Errorf("c1 DATABASE_URL = %s, want the stack's pair", u)
	}
	mounts := DataMounts(cfg, topo)
	for _, n := range eu2.DBNodes {
		if m, ok := mounts[n]; !ok || m.MountPoint != PgHome || m.SizeGB != cfg.Database.VolumeGB {
			t.Errorf("DataMounts[%s] = %+v", n, m)
		}
	}
	if s := StaticHosts(topo); strings.Join(s[:3], ",") != "db-1,db-2,backup" || len(s) != 5 {
		t.Errorf("StaticHosts = %v: the existing ones first, the pair appended", s)
	}
}

// TestBuildDedicatedCellBackupAndMonitor: the repository host backs up the
// pair in the cell's stanza (its data nodes with their pinned host keys, and
// their own pgBackRest client keys); the monitor's formation queries cover
// the cell's formation. A stack without dedicated cells has neither.
func TestBuildDedicatedCellBackupAndMonitor(t *testing.T) {
	cfg := cellsConfig(t)
	specs, topo := build(t, cfg, true, nil)
	if c := specs[topo.BackupRepo].Backup.Cells; len(c) != 0 {
		t.Errorf("no dedicated cell: backup Cells = %+v", c)
	}
	if f := specs[topo.DBMonitor].DB.Formations; len(f) != 0 {
		t.Errorf("no dedicated cell: monitor Formations = %v", f)
	}
	eu := &cfg.Apps[0].Cells[1]
	eu.Replicas, eu.Database, eu.DatabaseSize = 2, config.DatabaseDedicated, cfg.Database.Size
	specs, topo = build(t, cfg, true, nil)
	eu2 := topo.Cell(cfg.Apps[0].Name, "eu-2")
	cells := specs[topo.BackupRepo].Backup.Cells
	if len(cells) != 1 || cells[0].Stanza != CellStanza(eu2) || len(cells[0].DBHosts) != 2 || len(cells[0].ClientKeys) != 3 {
		t.Fatalf("backup Cells = %+v, want stanza %s with the pair and the pair's and the cell's standby database's client keys", cells, CellStanza(eu2))
	}
	if cells[0].ClientKeys[2] != specs[eu2.StandbyDB].StandbyDB.ClientKey.Public {
		t.Errorf("ClientKeys[2] is not %s's pgBackRest client key", eu2.StandbyDB)
	}
	for i, n := range eu2.DBNodes {
		h := cells[0].DBHosts[i]
		if h.Name != n || h.Address != topo.Host(n).PrivateAddress.String() || h.HostKey != specs[n].HostKey.Public {
			t.Errorf("DBHosts[%d] = %+v, want %s with its address and host key", i, h, n)
		}
		if cells[0].ClientKeys[i] != specs[n].DB.Backup.ClientKey.Public {
			t.Errorf("ClientKeys[%d] is not %s's pgBackRest client key", i, n)
		}
	}
	if f := specs[topo.DBMonitor].DB.Formations; len(f) != 1 || f[0] != eu2.Formation {
		t.Errorf("monitor Formations = %v, want [%s]", f, eu2.Formation)
	}
}
