package config

import (
	"fmt"
	"regexp"
	"strings"
)

// Cell is one independent copy of an app: its own HA group (own floating IP)
// and its own database. Shops are mapped to a cell by the app's router tier.
type Cell struct {
	Name        string `json:"name"`
	Size        string `json:"size"`
	StandbySize string `json:"standbySize"`
	Replicas    int    `json:"replicas"`
	// Database is where the cell's data lives: DatabaseShared (its own role and
	// database on the stack's PostgreSQL cluster) or DatabaseDedicated (its own
	// pg_auto_failover pair, see topology.Cell.DBNodes).
	Database string `json:"database"`
	// DatabaseSize is the server size of a dedicated cell's two data nodes
	// (default belay:database.size); unused by a shared cell.
	DatabaseSize string `json:"databaseSize,omitempty"`
}

// Dedicated reports whether the cell has its own PostgreSQL pair.
func (c Cell) Dedicated() bool { return c.Database == DatabaseDedicated }

// Router is the router tier of an app with cells: an HA group with its own
// floating IP running nginx, which maps each shop to its cell.
type Router struct {
	Replicas    int    `json:"replicas"`
	Size        string `json:"size"`
	StandbySize string `json:"standbySize"`
	// DefaultCell receives shops the mapping does not know ("" for none).
	DefaultCell string `json:"defaultCell,omitempty"`
	// UnknownShop is what an unknown shop gets: "404", "421" or "default"
	// (sent to DefaultCell).
	UnknownShop string `json:"unknownShop"`
}

// Cell database placements.
const (
	DatabaseShared    = "shared"
	DatabaseDedicated = "dedicated"
)

// Unknown-shop answers of the router.
const (
	UnknownShop404     = "404"
	UnknownShop421     = "421"
	UnknownShopDefault = "default"
)

// Limits of the cells address plan (see topology): each cell owns a fixed
// block of CellBlock addresses, each app with cells an area of MaxCells blocks.
const (
	MaxCells        = 16
	MaxCellReplicas = 4
	MaxRouters      = 10
	// CellNameMax is the longest cell name.
	CellNameMax = 16
	// DedicatedCellReplicas is the most app servers a dedicated cell may have:
	// its two data nodes take the top of the cell's fixed address block
	// (topology), so the block has room for this many app servers.
	DedicatedCellReplicas = MaxCellReplicas - 2
)

var cellName = regexp.MustCompile(`^[a-z][a-z0-9-]{0,15}$`)

// HasCells reports whether the app is split into cells.
func (a App) HasCells() bool { return len(a.Cells) > 0 }

// Cell returns the app's cell called name, or nil.
func (a App) Cell(name string) *Cell {
	for i := range a.Cells {
		if a.Cells[i].Name == name {
			return &a.Cells[i]
		}
	}
	return nil
}

// CellDatabase is the PostgreSQL database (and role) of a cell on the shared
// cluster: "<app>_<cell>" with '-' spelled '_' (PostgreSQL identifiers).
func CellDatabase(app, cell string) string {
	return strings.ReplaceAll(app+"_"+cell, "-", "_")
}

// decodeCells reads an app's `cells` field: a count N (cells c1..cN with the
// app's sizes and replicas) or a list of cell objects.
func decodeCells(e *errs, o *obj, a *App) {
	v, ok := o.get("cells")
	if !ok {
		return
	}
	path := o.field("cells")
	if n, isNum := toInt(v); isNum {
		if n < 1 || n > MaxCells {
			e.add(path, "%d, expected 1..%d cells (or a list of cells)", n, MaxCells)
			return
		}
		for i := 1; i <= n; i++ {
			a.Cells = append(a.Cells, Cell{Name: fmt.Sprintf("c%d", i), Size: a.Size, StandbySize: a.StandbySize, Replicas: a.Replicas, Database: DatabaseShared})
		}
		return
	}
	list, isList := v.([]any)
	if !isList {
		e.add(path, "got %s, expected a number of cells or a list of cells {name, replicas, size, standbySize, database, databaseSize}", e.describe(v))
		return
	}
	if len(list) == 0 {
		e.add(path, "empty list, expected at least one cell (or leave cells out)")
		return
	}
	for i, item := range list {
		c := Cell{Size: a.Size, StandbySize: a.StandbySize, Replicas: a.Replicas, Database: DatabaseShared}
		co := asObject(e, fmt.Sprintf("%s[%d]", path, i), item)
		if co != nil {
			co.str("name", &c.Name)
			co.str("size", &c.Size)
			co.str("standbySize", &c.StandbySize)
			co.integer("replicas", &c.Replicas)
			co.str("database", &c.Database)
			co.str("databaseSize", &c.DatabaseSize)
			co.done("name", "replicas", "size", "standbySize", "database", "databaseSize")
		}
		a.Cells = append(a.Cells, c)
	}
}

