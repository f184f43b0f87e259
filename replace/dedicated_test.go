package replace

import (
	"errors"
	"strings"
	"testing"

	"github.com/belay-sh/belay/inventory"
)

// TestPlanReplaceDedicatedCellDB: a dedicated cell's data node is refused,
// naming the cell, instead of being planned against the stack's pair.
func TestPlanReplaceDedicatedCellDB(t *testing.T) {
	inv := testInventory(t)
	h := *inv.Host("db-2")
	h.Name, h.App, h.Cell, h.PrivateAddress = "shop-c2-db-1", "shop", "c2", "10.213.0.222"
	inv.Hosts = append(inv.Hosts, h)
	if _, err := PlanReplace(inv, "shop-c2-db-1", whole("db-1")); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "cell c2's own PostgreSQL pair") {
		t.Errorf("PlanReplace = %v, want refused naming the cell", err)
	}
	if p, err := PlanReplace(inv, "db-2", whole("db-1")); err != nil || p.Role != string(inventory.RoleDB) {
		t.Errorf("the stack's db-2: %+v %v", p, err)
	}
}
