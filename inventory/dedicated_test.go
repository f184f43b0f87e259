package inventory

import (
	"strings"
	"testing"
)

// dedicatedSample is sample() with app shop split into cell c1, which has
// its own pair shop-c1-db-1/-2 in formation shop_c1.
func dedicatedSample() *Inventory {
	inv := sample()
	for i := range inv.Hosts {
		if inv.Hosts[i].App == "shop" {
			inv.Hosts[i].Cell = "c1"
		}
	}
	for _, n := range []string{"shop-c1-db-1", "shop-c1-db-2"} {
		h := inv.Hosts[2] // db-1
		h.Name, h.App, h.Cell = n, "shop", "c1"
		inv.Hosts = append(inv.Hosts, h)
	}
	sdb := inv.Hosts[2]
	sdb.Name, sdb.App, sdb.Cell, sdb.Site, sdb.Roles = "shop-c1-standby-db", "shop", "c1", Standby, []Role{RoleStandbyDB}
	sdb.PrivateAddress, sdb.SSHAddress = "10.213.0.191", "10.213.0.191"
	inv.Hosts = append(inv.Hosts, sdb)
	a := &inv.Apps[0]
	a.Cells = []Cell{{Name: "c1", Hosts: a.Hosts, Standby: a.Standby, Database: "shop_c1", DBNodes: []string{"shop-c1-db-1", "shop-c1-db-2"}, Formation: "shop_c1", StandbyDB: "shop-c1-standby-db"}}
	a.Hosts, a.Standby = nil, ""
	a.Router = &Router{UnknownShop: "404"}
	return inv
}

func TestDedicatedCellInventory(t *testing.T) {
	inv := dedicatedSample()
	if err := inv.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if c := inv.App("shop").Cell("c1"); !c.Dedicated() {
		t.Error("Dedicated() = false")
	}
	tests := []struct {
		name   string
		mutate func(*Inventory)
		want   string
	}{
		{"db node of another cell", func(i *Inventory) { i.Host("shop-c1-db-2").Cell = "c2" }, `dbNodes: host "shop-c1-db-2" is not a [db] server of app shop cell "c1"`},
		{"db node not a db", func(i *Inventory) { i.App("shop").Cells[0].DBNodes[1] = "shop-1" }, `host "shop-1" is not a [db] server`},
		{"no formation", func(i *Inventory) { i.App("shop").Cells[0].Formation = "" }, "expected a formation exactly when"},
		{"formation without nodes", func(i *Inventory) { i.App("shop").Cells[0].DBNodes = nil }, "expected a formation exactly when"},
		{"bad formation", func(i *Inventory) { i.App("shop").Cells[0].Formation = "Shop-C1" }, "expected a lowercase identifier"},
		{"no standby db", func(i *Inventory) { i.App("shop").Cells[0].StandbyDB = "" }, `standbyDB: "" with 2 dbNodes, expected a standby-site database exactly when`},
		{"standby db on a shared cell", func(i *Inventory) {
			c := &i.App("shop").Cells[0]
			c.DBNodes, c.Formation = nil, ""
		}, `standbyDB: "shop-c1-standby-db" with 0 dbNodes, expected a standby-site database exactly when`},
		{"standby db unknown", func(i *Inventory) { i.App("shop").Cells[0].StandbyDB = "nope" }, `standbyDB: unknown host "nope"`},
		{"standby db not a standby-db", func(i *Inventory) { i.App("shop").Cells[0].StandbyDB = "shop-c1-db-1" }, `standbyDB: host "shop-c1-db-1" is not a [standby-db] server of app shop cell "c1"`},
		{"standby db of another cell", func(i *Inventory) { i.Host("shop-c1-standby-db").Cell = "c2" }, `standbyDB: host "shop-c1-standby-db" is not a [standby-db] server`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv := dedicatedSample()
			tt.mutate(inv)
			if err := inv.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate() = %v, want %q", err, tt.want)
			}
		})
	}
}
