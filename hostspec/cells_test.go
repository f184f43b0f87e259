package hostspec

import (
	"strings"
	"testing"

	"github.com/belay-sh/belay/config"
	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/roles"
	"github.com/belay-sh/belay/topology"
)

// cellsConfig gives the example's first app two cells (c1, eu-2) behind routers.
func cellsConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg := hetznerPrimary(t)
	a := &cfg.Apps[0]
	a.Cells = []config.Cell{
		{Name: "c1", Replicas: 2, Size: a.Size, StandbySize: a.StandbySize, Database: config.DatabaseShared},
		{Name: "eu-2", Replicas: 3, Size: a.Size, StandbySize: a.StandbySize, Database: config.DatabaseShared},
	}
	a.Router = &config.Router{Replicas: 2, Size: a.Size, StandbySize: a.StandbySize, DefaultCell: "c1", UnknownShop: "default"}
	return cfg
}

func TestBuildCellsLab(t *testing.T) {
	cfg := cellsConfig(t)
	specs, topo := build(t, cfg, true, nil)
	app := cfg.Apps[0].Name
	for name, s := range specs {
		if _, err := roles.Render(s); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	c1, eu2 := topo.Cell(app, "c1"), topo.Cell(app, "eu-2")
	r := specs[topo.Routers[app].Hosts[0]].Router
	if r == nil || r.VRRP == nil || r.VRRP.VIP != LabVIP(0) || r.VRRP.RouterID != firstRouterID {
		t.Fatalf("router spec = %+v", r)
	}
	want := []roles.RouterCell{{Name: "c1", Address: LabCellVIP(0), Port: 80}, {Name: "eu-2", Address: LabCellVIP(1), Port: 80}}
	if len(r.Cells) != 2 || r.Cells[0] != want[0] || r.Cells[1] != want[1] || r.UnknownShop != "default" || r.DefaultCell != "c1" {
		t.Errorf("router cells = %+v, want %+v", r.Cells, want)
	}
	sr := specs[topo.Routers[app].Standby].Router
	if sr == nil || !sr.Standby || sr.VRRP != nil || sr.Cells[0].Address != topo.Host(c1.Standby).PrivateAddress.String() {
		t.Errorf("standby router = %+v", sr)
	}
	m := specs[eu2.Hosts[2]].App
	if m.VRRP.RouterID != CellRouterID(1) || m.VRRP.VIP != LabCellVIP(1) || len(m.VRRP.Peers) != 2 {
		t.Errorf("eu-2-3 VRRP = %+v", m.VRRP)
	}
	if !strings.Contains(m.DatabaseURL, "://"+eu2.Database+":") || !strings.HasSuffix(strings.Split(m.DatabaseURL, "?")[0], "/"+eu2.Database) {
		t.Errorf("cell database URL = %s, want role and database %s", m.DatabaseURL, eu2.Database)
	}
	if strings.Contains(specs[c1.Hosts[0]].App.DatabaseURL, "://app:") {
		t.Error("a cell server got the stack's app role")
	}
	db := specs[topo.DBNodes[0]].DB
	if len(db.Tenants) != 2 || db.Tenants[1].Database != eu2.Database || len(db.Tenants[1].AllowFrom) != 3 {
		t.Fatalf("tenants = %+v", db.Tenants)
	}
	for _, n := range append(append([]string{}, c1.Hosts...), topo.Routers[app].Hosts...) {
		if !contains(db.AllowFrom, topo.Host(n).PrivateAddress.String()) {
			t.Errorf("db AllowFrom lacks %s", n)
		}
	}
	if contains(db.Tenants[0].AllowFrom, topo.Host(eu2.Hosts[0]).PrivateAddress.String()) {
		t.Error("cell c1's database admits eu-2's servers")
	}
	sdb := specs[topo.StandbyDB].StandbyDB
	if !contains(sdb.AllowFrom, topo.Host(c1.Standby).PrivateAddress.String()) {
		t.Errorf("standby DB AllowFrom %v lacks %s", sdb.AllowFrom, c1.Standby)
	}
	if len(sdb.Tenants) != 2 || len(sdb.Tenants[0].AllowFrom) != 1 || sdb.Tenants[0].AllowFrom[0] != topo.Host(c1.Standby).PrivateAddress.String() {
		t.Errorf("standby DB tenants = %+v, want each cell's standby server", sdb.Tenants)
	}
	if specs[topo.Routers[app].Hosts[0]].Roles[0] != inventory.RoleRouter {
		t.Error("router role")
	}
}

func TestBuildCellsCloud(t *testing.T) {
	cfg := cellsConfig(t)
	app := cfg.Apps[0].Name
	t.Run("missing cell floating IP", func(t *testing.T) {
		topo, _ := buildTopo(t, cfg)
		env, err := DefaultEnv(cfg, topo, false)
		if err != nil {
			t.Fatal(err)
		}
		env.Sites[inventory.Primary] = withClaim(env.Sites[inventory.Primary])
		standbyAddrs(topo, &env)
		specs, err := Build(cfg, topo, "test", env)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := roles.Render(specs[topo.Routers[app].Hosts[0]]); err == nil || !strings.Contains(err.Error(), "Spec.Router.Cells[0].Address") {
			t.Fatalf("Render(router) = %v, want a missing cell address error", err)
		}
	})
	t.Run("floating IPs given", func(t *testing.T) {
		topo0, _ := buildTopo(t, cfg)
		specs, topo := build(t, cfg, false, func(e *Env) {
			e.Sites[inventory.Primary] = withClaim(e.Sites[inventory.Primary])
			standbyAddrs(topo0, e)
			e.VIPs[app+"-router"] = VIP{Address: "198.51.100.1", Public: "198.51.100.1"}
			e.VIPs[app+"-c1"] = VIP{Address: "198.51.100.2", Public: "198.51.100.2"}
			e.VIPs[app+"-eu-2"] = VIP{Address: "198.51.100.3", Public: "198.51.100.3"}
		})
		r := specs[topo.Routers[app].Hosts[1]].Router
		if r.Cells[1].Address != "198.51.100.3" || r.VRRP.VIP != "198.51.100.1" || r.VRRP.Priority != topPriority-10 {
			t.Errorf("router = %+v vrrp %+v", r.Cells, r.VRRP)
		}
	})
	t.Run("unknown group", func(t *testing.T) {
		topo, _ := buildTopo(t, cfg)
		env, _ := DefaultEnv(cfg, topo, true)
		env.VIPs[app] = VIP{Address: "10.213.0.99"}
		if _, err := Build(cfg, topo, "test", env); err == nil || !strings.Contains(err.Error(), "no such app, router tier or cell") {
			t.Fatalf("Build() = %v: an app with cells has no VIP of its own", err)
		}
	})
}

func buildTopo(t *testing.T, cfg *config.Config) (*topology.Topology, error) {
	t.Helper()
	topo, err := topology.Plan(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return topo, nil
}

func withClaim(s SiteEnv) SiteEnv { s.ClaimToken = "hc-token"; return s }

// standbyAddrs passes the standby site's (DigitalOcean) assigned addresses.
func standbyAddrs(topo *topology.Topology, e *Env) {
	for _, h := range topo.Hosts {
		if h.Site == inventory.Standby {
			e.Addresses[h.Name] = h.PrivateAddress.String()
		}
	}
}