// decodeRouter reads an app's `router` field (defaults from the app).
func decodeRouter(e *errs, o *obj, a *App) {
	v, ok := o.get("router")
	if !ok {
		if a.HasCells() {
			a.Router = &Router{Replicas: DefaultReplicas, Size: a.Size, StandbySize: a.StandbySize, UnknownShop: UnknownShop404}
		}
		return
	}
	r := &Router{Replicas: DefaultReplicas, Size: a.Size, StandbySize: a.StandbySize}
	a.Router = r
	ro := asObject(e, o.field("router"), v)
	if ro == nil {
		return
	}
	ro.integer("replicas", &r.Replicas)
	ro.str("size", &r.Size)
	ro.str("standbySize", &r.StandbySize)
	ro.str("defaultCell", &r.DefaultCell)
	// A YAML 404 arrives as a number; the answer is a status either way.
	if u, ok := ro.get("unknownShop"); ok {
		switch x := u.(type) {
		case string:
			r.UnknownShop = x
		default:
			if n, isNum := toInt(x); isNum {
				r.UnknownShop = fmt.Sprint(n)
			} else {
				e.add(ro.field("unknownShop"), "got %s, expected 404, 421 or default", e.describe(u))
			}
		}
	}
	if r.UnknownShop == "" {
		r.UnknownShop = UnknownShop404
		if r.DefaultCell != "" {
			r.UnknownShop = UnknownShopDefault
		}
	}
	ro.done("replicas", "size", "standbySize", "defaultCell", "unknownShop")
}

