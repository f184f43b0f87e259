package lab

import (
	"path/filepath"
	"testing"

	"github.com/belay-sh/belay/hostspec"
	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/roles"
	"github.com/belay-sh/belay/topology"
)

// TestCellsStackPlans walks lab/cells-stack.yaml through what `belay lab up`
// does before it starts a machine: load, plan, the lab's address checks, the
// inventory and every machine's user data.
func TestCellsStackPlans(t *testing.T) {
	const seed = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGf2dDm0m3ka+P5OhGw3qJsnOhCTcDpVEd8PT8zQvQ0I belay-lab-admin"
	cfg, err := LoadStack(StackInput{File: filepath.Join("cells-stack.yaml")}, seed, key)
	if err != nil {
		t.Fatal(err)
	}
	topo, err := topology.Plan(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkPlan(topo, len(cfg.Apps)); err != nil {
		t.Fatal(err)
	}
	if err := checkCellVIPs(topo, len(cfg.Apps)); err != nil {
		t.Fatal(err)
	}
	if got := len(topo.Hosts); got != 17 {
		t.Errorf("%d machines, expected 17 (5 DB/backup, 2+1 routers, 2x(2+1) cells, c2's own pair and standby database)", got)
	}
	inv, err := buildInventory(cfg, topo, StackName)
	if err != nil {
		t.Fatal(err)
	}
	a := inv.App("shop")
	if a == nil || a.Router == nil || a.Router.VIP != hostspec.LabVIP(0) || len(a.Cells) != 2 ||
		a.Cells[0].VIP != hostspec.LabCellVIP(0) || a.Cells[1].VIP != hostspec.LabCellVIP(1) || a.Router.UnknownShop != "404" {
		t.Fatalf("inventory app = %+v", a)
	}
	if hs := inv.CellHosts("shop", "c2"); len(hs) != 2 || hs[0].Cell != "c2" {
		t.Errorf("CellHosts(shop, c2) = %+v", hs)
	}
	if c1, c2 := a.Cells[0], a.Cells[1]; c1.Dedicated() || !c2.Dedicated() || len(c2.DBNodes) != 2 || c2.StandbyDB == "" || inv.Host(c2.StandbyDB) == nil {
		t.Errorf("cells = %+v, want c1 on the shared cluster and c2 with its own pair and standby database", a.Cells)
	}
	if len(inv.WithRole(inventory.RoleRouter)) != 2 || len(inv.WithRole(inventory.RoleStandbyRouter)) != 1 {
		t.Error("router hosts missing from the inventory")
	}
	env, err := hostspec.DefaultEnv(cfg, topo, true)
	if err != nil {
		t.Fatal(err)
	}
	specs, err := hostspec.Build(cfg, topo, StackName, env)
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range specs {
		if _, err := roles.Render(s); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}
