package topology

import (
	"fmt"
	"strings"
	"testing"

	"github.com/belay-sh/belay/config"
	"github.com/belay-sh/belay/inventory"
)

func cellsApp(name string, cells, replicas, routers int) config.App {
	a := config.App{Name: name, Replicas: 2, Size: "cx23", StandbySize: "s-1vcpu-1gb", Router: &config.Router{Replicas: routers, UnknownShop: "404"}}
	for i := 1; i <= cells; i++ {
		a.Cells = append(a.Cells, config.Cell{Name: fmt.Sprintf("c%d", i), Replicas: replicas, Database: config.DatabaseShared})
	}
	return a
}

func TestPlanCellsLayout(t *testing.T) {
	topo, err := Plan(cfgWithApps(t, "10.10.0.0/24", config.App{Name: "admin", Replicas: 2}, cellsApp("shop", 2, 2, 2)))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]struct {
		site inventory.SiteName
		role inventory.Role
		addr string
		cell string
	}{
		"admin-1":             {inventory.Primary, inventory.RoleApp, "10.10.0.20", ""},
		"shop-router-1":       {inventory.Primary, inventory.RoleRouter, "10.10.0.30", ""},
		"shop-router-2":       {inventory.Primary, inventory.RoleRouter, "10.10.0.31", ""},
		"shop-router-standby": {inventory.Standby, inventory.RoleStandbyRouter, "10.20.0.21", ""},
		// Cells count down from 254-28 = 226 in blocks of 4.
		"shop-c1-1":       {inventory.Primary, inventory.RoleApp, "10.10.0.223", "c1"},
		"shop-c1-2":       {inventory.Primary, inventory.RoleApp, "10.10.0.224", "c1"},
		"shop-c2-1":       {inventory.Primary, inventory.RoleApp, "10.10.0.219", "c2"},
		"shop-c1-standby": {inventory.Standby, inventory.RoleStandbyApp, "10.20.0.226", "c1"},
		"shop-c2-standby": {inventory.Standby, inventory.RoleStandbyApp, "10.20.0.225", "c2"},
	}
	for name, w := range want {
		h := topo.Host(name)
		if h == nil {
			t.Errorf("%s: not planned", name)
			continue
		}
		if h.Site != w.site || h.Roles[0] != w.role || h.PrivateAddress.String() != w.addr || h.Cell != w.cell || h.App == "" {
			t.Errorf("%s: got site=%s role=%s addr=%s cell=%q app=%q, want %+v", name, h.Site, h.Roles[0], h.PrivateAddress, h.Cell, h.App, w)
		}
	}
	if topo.Host("shop-1") != nil || topo.Host("shop-standby") != nil || len(topo.AppHosts["shop"]) != 0 {
		t.Error("an app with cells has no servers of its own")
	}
	c := topo.Cell("shop", "c2")
	if c == nil || c.Group != "shop-c2" || c.Database != "shop_c2" || c.Slot != 1 || len(c.Hosts) != 2 || c.Standby != "shop-c2-standby" {
		t.Errorf("Cell(shop, c2) = %+v", c)
	}
	if r := topo.Routers["shop"]; r == nil || r.Group != "shop-router" || len(r.Hosts) != 2 {
		t.Errorf("Routers[shop] = %+v", r)
	}
}

// TestPlanCellsStable: adding a cell, a cell replica, a router replica, an
// app or a second app with cells never moves an existing server.
func TestPlanCellsStable(t *testing.T) {
	base := []config.App{cellsApp("shop", 2, 2, 2), {Name: "admin", Replicas: 2}}
	edits := map[string][]config.App{
		"add cell c3":            {cellsApp("shop", 3, 2, 2), base[1]},
		"add router":             {cellsApp("shop", 2, 2, 3), base[1]},
		"cell replicas to max":   {cellsApp("shop", 2, config.MaxCellReplicas, 2), base[1]},
		"fill the cells area":    {cellsApp("shop", config.MaxCells, 2, 2), base[1]},
		"add an app":             {base[0], base[1], {Name: "blog", Replicas: 2}},
		"add an app with cells":  {base[0], base[1], cellsApp("market", 2, 2, 2)},
		"add replicas elsewhere": {base[0], {Name: "admin", Replicas: AppBlock}},
	}
	before, err := Plan(cfgWithApps(t, "10.10.0.0/24", base...))
	if err != nil {
		t.Fatal(err)
	}
	for name, apps := range edits {
		t.Run(name, func(t *testing.T) {
			after, err := Plan(cfgWithApps(t, "10.10.0.0/24", apps...))
			if err != nil {
				t.Fatal(err)
			}
			if len(after.Hosts) <= len(before.Hosts) && name != "add replicas elsewhere" {
				t.Errorf("%d hosts after, %d before: the edit added nothing", len(after.Hosts), len(before.Hosts))
			}
			for _, h := range before.Hosts {
				a := after.Host(h.Name)
				if a == nil {
					t.Errorf("%s disappeared", h.Name)
					continue
				}
				if a.PrivateAddress != h.PrivateAddress {
					t.Errorf("%s moved from %s to %s", h.Name, h.PrivateAddress, a.PrivateAddress)
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
}

func TestPlanCellsErrors(t *testing.T) {
	tests := []struct {
		name    string
		cfg     *config.Config
		wantErr string
	}{
		{"apps reach the cells area", cfgWithApps(t, "10.10.0.0/25", cellsApp("shop", 1, 2, 2), config.App{Name: "a", Replicas: 2}), "belay:network.primaryCidr"},
		{"name clash with a plain app", cfgWithApps(t, "10.10.0.0/24", cellsApp("shop", 1, 2, 2), config.App{Name: "shop-c1", Replicas: 2}), "shop-c1-1"},
		{"no router", cfgWithApps(t, "10.10.0.0/24", func() config.App { a := cellsApp("shop", 1, 2, 2); a.Router = nil; return a }()), "router"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Plan(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Plan() error = %v, want one mentioning %q", err, tt.wantErr)
			}
		})
	}
}
