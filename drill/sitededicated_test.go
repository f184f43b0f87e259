package drill

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/remote/remotetest"
	"github.com/belay-sh/belay/seedkeys"
)

// dedicatedSiteInventory is cellsInventory with c2 on its own pair and
// standby database, and the cells' servers as hosts (c2's listed first).
func dedicatedSiteInventory(t *testing.T) *inventory.Inventory {
	t.Helper()
	inv := cellsInventory(t)
	tmpl := *inv.Host(inv.Database.Nodes[0])
	host := func(name, cell string, site inventory.SiteName, role inventory.Role, addr string) inventory.Host {
		h := tmpl
		h.Name, h.App, h.Cell, h.Site, h.Roles, h.PrivateAddress, h.SSHAddress = name, "shop", cell, site, []inventory.Role{role}, addr, addr
		return h
	}
	inv.Hosts = append([]inventory.Host{
		host("shop-c2-1", "c2", inventory.Primary, inventory.RoleApp, "10.213.0.66"),
		host("shop-c1-1", "c1", inventory.Primary, inventory.RoleApp, "10.213.0.62"),
		host("shop-c2-db-1", "c2", inventory.Primary, inventory.RoleDB, "10.213.0.70"),
		host("shop-c2-db-2", "c2", inventory.Primary, inventory.RoleDB, "10.213.0.69"),
		host("shop-c2-standby", "c2", inventory.Standby, inventory.RoleStandbyApp, "10.213.0.190"),
		host("shop-c2-standby-db", "c2", inventory.Standby, inventory.RoleStandbyDB, "10.213.0.191"),
	}, inv.Hosts...)
	c2 := &inv.Apps[0].Cells[1]
	c2.DBNodes, c2.Formation, c2.Standby, c2.StandbyDB = []string{"shop-c2-db-1", "shop-c2-db-2"}, "shop_c2", "shop-c2-standby", "shop-c2-standby-db"
	return inv
}

// TestSiteDedicatedCellWriters: the site drill writes into each dedicated
// cell's own database as the cell's role through the cell's own server,
// reads it back on the cell's standby database through the cell's standby
// server, and refuses a cell it could not measure; the stack's writes never
// tunnel through a dedicated cell's server (its pair admits it, the stack's
// PostgreSQL does not).
func TestSiteDedicatedCellWriters(t *testing.T) {
	inv := dedicatedSiteInventory(t)
	const seed = "0123456789abcdef0123456789abcdef"
	env := &Env{Inv: inv, Seed: seed}
	ws, err := dedicatedCellWriters(env, 42)
	if err != nil {
		t.Fatal(err)
	}
	if len(ws) != 1 {
		t.Fatalf("%d writers, want one (c2; c1 is on the shared cluster)", len(ws))
	}
	pw, err := seedkeys.Password(seed, inv.Stack, "postgres/cell/shop/c2")
	if err != nil {
		t.Fatal(err)
	}
	w := ws[0]
	ep := w.w.Endpoint
	if ep.User != "shop_c2" || ep.DB != "shop_c2" || ep.Via != "shop-c2-1" || ep.pass != pw || w.w.Base != 42 {
		t.Errorf("endpoint %+v base %d, want shop_c2 as shop_c2 via shop-c2-1 with the cell's password", ep, w.w.Base)
	}
	if !slices.Equal(w.w.Addrs, []string{"10.213.0.70:5432", "10.213.0.69:5432"}) {
		t.Errorf("addrs %v, want the cell's pair", w.w.Addrs)
	}
	inv.Apps[0].Cells[1].StandbyDB = ""
	if _, err := dedicatedCellWriters(env, 42); err == nil || !strings.Contains(err.Error(), `standby database ""`) {
		t.Errorf("no standby database: %v", err)
	}

	// Only shop-c2-1 answers SSH: the stack's tunnel must not use it.
	r := &remotetest.Runner{Handle: func(c remotetest.Call) ([]byte, error) {
		if c.Host == "shop-c2-1" {
			return nil, nil
		}
		return nil, errors.New("connection refused")
	}}
	env = &Env{Inv: dedicatedSiteInventory(t), Hosts: r}
	if h, err := tunnelHost(context.Background(), env, inventory.Primary); err == nil {
		t.Errorf("tunnelHost = %q, want none (shop-c2-1 serves a dedicated cell)", h)
	}
	for _, c := range r.Snapshot() {
		if c.Host == "shop-c2-1" {
			t.Errorf("tunnelHost tried %s", c.Host)
		}
	}
}
