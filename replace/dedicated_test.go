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

// TestPlanResizeDedicatedCell: `belay db resize --cell shop/c2` rolls the
// cell's own pair within its formation and records the cell's databaseSize;
// a shared cell or an unknown one is refused.
func TestPlanResizeDedicatedCell(t *testing.T) {
	inv := dedicatedInventory(t)
	for k, s := range inv.Sites {
		s.Provider = "hetzner"
		inv.Sites[k] = s
	}
	p, err := PlanResizeCell(inv, "shop", "c2", "cpx42", cellPair("shop-c2-db-2"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"set-size",
		"record-volume/shop-c2-db-1", "stop-keeper/shop-c2-db-1", "resize/shop-c2-db-1", "boot/shop-c2-db-1", "volume-kept/shop-c2-db-1", "start-keeper/shop-c2-db-1", "rejoin/shop-c2-db-1", "streaming/shop-c2-db-2",
		"switchover/shop-c2-db-2", "promoted/shop-c2-db-1", "writable/shop-c2-db-1",
		"record-volume/shop-c2-db-2", "stop-keeper/shop-c2-db-2", "resize/shop-c2-db-2", "boot/shop-c2-db-2", "volume-kept/shop-c2-db-2", "start-keeper/shop-c2-db-2", "rejoin/shop-c2-db-2", "streaming/shop-c2-db-1"}
	if got := ids(p); !slices.Equal(got, want) {
		t.Errorf("steps\n got %v\nwant %v", got, want)
	}
	ci := len(inv.App("shop").Cells) - 1
	if k := p.Steps[0].SizeKey; k == nil || k.Path() != "belay:apps[0].cells["+string(rune('0'+ci))+"].databaseSize" || k.App != "shop" || k.Cell != "c2" {
		t.Errorf("set-size key %+v", k)
	}
	for _, s := range p.Steps {
		if s.Host == "db-monitor" && !strings.Contains(strings.Join(s.Argv, " "), "'shop_c2'") {
			t.Errorf("step %s does not name the cell's formation: %q", s.ID, s.Argv)
		}
	}
	if _, err := PlanResizeCell(inv, "shop", "c9", "cpx42", cellPair("shop-c2-db-2")); err == nil || !strings.Contains(err.Error(), "no cell c9") {
		t.Errorf("unknown cell: %v", err)
	}
	inv.App("shop").Cells = append([]inventory.Cell{{Name: "c1", Database: "shop_c1"}}, inv.App("shop").Cells...)
	if _, err := PlanResizeCell(inv, "shop", "c1", "cpx42", cellPair("shop-c2-db-2")); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "no PostgreSQL pair of its own") {
		t.Errorf("shared cell: %v", err)
	}
	// The stack's resize still records belay:database.size.
	if p, err := PlanResize(inv, "cpx42", whole("db-2")); err != nil || p.Steps[0].SizeKey != nil {
		t.Errorf("stack resize: %v %+v", err, p)
	}
}

// TestPulumiSetCellSize: the cell's databaseSize is written only after the
// stack config's apps[i].cells[j] is checked to be that cell.
func TestPulumiSetCellSize(t *testing.T) {
	key := &SizeKey{App: "shop", AppIndex: 0, Cell: "c2", CellIndex: 1}
	for _, tc := range []struct {
		names map[string]string
		ok    bool
	}{
		{map[string]string{"belay:apps[0].name": "shop", "belay:apps[0].cells[1].name": "c2"}, true},
		{map[string]string{"belay:apps[0].name": "shop", "belay:apps[0].cells[1].name": "c3"}, false},
	} {
		var calls []string
		p := &Pulumi{Stack: "prod", Run: func(_ context.Context, _ string, argv ...string) ([]byte, error) {
			calls = append(calls, strings.Join(argv, " "))
			if argv[2] == "get" {
				return []byte(tc.names[argv[4]] + "\n"), nil
			}
			return nil, nil
		}}
		err := p.SetSize(context.Background(), key, "cpx42")
		set := slices.Contains(calls, "pulumi config set --path belay:apps[0].cells[1].databaseSize cpx42 --stack prod")
		if (err == nil) != tc.ok || set != tc.ok {
			t.Errorf("names %v: err %v, calls %q", tc.names, err, calls)
		}
	}
}
