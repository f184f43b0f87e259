package replace

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/belay-sh/belay/hostcmd"
	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/remote/remotetest"
)

// dedicatedInventory adds cell c2 of app shop with its own pair
// shop-c2-db-1/-2 in formation shop_c2.
func dedicatedInventory(t *testing.T) *inventory.Inventory {
	t.Helper()
	inv := testInventory(t)
	for i, n := range []string{"shop-c2-db-1", "shop-c2-db-2"} {
		h := *inv.Host("db-2")
		h.Name, h.App, h.Cell, h.PrivateAddress = n, "shop", "c2", []string{"10.213.0.221", "10.213.0.222"}[i]
		inv.Hosts = append(inv.Hosts, h)
	}
	a := inv.App("shop")
	a.Cells = append(a.Cells, inventory.Cell{Name: "c2", Database: "shop_c2", DBNodes: []string{"shop-c2-db-1", "shop-c2-db-2"}, Formation: "shop_c2"})
	return inv
}

// cellPair is the facts of the cell's pair with primary as its primary.
func cellPair(primary string) Facts {
	f := Facts{DB: map[string]NodeState{}}
	for _, n := range []string{"shop-c2-db-1", "shop-c2-db-2"} {
		st := "secondary"
		if n == primary {
			st = "primary"
		}
		f.DB[n] = NodeState{Reported: st, Goal: st}
	}
	return f
}

// TestPlanReplaceDedicatedCellDB: a dedicated cell's data node is replaced
// within its own formation: the peer is the cell's other node, the
// switchover and the waits use formation shop_c2's monitor queries (argvs
// the monitor's sudoers list for it); the stack's pair keeps "default"'s.
func TestPlanReplaceDedicatedCellDB(t *testing.T) {
	inv := dedicatedInventory(t)
	allowed := hostcmd.ForHost(hostcmd.Host{Roles: []inventory.Role{inventory.RoleDBMonitor}, Formations: []string{"shop_c2"}})
	cellArgv := func(build func(string) (string, error)) []string {
		sql, err := build("shop_c2")
		if err != nil {
			t.Fatal(err)
		}
		return hostcmd.MonitorPsql(sql)
	}
	p, err := PlanReplace(inv, "shop-c2-db-1", cellPair("shop-c2-db-1"))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, s := range p.Steps {
		ids = append(ids, s.ID)
		if s.Host == "db-monitor" {
			if strings.Contains(strings.Join(s.Argv, " "), "'default'") {
				t.Errorf("step %s reads the stack's formation: %q", s.ID, s.Argv)
			}
			if !slices.ContainsFunc(allowed, func(c []string) bool { return slices.Equal(c, s.Argv) }) {
				t.Errorf("step %s: %q is not allowed by the monitor's sudoers", s.ID, s.Argv)
			}
		}
	}
	for _, want := range []string{"switchover/shop-c2-db-1", "promoted/shop-c2-db-2", "replace/shop-c2-db-1", "rejoin/shop-c2-db-1", "streaming/shop-c2-db-2"} {
		if !slices.Contains(ids, want) {
			t.Errorf("plan lacks step %s: %v", want, ids)
		}
	}
	if s := p.Steps[0]; s.ID != "switchover/shop-c2-db-1" || !slices.Equal(s.Argv, cellArgv(hostcmd.FormationSwitchoverSQL)) {
		t.Errorf("first step %s %q, want the cell formation's switchover", s.ID, s.Argv)
	}
	// The secondary: no switchover.
	if p, err := PlanReplace(inv, "shop-c2-db-2", cellPair("shop-c2-db-1")); err != nil || strings.HasPrefix(p.Steps[0].ID, "switchover/") {
		t.Errorf("replacing the secondary: %v %v", p, err)
	}
	// The peer is not a settled secondary: refused, naming the cell's node.
	f := cellPair("shop-c2-db-1")
	f.DB["shop-c2-db-2"] = NodeState{Reported: "catchingup", Goal: "secondary"}
	if _, err := PlanReplace(inv, "shop-c2-db-1", f); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "shop-c2-db-2") {
		t.Errorf("peer catching up: %v", err)
	}
	// The stack's pair is untouched: default formation argvs.
	p, err = PlanReplace(inv, "db-1", whole("db-1"))
	if err != nil || p.Steps[0].ID != "switchover/db-1" || !slices.Equal(p.Steps[0].Argv, hostcmd.MonitorPsql(hostcmd.SwitchoverSQL)) {
		t.Errorf("the stack's db-1: %+v %v", p, err)
	}
	// A cell formation that is not an identifier is refused before any step.
	inv.App("shop").Cells[len(inv.App("shop").Cells)-1].Formation = "x'; DROP TABLE y; --"
	if _, err := PlanReplace(inv, "shop-c2-db-1", cellPair("shop-c2-db-1")); err == nil || !strings.Contains(err.Error(), "cells.c2") {
		t.Errorf("bad formation: %v", err)
	}
}

// TestObserveDedicatedCellDB: Observe reads the cell's formation on the
// monitor for its data node, the default formation for the stack's.
func TestObserveDedicatedCellDB(t *testing.T) {
	inv := dedicatedInventory(t)
	nodes := func(f string) string {
		sql, _ := hostcmd.FormationNodesSQL(f)
		return strings.Join(hostcmd.MonitorPsql(sql), " ")
	}
	r := &remotetest.Runner{Handle: func(c remotetest.Call) ([]byte, error) {
		switch c.Cmd {
		case nodes("shop_c2"):
			return []byte("shop-c2-db-1|primary|primary\nshop-c2-db-2|secondary|secondary\n"), nil
		case nodes("default"):
			return []byte("db-1|primary|primary\ndb-2|secondary|secondary\n"), nil
		}
		return nil, errors.New("unexpected " + c.Cmd)
	}}
	if f := Observe(context.Background(), r, inv, "shop-c2-db-2"); f.DBError != "" || len(f.DB) != 2 || f.DB["shop-c2-db-1"].Reported != "primary" {
		t.Errorf("cell node facts: %+v", f)
	}
	if f := Observe(context.Background(), r, inv, "db-2"); f.DBError != "" || f.DB["db-1"].Reported != "primary" || len(f.DB) != 2 {
		t.Errorf("stack node facts: %+v", f)
	}
}
