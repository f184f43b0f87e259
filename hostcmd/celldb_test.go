package hostcmd

import (
	"slices"
	"testing"

	"github.com/belay-sh/belay/inventory"
)

// TestCellDBCommands: a pair's node gets every verb but dump for its database, a
// stack node the reading ones for each moved cell, a bad name nothing.
func TestCellDBCommands(t *testing.T) {
	has := func(cmds [][]string, argv []string) bool {
		return slices.ContainsFunc(cmds, func(c []string) bool { return slices.Equal(c, argv) })
	}
	pair := ForHost(Host{Roles: []inventory.Role{inventory.RoleDB}, CellDB: "shop_c2"})
	stack := ForHost(Host{Roles: []inventory.Role{inventory.RoleDB}, MovedCells: []string{"shop_c2", "web_eu_1"}})
	for _, v := range CellDBVerbs {
		if got, want := has(pair, CellDB(v, "shop_c2")), slices.Contains(CellDBPairVerbs, v); got != want {
			t.Errorf("pair node %s: %v, want %v (every verb but dump)", v, got, want)
		}
		if got, want := has(stack, CellDB(v, "web_eu_1")), slices.Contains(CellDBSourceVerbs, v); got != want {
			t.Errorf("stack node %s web_eu_1: %v, want %v", v, got, want)
		}
	}
	for _, bad := range []string{"postgres", "template1", "pg_x", "Shop", "shop c2", "shop;c2", "", "_x", "pg_auto_failover"} {
		if CheckCellDatabase(bad) == nil {
			t.Errorf("CheckCellDatabase(%q) accepted", bad)
		}
		cmds := ForHost(Host{Roles: []inventory.Role{inventory.RoleDB}, CellDB: bad, MovedCells: []string{bad}})
		for _, c := range cmds {
			if len(c) > 2 && c[2] == "cell-db" {
				t.Errorf("%q got %q", bad, c)
			}
		}
	}
	// The app role never gets the helper.
	for _, c := range ForHost(Host{Roles: []inventory.Role{inventory.RoleApp}, Apps: []string{"shop"}, CellDB: "shop_c2"}) {
		if len(c) > 2 && c[2] == "cell-db" {
			t.Errorf("app server got %q", c)
		}
	}
}