// cells checks app i's cells and router tier.
func (v *validator) cells(p string, a App) {
	if a.Router != nil && !a.HasCells() {
		v.add(p+".router", "set on an app without cells, expected cells too (the router maps shops to cells)")
		return
	}
	if !a.HasCells() {
		return
	}
	// Host names: <app>-<cell>-standby and <app>-router-standby must fit a DNS label.
	longest := len(a.Name) + len("-router-standby")
	if len(a.Cells) > MaxCells {
		v.add(p+".cells", "%d cells, expected at most %d (each app with cells owns %d address blocks)", len(a.Cells), MaxCells, MaxCells)
	}
	seen := map[string]int{}
	for j, c := range a.Cells {
		cp := fmt.Sprintf("%s.cells[%d]", p, j)
		switch {
		case c.Name == "":
			v.add(cp+".name", "missing, expected a cell name such as \"c1\"")
		case !cellName.MatchString(c.Name):
			v.add(cp+".name", "got %q, expected 1-%d lowercase letters, digits or '-', starting with a letter", c.Name, CellNameMax)
		case c.Name == "router" || c.Name == "standby":
			v.add(cp+".name", "got %q, a name belay uses for the app's own servers, expected another name", c.Name)
		default:
			if k, dup := seen[c.Name]; dup {
				v.add(cp+".name", "got %q, already the name of %s.cells[%d], expected unique cell names", c.Name, p, k)
			} else {
				seen[c.Name] = j
			}
			if l := len(a.Name) + 1 + len(c.Name) + len("-standby"); l > longest {
				longest = l
			}
		}
		v.size(cp+".size", c.Size, "primary", true)
		v.size(cp+".standbySize", c.StandbySize, "standby", true)
		if c.Replicas < DefaultReplicas || c.Replicas > MaxCellReplicas {
			v.add(cp+".replicas", "%d, expected %d..%d (a cell is an HA pair; grow by adding cells)", c.Replicas, DefaultReplicas, MaxCellReplicas)
		}
		switch c.Database {
		case DatabaseShared:
			// Changing a cell from dedicated back to shared is refused by the
			// preview guard (its data nodes would be deleted), not here.
			if db := CellDatabase(a.Name, c.Name); len(db) > 63 {
				v.add(cp+".name", "gives the database name %q, longer than PostgreSQL's 63 characters, expected a shorter app or cell name", db)
			}
		case DatabaseDedicated:
			// Its data nodes <app>-<cell>-db-N are shorter than <app>-<cell>-standby.
			v.dedicatedCell(cp, a, c)
		default:
			v.add(cp+".database", "got %q, expected %q or %q", c.Database, DatabaseShared, DatabaseDedicated)
		}
		if c.DatabaseSize != "" && !c.Dedicated() {
			v.add(cp+".databaseSize", "set on a cell with database %q, expected it only with database %q (a shared cell uses the stack's cluster)", c.Database, DatabaseDedicated)
		}
	}
	if longest > 63 {
		v.add(p+".name", "got %q: with its cells the host name would be %d characters, expected names short enough for 63", a.Name, longest)
	}
	r := a.Router
	rp := p + ".router"
	v.size(rp+".size", r.Size, "primary", true)
	v.size(rp+".standbySize", r.StandbySize, "standby", true)
	if r.Replicas < DefaultReplicas || r.Replicas > MaxRouters {
		v.add(rp+".replicas", "%d, expected %d..%d (an HA pair; the router owns the app's address block)", r.Replicas, DefaultReplicas, MaxRouters)
	}
	if r.DefaultCell != "" && a.Cell(r.DefaultCell) == nil {
		v.add(rp+".defaultCell", "got %q, expected the name of one of the app's cells", r.DefaultCell)
	}
	switch r.UnknownShop {
	case UnknownShop404, UnknownShop421:
	case UnknownShopDefault:
		if r.DefaultCell == "" {
			v.add(rp+".unknownShop", "%q needs defaultCell, expected defaultCell set or 404/421", r.UnknownShop)
		}
	default:
		v.add(rp+".unknownShop", "got %q, expected 404, 421 or default", r.UnknownShop)
	}
}

// cellDatabases refuses two cells (of any apps) sharing a database name
// (a dedicated cell's is also its formation and stanza), or a shared one
// taking the stack's own database.
func (v *validator) cellDatabases() {
	seen := map[string]string{}
	for i, a := range v.c.Apps {
		for j, c := range a.Cells {
			if c.Name == "" {
				continue
			}
			// A dedicated cell's database lives on its own pair, but the name
			// is also its formation on the shared monitor and its pgBackRest
			// stanza: unique among all cells all the same.
			path := fmt.Sprintf("%s[%d].cells[%d].name", KeyApps, i, j)
			db := CellDatabase(a.Name, c.Name)
			if db == v.c.Database.Name && !c.Dedicated() {
				v.add(path, "gives the database name %q, which is belay:database.name, expected another cell or app name", db)
				continue
			}
			if other, dup := seen[db]; dup {
				v.add(path, "gives the database name %q, as %s does, expected names that differ after '-' becomes '_'", db, other)
				continue
			}
			seen[db] = path
		}
	}
}

// dedicatedCell checks a cell with its own PostgreSQL pair.
func (v *validator) dedicatedCell(cp string, a App, c Cell) {
	v.size(cp+".databaseSize", c.DatabaseSize, "primary", false)
	if c.Replicas > DedicatedCellReplicas {
		v.add(cp+".replicas", "%d with database %q, expected at most %d (the cell's data nodes take the rest of its fixed address block of %d)", c.Replicas, DatabaseDedicated, DedicatedCellReplicas, MaxCellReplicas)
	}
	if db := CellDatabase(a.Name, c.Name); len(db) > 63 {
		v.add(cp+".name", "gives the database name %q, longer than PostgreSQL's 63 characters, expected a shorter app or cell name", db)
	}
}
