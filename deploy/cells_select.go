package deploy

import (
	"fmt"
	"sort"
	"strings"

	"github.com/belay-sh/belay/inventory"
)

// SelectCells checks an operator command's cell list (flag names the flag in
// errors, e.g. "--cell") against app a: empty means every cell, in the
// inventory's order; otherwise the named cells in the given order. An app
// without cells refuses any name; an unknown, empty or repeated name is an
// error naming the flag. Nothing is dialled: commands call it first.
func SelectCells(a *inventory.App, flag string, names []string) ([]string, error) {
	if len(a.Cells) == 0 {
		if len(names) > 0 {
			return nil, fmt.Errorf("%s: app %s has no cells", flag, a.Name)
		}
		return nil, nil
	}
	known := cellNames(a)
	if len(names) == 0 {
		return known, nil
	}
	seen := map[string]bool{}
	var out []string
	for _, c := range names {
		c = strings.TrimSpace(c)
		switch {
		case c == "":
			return nil, fmt.Errorf("%s: empty cell name, expected a comma-separated list of %s", flag, strings.Join(known, ", "))
		case a.Cell(c) == nil:
			return nil, fmt.Errorf("%s: app %s has no cell %q (cells: %s)", flag, a.Name, c, strings.Join(known, ", "))
		case seen[c]:
			return nil, fmt.Errorf("%s: cell %q named twice", flag, c)
		}
		seen[c] = true
		out = append(out, c)
	}
	return out, nil
}

// LeaseTargets is how operator commands (converge, drills, replace) see the
// apps whose leases they take: an app without cells as itself, an app with
// cells as one entry per cell, in cell-name order, each the app as
// CellInventory shows that cell (hosts, standby, VIP) — so a cell's lease is
// taken on its first server and fences its own servers, as a cells deploy does.
func LeaseTargets(inv *inventory.Inventory, app string) ([]LeaseTarget, error) {
	a := inv.App(app)
	if a == nil {
		return nil, fmt.Errorf("app %q: not in the inventory", app)
	}
	if len(a.Cells) == 0 {
		if len(a.Hosts) == 0 {
			return nil, fmt.Errorf("app %s: the inventory lists no hosts", app)
		}
		return []LeaseTarget{{App: *a}}, nil
	}
	names := cellNames(a)
	sort.Strings(names)
	var out []LeaseTarget
	for _, c := range names {
		view, err := CellInventory(inv, app, c)
		if err != nil {
			return nil, err
		}
		out = append(out, LeaseTarget{Cell: c, App: *view.App(app)})
	}
	return out, nil
}

// LeaseTarget is one lease an operator command takes: App is the app (for a
// cell: the cell's view of it, see CellInventory).
type LeaseTarget struct {
	Cell string
	App  inventory.App
}
