package celldb

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/belay-sh/belay/hostcmd"
	"github.com/belay-sh/belay/inventory"
)

// The guard: a dedicated cell's servers get a DATABASE_URL naming the
// cell's pair. Rendering that onto running servers while the cell's data is
// still on the stack's cluster, not copied, would show the cell's shops an
// empty database. Whatever re-renders a cell server's environment (belay
// converge; the copy's own switch converges through it too) asks Guard first.

// Refusal is a dedicated cell whose servers must not be converged yet.
type Refusal struct {
	App, Cell string
	Hosts     []string
	Reason    string
}

func (r Refusal) Error() string { return r.Reason }

// GuardedHosts are the servers of dedicated cells among hosts (what Guard
// may refuse); converge runs them after the others.
func GuardedHosts(inv *inventory.Inventory, hosts []string) []string {
	var out []string
	for _, a := range inv.Apps {
		for _, c := range a.Cells {
			if !c.Dedicated() {
				continue
			}
			for _, h := range c.Hosts {
				if slices.Contains(hosts, h) {
					out = append(out, h)
				}
			}
		}
	}
	return out
}

// Guard checks every dedicated cell with a server among hosts: allowed when
// the stack's cluster holds no database of the cell or an empty one (a new
// cell), or when the pair's database carries the copy marker. Anything else,
// including a side that cannot be read, is a refusal naming the cell and
// the command to run.
func Guard(ctx context.Context, r Runner, inv *inventory.Inventory, hosts []string) []Refusal {
	var out []Refusal
	for i := range inv.Apps {
		a := &inv.Apps[i]
		for j := range a.Cells {
			c := &a.Cells[j]
			var mine []string
			for _, h := range c.Hosts {
				if slices.Contains(hosts, h) {
					mine = append(mine, h)
				}
			}
			if !c.Dedicated() || len(mine) == 0 {
				continue
			}
			if reason := guardCell(ctx, r, inv, a, c); reason != "" {
				out = append(out, Refusal{App: a.Name, Cell: c.Name, Hosts: mine, Reason: reason})
			}
		}
	}
	return out
}

func guardCell(ctx context.Context, r Runner, inv *inventory.Inventory, a *inventory.App, c *inventory.Cell) string {
	name := a.Name + "/" + c.Name
	cmd := "belay db copy --cell " + name + " --yes"
	if err := hostcmd.CheckCellDatabase(c.Database); err != nil {
		return fmt.Sprintf("cell %s: inventory cells[].database: %v", name, err)
	}
	tables, src, errs := -2, "", []string{}
	for _, n := range inv.Database.Nodes {
		v, err := tablesOn(ctx, r, n, c.Database)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		tables, src = v, n
		break
	}
	if tables == -2 {
		return fmt.Sprintf("cell %s is dedicated, and whether the stack's cluster still holds its data cannot be read (%s): not converging its servers onto the pair; converge the data nodes first, then run %s if it has data",
			name, strings.Join(errs, "; "), cmd)
	}
	if tables <= 0 {
		return "" // a new cell, or nothing in its old database: no copy needed
	}
	errs = errs[:0]
	for _, n := range c.DBNodes {
		out, err := r.RunRoot(ctx, n, hostcmd.CellDB(hostcmd.CellDBMarker, c.Database)...)
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", n, err))
			continue
		}
		if strings.TrimSpace(string(out)) != "none" {
			return ""
		}
		return fmt.Sprintf("cell %s is dedicated but its data is still on the stack's cluster (database %s on %s: %d tables) and its pair holds no copy: its servers would see an empty database; run %s (it copies, then converges them)",
			name, c.Database, src, tables, cmd)
	}
	return fmt.Sprintf("cell %s is dedicated, its data is still on the stack's cluster (database %s on %s: %d tables) and its pair's copy marker cannot be read (%s): run %s",
		name, c.Database, src, tables, strings.Join(errs, "; "), cmd)
}
