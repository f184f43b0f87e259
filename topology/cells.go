package topology

import (
	"fmt"
	"net/netip"

	"github.com/belay-sh/belay/config"
	"github.com/belay-sh/belay/inventory"
)

// The cells address plan. An app with cells has no app servers of its own:
// its address block (offsetApps + i*AppBlock) holds its router tier, and its
// standby slot (offsetApps + i on the standby site) its standby router. Its
// cells live in a cells area counted down from the top of each site network,
// one area per app with cells (in config order), one fixed block per cell (in
// the app's cells order). So adding a cell, a router replica, a cell replica
// or an app never moves an existing server: every block is fixed by positions
// that appending does not change.
//
// A dedicated cell's standby-site database (StandbyDB) sits in a second
// standby area counted down from the middle of the standby network, at
// standbyDBTop - slot: fixed by the cell's slot like its standby server, so
// adding a cell, making one dedicated or adding an app moves nothing. The
// standby cells area (one address per cell) keeps its layout: an existing
// standby server never moves to make room.
const (
	// CellBlock is how many primary-site addresses each cell owns.
	CellBlock = config.MaxCellReplicas
	// CellArea is how many primary-site addresses each app with cells owns.
	CellArea = config.MaxCells * CellBlock
	// topReserve addresses below the broadcast address stay out of the cells
	// area: the lab keeps its floating addresses and host legs there.
	topReserve = 28
)

// Cell is one planned cell of an app.
type Cell struct {
	App  string
	Name string
	// Group is the cell's VRRP group and floating IP name: "<app>-<cell>".
	Group string
	// Hosts are the cell's primary-site servers, in VRRP priority order.
	Hosts []string
	// Standby is the cell's standby-site server.
	Standby string
	// StandbyDB is a dedicated cell's standby-site PostgreSQL
	// ("<app>-<cell>-standby-db", role standby-db), restoring the cell's
	// stanza; "" for a cell on the shared cluster (whose data the stack's
	// standby database restores).
	StandbyDB string
	// Database is the cell's own database and role: on the stack's cluster,
	// or on its own data nodes when DBNodes is set.
	Database string
	// DBNodes are a dedicated cell's own PostgreSQL data nodes
	// ("<app>-<cell>-db-1", "-db-2"), nil for a cell on the shared cluster.
	// They form the pg_auto_failover formation Formation on the stack's monitor.
	DBNodes   []string
	Formation string
	// Slot is the cell's block number among all cells (area*MaxCells + index):
	// it fixes its addresses and its VRRP router ID.
	Slot int
}

// Router is the router tier of an app with cells.
type Router struct {
	App string
	// Group is the router tier's VRRP group and floating IP name: "<app>-router".
	Group string
	// Hosts are the routers on the primary site, in VRRP priority order.
	Hosts   []string
	Standby string
}

// CellGroup names a cell's VRRP group (and host name prefix).
func CellGroup(app, cell string) string { return app + "-" + cell }

// RouterGroup names an app's router tier.
func RouterGroup(app string) string { return app + "-router" }

// cellsTop is the highest offset of the cells area of a network.
func cellsTop(p netip.Prefix) int { return (1 << (32 - p.Masked().Bits())) - 2 - topReserve }

// standbyDBTop is the highest offset of the standby site's cell databases
// area: just below the middle of the network, far from both the apps'
// standby servers (counting up from offsetApps) and the standby cells areas
// (counting down from cellsTop).
func standbyDBTop(p netip.Prefix) int { return (1<<(32-p.Masked().Bits()))/2 - 1 }

type addFunc func(h Host, prefix netip.Prefix, offset int, key string) error

