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
