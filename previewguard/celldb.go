package previewguard

import (
	"fmt"
	"strings"
)

// A cell switched from database: shared to dedicated gets a new pair
// (belay:index:CellDatabase "<app>-<cell>-db") while its servers keep
// running: nothing is destroyed, so the preview passes, but the cell's data
// stays on the stack's cluster. The guard warns: belay db copy must move it
// before belay converge points the servers at the empty pair (belay
// converge refuses until then; a brand-new cell, whose servers the same
// preview creates, has no data to copy and gets no warning).

// cellDatabaseType is components.CellDatabase's type.
const cellDatabaseType = "belay:index:CellDatabase"

// Warning is something the operator must do after up; it never blocks.
type Warning struct {
	Name    string `json:"name"`
	Message string `json:"message"`
}

// cellWarnings are the cells that get a pair in this preview while their
// servers already exist.
func cellWarnings(p *Preview) []Warning {
	created := map[string]bool{}
	for _, s := range p.Steps {
		if s.Op == "create" {
			created[urnName(s.URN)] = true
		}
	}
	var out []Warning
	for _, s := range p.Steps {
		if s.Op != "create" || stepType(s) != cellDatabaseType {
			continue
		}
		name := urnName(s.URN)
		group, ok := strings.CutSuffix(name, "-db")
		if !ok {
			continue
		}
		if created[group+"-1"] {
			continue // a new cell: its servers boot with the pair's URL, no data to copy
		}
		cell := "APP/CELL (cell " + group + ")"
		if a, c, ok := strings.Cut(group, "-"); ok && !strings.Contains(c, "-") {
			cell = a + "/" + c
		}
		out = append(out, Warning{Name: name, Message: fmt.Sprintf(
			"cell %s becomes dedicated: its new pair is empty and its data stays on the stack's cluster; after pulumi up run belay db copy --cell %s --yes before belay converge (converge refuses the cell's servers until then; docs/cells.md)", group, cell)})
	}
	return out
}
