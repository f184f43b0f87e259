package replace

import (
	"context"
	"strings"
	"testing"

	"github.com/belay-sh/belay/internal/opsenv"
	"github.com/belay-sh/belay/inventory"
)

// TestResizeCellFlag: a malformed --cell, an unknown cell and a cell without
// its own pair are refused before any host is contacted.
func TestResizeCellFlag(t *testing.T) {
	for _, tc := range []struct{ cell, want string }{
		{"shop", `--cell "shop": expected APP/CELL`},
		{"shop/", "expected APP/CELL"},
		{"shop/c1/x", "expected APP/CELL"},
		{"shop/c9", "app shop has no cell c9"},
		{"nosuch/c1", "no app nosuch"},
	} {
		o := &Options{
			Inventory: func(string) (*inventory.Inventory, error) {
				return inventory.Load("../../../replace/testdata/inventory.json")
			},
			Connect: func(*inventory.Inventory, opsenv.Flags, func(string) string) (Conn, error) {
				t.Fatalf("--cell %s: connected", tc.cell)
				return nil, nil
			},
			Cell: tc.cell, Size: "cpx42",
		}
		if err := RunResize(context.Background(), o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("--cell %s: %v, want %q", tc.cell, err, tc.want)
		}
	}
}

// TestReplaceGuardsDedicatedCellServer: a dedicated cell's server boots
// with the pair's DATABASE_URL, so replacing it is refused (before
// anything changes) while the guard cannot see the cell's data copied.
func TestReplaceGuardsDedicatedCellServer(t *testing.T) {
	c, opts, _, run := setup(t, "shop-1", "--yes")
	opts.Inventory = func(string) (*inventory.Inventory, error) {
		inv, err := inventory.Load("../../../replace/testdata/inventory.json")
		if err != nil {
			return nil, err
		}
		a := inv.App("shop")
		a.Cells = []inventory.Cell{{Name: "c2", Hosts: []string{"shop-1", "shop-2"}, Database: "shop_c2",
			DBNodes: []string{"shop-c2-db-1", "shop-c2-db-2"}, Formation: "shop_c2"}}
		return inv, nil
	}
	err := run()
	if err == nil || !strings.Contains(err.Error(), "replace shop-1 refused, nothing changed: cell shop/c2 is dedicated") {
		t.Fatalf("replace of an uncopied dedicated cell's server: %v", err)
	}
	for _, l := range c.log {
		if strings.HasPrefix(l, "REPLACE") || strings.HasPrefix(l, "HOLD") {
			t.Errorf("ran %s", l)
		}
	}
}
