package inventory

import (
	"fmt"
	"net/netip"
	"regexp"
)

// Cell is one cell of an app: its own VRRP group and floating IP, its own
// database on the stack's cluster, its own standby-site server.
type Cell struct {
	Name string `json:"name"`
	// VIP is the cell's floating IP, which the routers send its shops to.
	VIP     string   `json:"vip"`
	Hosts   []string `json:"hosts"`
	Standby string   `json:"standbyHost"`
	// Database is the cell's database (and role): on the stack's cluster, or
	// on DBNodes when the cell has its own PostgreSQL pair.
	Database string `json:"database"`
	// DBNodes are a dedicated cell's own data nodes (hosts with role db and
	// this cell), in the pg_auto_failover formation Formation on the stack's
	// monitor; empty for a cell on the shared cluster (Database.Nodes).
	DBNodes   []string `json:"dbNodes,omitempty"`
	Formation string   `json:"formation,omitempty"`
	// StandbyDB is a dedicated cell's standby-site PostgreSQL (a host with
	// role standby-db and this cell), restoring the cell's own stanza: a
	// site switch promotes it for the cell's standby server. Set exactly
	// when the cell is dedicated.
	StandbyDB string `json:"standbyDB,omitempty"`
}

// Dedicated reports whether the cell has its own PostgreSQL pair.
func (c Cell) Dedicated() bool { return len(c.DBNodes) > 0 }

// Router is the router tier of an app with cells.
type Router struct {
	// VIP is the router tier's floating IP (the app's domains point at it).
	VIP     string   `json:"vip"`
	Hosts   []string `json:"hosts"`
	Standby string   `json:"standbyHost"`
	// DefaultCell receives unknown shops when UnknownShop is "default".
	DefaultCell string `json:"defaultCell,omitempty"`
	// UnknownShop is the answer for a shop the mapping lacks: 404, 421 or default.
	UnknownShop string `json:"unknownShop"`
}

// config's rule for cell names.
var cellNameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,15}$`)

// Cell returns the app's cell called name, or nil.
func (a *App) Cell(name string) *Cell {
	for i := range a.Cells {
		if a.Cells[i].Name == name {
			return &a.Cells[i]
		}
	}
	return nil
}

// CellHosts lists an app's hosts in cell, sorted by the cell's VRRP order.
func (inv *Inventory) CellHosts(app, cell string) []Host {
	a := inv.App(app)
	if a == nil {
		return nil
	}
	c := a.Cell(cell)
	if c == nil {
		return nil
	}
	var out []Host
	for _, n := range c.Hosts {
		if h := inv.Host(n); h != nil {
			out = append(out, *h)
		}
	}
	return out
}

// checkCells checks cells and routers: names, addresses, and that each host
// they list exists with the right role, app and cell.
func (inv *Inventory) checkCells() []error {
	var errs []error
	badf := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	member := func(field, hn, app, cell string, roles ...Role) {
		h := inv.Host(hn)
		if h == nil {
			badf("%s: unknown host %q", field, hn)
			return
		}
		ok := false
		for _, r := range roles {
			ok = ok || h.Has(r)
		}
		if !ok || h.App != app || h.Cell != cell {
			badf("%s: host %q is not a %v server of app %s cell %q", field, hn, roles, app, cell)
		}
	}
	vip := func(field, v string) {
		if v == "" {
			return
		}
		if _, err := netip.ParseAddr(v); err != nil {
			badf("%s: %q, expected an IP address", field, v)
		}
	}
	for i, h := range inv.Hosts {
		if h.Cell != "" && !cellNameRE.MatchString(h.Cell) {
			badf("hosts[%d].cell: %q, expected a cell name ([a-z][a-z0-9-]{0,15})", i, h.Cell)
		}
	}
	for i, a := range inv.Apps {
		p := fmt.Sprintf("apps[%d] (%s)", i, a.Name)
		if len(a.Cells) > 0 && a.Router == nil {
			badf("%s.router: missing, expected the router tier of an app with cells", p)
		}
		if a.Router != nil && len(a.Cells) == 0 {
			badf("%s.router: set on an app without cells", p)
		}
		seen := map[string]bool{}
		for j, c := range a.Cells {
			cp := fmt.Sprintf("%s.cells[%d]", p, j)
			if !cellNameRE.MatchString(c.Name) {
				badf("%s.name: %q, expected a cell name ([a-z][a-z0-9-]{0,15})", cp, c.Name)
				continue
			}
			if seen[c.Name] {
				badf("%s.name: duplicate cell %q", cp, c.Name)
			}
			seen[c.Name] = true
			vip(cp+".vip", c.VIP)
			if !pgIdentRE.MatchString(c.Database) {
				badf("%s.database: %q, expected a lowercase PostgreSQL identifier", cp, c.Database)
			}
			for _, hn := range c.Hosts {
				member(cp+".hosts", hn, a.Name, c.Name, RoleApp)
			}
			if c.Standby != "" {
				member(cp+".standbyHost", c.Standby, a.Name, c.Name, RoleStandbyApp)
			}
			for _, hn := range c.DBNodes {
				member(cp+".dbNodes", hn, a.Name, c.Name, RoleDB)
			}
			if c.StandbyDB != "" {
				member(cp+".standbyDB", c.StandbyDB, a.Name, c.Name, RoleStandbyDB)
			}
			if c.Dedicated() != (c.StandbyDB != "") {
				badf("%s.standbyDB: %q with %d dbNodes, expected a standby-site database exactly when the cell has its own data nodes", cp, c.StandbyDB, len(c.DBNodes))
			}
			if c.Dedicated() != (c.Formation != "") {
				badf("%s.formation: %q with %d dbNodes, expected a formation exactly when the cell has its own data nodes", cp, c.Formation, len(c.DBNodes))
			} else if c.Formation != "" && !pgIdentRE.MatchString(c.Formation) {
				badf("%s.formation: %q, expected a lowercase identifier", cp, c.Formation)
			}
		}
		if r := a.Router; r != nil {
			rp := p + ".router"
			vip(rp+".vip", r.VIP)
			for _, hn := range r.Hosts {
				member(rp+".hosts", hn, a.Name, "", RoleRouter)
			}
			if r.Standby != "" {
				member(rp+".standbyHost", r.Standby, a.Name, "", RoleStandbyRouter)
			}
			switch r.UnknownShop {
			case "404", "421":
			case "default":
				if a.Cell(r.DefaultCell) == nil {
					badf("%s.defaultCell: %q, expected one of the app's cells (unknownShop is default)", rp, r.DefaultCell)
				}
			default:
				badf("%s.unknownShop: %q, expected 404, 421 or default", rp, r.UnknownShop)
			}
			if r.DefaultCell != "" && a.Cell(r.DefaultCell) == nil {
				badf("%s.defaultCell: %q, expected one of the app's cells", rp, r.DefaultCell)
			}
		}
	}
	return errs
}
