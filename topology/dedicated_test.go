package topology

import (
	"strings"
	"testing"

	"github.com/belay-sh/belay/config"
	"github.com/belay-sh/belay/inventory"
)

// dedicated makes cell name of a a dedicated cell (sized dbSize).
func dedicated(a config.App, name, dbSize string) config.App {
	a.Cells = append([]config.Cell(nil), a.Cells...)
	for i := range a.Cells {
		if a.Cells[i].Name == name {
			a.Cells[i].Database, a.Cells[i].DatabaseSize = config.DatabaseDedicated, dbSize
		}
	}
	return a
}

// TestPlanDedicatedCell: a dedicated cell's data nodes take the top of its
// block, carry role db with their app and cell, and form their own formation.
func TestPlanDedicatedCell(t *testing.T) {
	cfg := cfgWithApps(t, "10.10.0.0/24", dedicated(cellsApp("shop", 2, 2, 2), "c2", "cx43"))
	cfg.Database.StandbySize = "cx-standby"
	topo, err := Plan(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// c2 is slot 1: block 219..222, app servers 219/220, data nodes 222/221.
	for name, addr := range map[string]string{"shop-c2-1": "10.10.0.219", "shop-c2-2": "10.10.0.220", "shop-c2-db-1": "10.10.0.222", "shop-c2-db-2": "10.10.0.221"} {
		h := topo.Host(name)
		if h == nil || h.PrivateAddress.String() != addr {
			t.Errorf("%s: %+v, want address %s", name, h, addr)
		}
	}
	// On the standby site: c2's standby server in the cells area (226 - slot),
	// its standby database in the cell databases area (127 - slot).
	for name, addr := range map[string]string{"shop-c2-standby": "10.20.0.225", "shop-c2-standby-db": "10.20.0.126", "db-standby": "10.20.0.11"} {
		h := topo.Host(name)
		if h == nil || h.PrivateAddress.String() != addr || h.Site != inventory.Standby {
			t.Errorf("%s: %+v, want standby-site address %s", name, h, addr)
		}
	}
	sdb := topo.Host("shop-c2-standby-db")
	if sdb.Roles[0] != inventory.RoleStandbyDB || sdb.App != "shop" || sdb.Cell != "c2" || sdb.Size != "cx-standby" {
		t.Errorf("shop-c2-standby-db = %+v", sdb)
	}
	if got := strings.Join(topo.CellStandbyDBs(), ","); got != "shop-c2-standby-db" {
		t.Errorf("CellStandbyDBs = %q", got)
	}
	if tc := topo.DedicatedCellOf("shop-c2-standby-db"); tc == nil || tc.Name != "c2" {
		t.Errorf("DedicatedCellOf(shop-c2-standby-db) = %+v", tc)
	}
	db := topo.Host("shop-c2-db-2")
	if db.Roles[0] != inventory.RoleDB || db.App != "shop" || db.Cell != "c2" || db.Size != "cx43" || db.Index != 1 || db.Site != inventory.Primary {
		t.Errorf("shop-c2-db-2 = %+v", db)
	}
	c2, c1 := topo.Cell("shop", "c2"), topo.Cell("shop", "c1")
	if strings.Join(c2.DBNodes, ",") != "shop-c2-db-1,shop-c2-db-2" || c2.Formation != "shop_c2" || c2.Database != "shop_c2" || c2.StandbyDB != "shop-c2-standby-db" {
		t.Errorf("Cell(c2) = %+v", c2)
	}
	if len(c1.DBNodes) != 0 || c1.Formation != "" || c1.StandbyDB != "" || topo.Host("shop-c1-db-1") != nil || topo.Host("shop-c1-standby-db") != nil {
		t.Errorf("shared cell c1 got data nodes: %+v", c1)
	}
	if strings.Join(topo.DBNodes, ",") != "db-1,db-2" {
		t.Errorf("DBNodes = %v: the shared pair only", topo.DBNodes)
	}
	inv := topo.InventoryApp(config.App{Name: "shop", Cells: []config.Cell{{Name: "c1"}, {Name: "c2"}}, Router: &config.Router{UnknownShop: "404"}}, func(string) string { return "" })
	if ic := inv.Cell("c2"); ic == nil || !ic.Dedicated() || ic.Formation != "shop_c2" || len(ic.DBNodes) != 2 || ic.StandbyDB != "shop-c2-standby-db" {
		t.Errorf("inventory cell c2 = %+v", ic)
	}
	if ic := inv.Cell("c1"); ic == nil || ic.Dedicated() || ic.StandbyDB != "" {
		t.Errorf("inventory cell c1 = %+v", ic)
	}
}

// TestPlanDedicatedStable: making a cell dedicated, or adding a dedicated
// cell, moves no server and gives no two servers one address.
func TestPlanDedicatedStable(t *testing.T) {
	base := cellsApp("shop", 2, 2, 2)
	before, err := Plan(cfgWithApps(t, "10.10.0.0/24", base, config.App{Name: "admin", Replicas: 2}))
	if err != nil {
		t.Fatal(err)
	}
	for name, a := range map[string]config.App{
		"c2 becomes dedicated":   dedicated(base, "c2", "cx33"),
		"add a dedicated cell":   dedicated(cellsApp("shop", 3, 2, 2), "c3", "cx33"),
		"every cell dedicated":   dedicated(dedicated(cellsApp("shop", config.MaxCells, 2, 2), "c1", "cx33"), "c16", "cx33"),
		"dedicated + router max": dedicated(cellsApp("shop", 2, 2, AppBlock), "c1", "cx33"),
	} {
		t.Run(name, func(t *testing.T) {
			after, err := Plan(cfgWithApps(t, "10.10.0.0/24", a, config.App{Name: "admin", Replicas: 2}))
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range before.Hosts {
				if x := after.Host(h.Name); x == nil || x.PrivateAddress != h.PrivateAddress {
					t.Errorf("%s: %v before, %+v after", h.Name, h.PrivateAddress, x)
				}
			}
			seen := map[string]string{}
			for _, h := range after.Hosts {
				k := string(h.Site) + h.PrivateAddress.String()
				if o, dup := seen[k]; dup {
					t.Errorf("%s and %s share %s", h.Name, o, h.PrivateAddress)
				}
				seen[k] = h.Name
			}
		})
	}
	t.Run("three app servers in a dedicated cell", func(t *testing.T) {
		_, err := Plan(cfgWithApps(t, "10.10.0.0/24", dedicated(cellsApp("shop", 1, 3, 2), "c1", "cx33")))
		if err == nil || !strings.Contains(err.Error(), "belay:apps[0].cells[0].replicas") {
			t.Errorf("err = %v, want cells[0].replicas refused", err)
		}
	})
}

// TestPlanCellStandbyDBStable: a dedicated cell's standby database keeps its
// standby-site address when cells, apps or other apps with cells are added,
// and the standby network must hold every area's cell databases once any
// cell is dedicated (whole areas, as checkCellAreas does for the cells).
func TestPlanCellStandbyDBStable(t *testing.T) {
	shop := dedicated(cellsApp("shop", 2, 2, 2), "c2", "cx33")
	before, err := Plan(cfgWithApps(t, "10.10.0.0/24", shop, config.App{Name: "admin", Replicas: 2}))
	if err != nil {
		t.Fatal(err)
	}
	after, err := Plan(cfgWithApps(t, "10.10.0.0/23",
		dedicated(dedicated(cellsApp("shop", 4, 2, 2), "c2", "cx33"), "c4", "cx33"),
		config.App{Name: "admin", Replicas: 2},
		dedicated(cellsApp("mall", 2, 2, 2), "c1", "cx33")))
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range before.Hosts {
		if h.Site != inventory.Standby {
			continue
		}
		if x := after.Host(h.Name); x == nil || x.PrivateAddress != h.PrivateAddress {
			t.Errorf("%s: %v before, %+v after", h.Name, h.PrivateAddress, x)
		}
	}
	// mall is the second area: slot 16, at 127 - 16.
	if h := after.Host("mall-c1-standby-db"); h == nil || h.PrivateAddress.String() != "10.20.0.111" {
		t.Errorf("mall-c1-standby-db = %+v, want 10.20.0.111", h)
	}
	seen := map[string]string{}
	for _, h := range after.Hosts {
		k := string(h.Site) + h.PrivateAddress.String()
		if o, dup := seen[k]; dup {
			t.Errorf("%s and %s share %s", h.Name, o, h.PrivateAddress)
		}
		seen[k] = h.Name
	}

	t.Run("standby network too small for the cell databases", func(t *testing.T) {
		cfg := cfgWithApps(t, "10.10.0.0/22", shop)
		cfg.Network.StandbyCIDR = "10.20.0.0/25"
		for _, n := range []string{"b", "c"} {
			cfg.Apps = append(cfg.Apps, cellsApp(n, 1, 2, 2))
		}
		_, err := Plan(cfg)
		if err == nil || !strings.Contains(err.Error(), "belay:network.standbyCidr") || !strings.Contains(err.Error(), "standby databases") {
			t.Errorf("err = %v, want the standby network refused for its cell databases", err)
		}
		// The same stack without a dedicated cell fits (nothing lives there).
		cfg.Apps[0] = cellsApp("shop", 2, 2, 2)
		cfg.Apps = cfg.Apps[:2]
		if _, err := Plan(cfg); err != nil {
			t.Errorf("two shared cells apps on a /25: %v", err)
		}
	})
}