// planCells lays out app i's router tier and cells; area is the app's rank
// among the apps with cells.
func planCells(t *Topology, add addFunc, cfg *config.Config, i, area int, primary, standby netip.Prefix) error {
	app := cfg.Apps[i]
	key := fmt.Sprintf("belay:apps[%d]", i)
	pk, sk := "belay:network.primaryCidr", "belay:network.standbyCidr"
	r := app.Router
	if r == nil {
		return fmt.Errorf("%s.router: missing, expected the router tier of an app with cells", key)
	}
	if r.Replicas > AppBlock {
		return fmt.Errorf("%s.router.replicas: %d, expected at most %d (the router tier owns the app's block of %d addresses)", key, r.Replicas, AppBlock, AppBlock)
	}
	if len(app.Cells) > config.MaxCells {
		return fmt.Errorf("%s.cells: %d cells, expected at most %d", key, len(app.Cells), config.MaxCells)
	}
	rt := &Router{App: app.Name, Group: RouterGroup(app.Name)}
	for j := 0; j < r.Replicas; j++ {
		name := fmt.Sprintf("%s-%d", rt.Group, j+1)
		if err := add(Host{Name: name, Site: inventory.Primary, Roles: []inventory.Role{inventory.RoleRouter}, App: app.Name, Size: r.Size, Index: j}, primary, offsetApps+i*AppBlock+j, pk); err != nil {
			return err
		}
		rt.Hosts = append(rt.Hosts, name)
	}
	rt.Standby = rt.Group + "-standby"
	if err := add(Host{Name: rt.Standby, Site: inventory.Standby, Roles: []inventory.Role{inventory.RoleStandbyRouter}, App: app.Name, Size: r.StandbySize}, standby, offsetApps+i, sk); err != nil {
		return err
	}
	t.Routers[app.Name] = rt
	ptop, stop := cellsTop(primary), cellsTop(standby)
	for c, cell := range app.Cells {
		if cell.Replicas > CellBlock {
			return fmt.Errorf("%s.cells[%d].replicas: %d, expected at most %d", key, c, cell.Replicas, CellBlock)
		}
		slot := area*config.MaxCells + c
		tc := Cell{App: app.Name, Name: cell.Name, Group: CellGroup(app.Name, cell.Name), Database: config.CellDatabase(app.Name, cell.Name), Slot: slot}
		base := ptop - (slot+1)*CellBlock + 1
		for j := 0; j < cell.Replicas; j++ {
			name := fmt.Sprintf("%s-%d", tc.Group, j+1)
			if err := add(Host{Name: name, Site: inventory.Primary, Roles: []inventory.Role{inventory.RoleApp}, App: app.Name, Cell: cell.Name, Size: cell.Size, Index: j}, primary, base+j, pk); err != nil {
				return err
			}
			tc.Hosts = append(tc.Hosts, name)
		}
		if cell.Dedicated() {
			if err := planCellDB(&tc, add, cell, base, fmt.Sprintf("%s.cells[%d]", key, c), pk, primary); err != nil {
				return err
			}
		}
		tc.Standby = tc.Group + "-standby"
		if err := add(Host{Name: tc.Standby, Site: inventory.Standby, Roles: []inventory.Role{inventory.RoleStandbyApp}, App: app.Name, Cell: cell.Name, Size: cell.StandbySize}, standby, stop-slot, sk); err != nil {
			return err
		}
		if cell.Dedicated() {
			// After the cell's standby server: hosts of a cell that exists
			// keep their order in the plan when the cell becomes dedicated.
			tc.StandbyDB = tc.Group + "-standby-db"
			if err := add(Host{Name: tc.StandbyDB, Site: inventory.Standby, Roles: []inventory.Role{inventory.RoleStandbyDB}, App: app.Name, Cell: cell.Name, Size: cfg.Database.StandbySize}, standby, standbyDBTop(standby)-slot, sk); err != nil {
				return err
			}
		}
		t.Cells[app.Name] = append(t.Cells[app.Name], tc)
	}
	return nil
}

// planCellDB adds a dedicated cell's two data nodes at the top of the cell's
// block (db-1 at its last address, db-2 below it), the app servers counting
// up from its first: both are fixed by the cell's slot, so making a cell
// dedicated, or adding one, moves no server. The block has room for
// config.DedicatedCellReplicas app servers besides them.
func planCellDB(tc *Cell, add addFunc, cell config.Cell, base int, key, pk string, primary netip.Prefix) error {
	if cell.Replicas > config.DedicatedCellReplicas {
		return fmt.Errorf("%s.replicas: %d, expected at most %d in a dedicated cell (its data nodes take the rest of its block)", key, cell.Replicas, config.DedicatedCellReplicas)
	}
	tc.Formation = tc.Database
	for j := 0; j < 2; j++ {
		name := fmt.Sprintf("%s-db-%d", tc.Group, j+1)
		h := Host{Name: name, Site: inventory.Primary, Roles: []inventory.Role{inventory.RoleDB}, App: tc.App, Cell: tc.Name, Size: cell.DatabaseSize, Index: j}
		if err := add(h, primary, base+CellBlock-1-j, pk); err != nil {
			return err
		}
		tc.DBNodes = append(tc.DBNodes, name)
	}
	return nil
}

