package drill

import (
	"fmt"
	"strings"

	"github.com/belay-sh/belay/inventory"
)

// isLabInventory reports whether inv is the lab's (every site on provider lab):
// the cell drill's app kill powers machines off there and stops nginx elsewhere.
func isLabInventory(inv *inventory.Inventory) bool {
	for _, s := range inv.Sites {
		if s.Provider != "lab" {
			return false
		}
	}
	return len(inv.Sites) > 0
}

// writeCellRunbook renders the cell drill's section for every app with cells
// (shown for the app's last cell; the others run alike).
func writeCellRunbook(b *strings.Builder, inv *inventory.Inventory) {
	lab := isLabInventory(inv)
	for _, a := range inv.Apps {
		if len(a.Cells) == 0 {
			continue
		}
		cell := a.Cells[len(a.Cells)-1].Name
		fmt.Fprintf(b, "### cell (app %s)\n\n`belay drill cell %s --cell %s [--kill app|db] [--duration 30s] [--shops D,...] [--path /]`: kill one cell under load\n", a.Name, a.Name, cell)
		b.WriteString("across every cell; the other cells' shops must answer 100 %, the killed cell's get the router's clean 503.\n")
		fmt.Fprintf(b, "Shown for cell %s; every cell runs alike with its own hosts and database.\n\n", cell)
		for _, k := range CellKills {
			steps, err := CellSteps(inv, a.Name, cell, k, lab)
			if err != nil {
				fmt.Fprintf(b, "#### --kill %s\n\nNot available for this stack: %v\n\n", k, err)
				continue
			}
			fmt.Fprintf(b, "#### --kill %s\n\n", k)
			if err := SupportedCell(&Env{Inv: inv, Lab: lab}, k); err != nil {
				fmt.Fprintf(b, "Lab only: %v\n\n", err)
			}
			writeSteps(b, steps)
		}
	}
}