// checkCellAreas refuses a plan whose reserved cells areas reach the apps'
// blocks (or the database servers): whole areas are checked, not only the
// cells that exist, so adding cells later can never collide.
func checkCellAreas(cfg *config.Config, areas int, primary, standby netip.Prefix) error {
	if areas == 0 {
		return nil
	}
	appsEnd := offsetApps + len(cfg.Apps)*AppBlock - 1
	low := cellsTop(primary) - areas*CellArea + 1
	if low <= appsEnd {
		return fmt.Errorf("belay:network.primaryCidr: %s cannot hold %d apps and %d cells areas of %d addresses (cells need offsets %d..%d, the apps reach %d), expected a larger network", primary, len(cfg.Apps), areas, CellArea, low, cellsTop(primary), appsEnd)
	}
	sAppsEnd := offsetApps + len(cfg.Apps) - 1
	sLow := cellsTop(standby) - areas*config.MaxCells + 1
	if sLow <= sAppsEnd {
		return fmt.Errorf("belay:network.standbyCidr: %s cannot hold %d apps and %d cells areas of %d addresses, expected a larger network", standby, len(cfg.Apps), areas, config.MaxCells)
	}
	if !anyDedicated(cfg) {
		// Nothing lives in the cell databases area: a stack without a
		// dedicated cell keeps the networks it was valid with.
		return nil
	}
	dbHigh := standbyDBTop(standby)
	dbLow := dbHigh - areas*config.MaxCells + 1
	if dbLow <= sAppsEnd || dbHigh >= sLow {
		return fmt.Errorf("belay:network.standbyCidr: %s cannot hold %d apps, %d standby cells areas (offsets %d..%d) and their dedicated cells' standby databases (offsets %d..%d, %d per app with cells), expected a larger network (a /24 holds 6 apps with cells)", standby, len(cfg.Apps), areas, sLow, cellsTop(standby), dbLow, dbHigh, config.MaxCells)
	}
	return nil
}

// anyDedicated reports whether a cell of cfg has its own database pair.
func anyDedicated(cfg *config.Config) bool {
	for _, a := range cfg.Apps {
		for _, c := range a.Cells {
			if c.Dedicated() {
				return true
			}
		}
	}
	return false
}

// Cell returns app's planned cell called name, or nil.
func (t *Topology) Cell(app, name string) *Cell {
	for i, c := range t.Cells[app] {
		if c.Name == name {
			return &t.Cells[app][i]
		}
	}
	return nil
}

// EntryGroup is the VRRP group an app's domains point at: the app itself, or
// its router tier when it has cells.
func EntryGroup(a config.App) string {
	if a.HasCells() {
		return RouterGroup(a.Name)
	}
	return a.Name
}

// InventoryApp is app a's inventory entry; vip returns a group's floating
// address. An app with cells has no hosts of its own: its VIP is the router
// tier's, and its cells and router are listed.
func (t *Topology) InventoryApp(a config.App, vip func(group string) string) inventory.App {
	out := inventory.App{
		Name:       a.Name,
		VIP:        vip(EntryGroup(a)),
		Port:       a.Port,
		HealthPath: a.HealthPath,
		Domains:    append([]string{}, a.Domains...),
		Hosts:      append([]string{}, t.AppHosts[a.Name]...),
		Standby:    t.StandbyApp[a.Name],
	}
	if a.TLS.Mode != config.TLSOff {
		out.TLS = a.TLS.Mode
	}
	rt := t.Routers[a.Name]
	if !a.HasCells() || rt == nil || a.Router == nil {
		return out
	}
	out.Router = &inventory.Router{
		VIP: vip(rt.Group), Hosts: append([]string{}, rt.Hosts...), Standby: rt.Standby,
		DefaultCell: a.Router.DefaultCell, UnknownShop: a.Router.UnknownShop,
	}
	for _, c := range t.Cells[a.Name] {
		out.Cells = append(out.Cells, inventory.Cell{
			Name: c.Name, VIP: vip(c.Group), Hosts: append([]string{}, c.Hosts...), Standby: c.Standby, Database: c.Database,
			DBNodes: append([]string(nil), c.DBNodes...), Formation: c.Formation, StandbyDB: c.StandbyDB,
		})
	}
	return out
}

// CellDBNodes lists every dedicated cell's data nodes, in app and cell order.
func (t *Topology) CellDBNodes() []string {
	var out []string
	for _, h := range t.Hosts {
		if h.Cell != "" && h.Has(inventory.RoleDB) {
			out = append(out, h.Name)
		}
	}
	return out
}

// DedicatedCellOf returns the cell whose own data node (or standby-site
// database) host is, or nil.
func (t *Topology) DedicatedCellOf(host string) *Cell {
	h := t.Host(host)
	if h == nil || h.Cell == "" || !(h.Has(inventory.RoleDB) || h.Has(inventory.RoleStandbyDB)) {
		return nil
	}
	return t.Cell(h.App, h.Cell)
}

// CellStandbyDBs lists every dedicated cell's standby-site database, in app
// and cell order.
func (t *Topology) CellStandbyDBs() []string {
	var out []string
	for _, h := range t.Hosts {
		if h.Cell != "" && h.Has(inventory.RoleStandbyDB) {
			out = append(out, h.Name)
		}
	}
	return out
}
