package failover

import (
	"slices"
	"strings"
	"testing"

	"github.com/belay-sh/belay/hostcmd"
	"github.com/belay-sh/belay/inventory"
)

// cellsInventory is testdata/cells-inventory.json: testdata/inventory.json
// with app shop split into cells c1 and c2 (two app servers and a standby
// server each) behind a router pair and a standby router, as
// lab/cells-stack.yaml lays it out, with ACME TLS. mixed adds an app without
// cells (blog) next to it.
func cellsInventory(t *testing.T, mixed bool) *inventory.Inventory {
	t.Helper()
	inv, err := inventory.Load("testdata/cells-inventory.json")
	if err != nil {
		t.Fatal(err)
	}
	if mixed {
		tmpl := *inv.Host("shop-c1-1")
		host := func(name string, role inventory.Role, site inventory.SiteName, addr string) string {
			h := tmpl
			h.Name, h.App, h.Cell, h.Site, h.Roles = name, "blog", "", site, []inventory.Role{role}
			h.PrivateAddress, h.SSHAddress = addr, addr
			inv.Hosts = append(inv.Hosts, h)
			return name
		}
		inv.Apps = append(inv.Apps, inventory.App{Name: "blog", VIP: "10.213.0.101", Port: 3000, HealthPath: "/up", Domains: []string{"blog.lab.belay.test"},
			Hosts:   []string{host("blog-1", inventory.RoleApp, inventory.Primary, "10.213.0.60"), host("blog-2", inventory.RoleApp, inventory.Primary, "10.213.0.61")},
			Standby: host("blog-standby", inventory.RoleStandbyApp, inventory.Standby, "10.213.0.160")})
	}
	if err := inv.Validate(); err != nil {
		t.Fatalf("the cells fixture is not a valid inventory: %v", err)
	}
	return inv
}

// stepsOf returns the plan's steps of kind k on host (any host for "").
func stepsOf(p *Plan, k StepKind) map[string]Step {
	out := map[string]Step{}
	for _, s := range p.Steps {
		if s.Kind == k {
			out[s.ID] = s
		}
	}
	return out
}

func requireOrder(t *testing.T, p *Plan, pairs [][2]string) {
	t.Helper()
	for _, o := range pairs {
		if a, b := index(t, p, o[0]), index(t, p, o[1]); a >= b {
			t.Errorf("step %s (%d) must come before %s (%d)", o[0], a, o[1], b)
		}
	}
}

// TestPlanCellsToStandby: a stack whose app has cells switches: every
// cell's standby server checked and started, every cell server and both
// routers fenced before the promotion, the standby router's sync started
// after it and checked, DNS to the standby router, its certificate.
func TestPlanCellsToStandby(t *testing.T) {
	inv := cellsInventory(t, false)
	p, err := PlanSite(inv, ToStandby)
	if err != nil {
		t.Fatalf("PlanSite: %v", err)
	}
	if p.Refusal != "" {
		t.Fatalf("refused: %s", p.Refusal)
	}
	want := []string{
		"check-release/shop/c1", "check-release/shop/c2", "check-router/shop-router-standby", "check-standby-db",
		"fence-router/shop-router-1", "fence-router/shop-router-2",
		"fence-app/shop-c1-1", "fence-app/shop-c1-2", "fence-app/shop-c2-1", "fence-app/shop-c2-2",
		"fence-db/db-1", "fence-db/db-2", "fence-db/db-monitor", "rpo", "promote-db", "check-promoted",
		"start-app/shop-c1-standby", "health-app/shop-c1-standby", "start-app/shop-c2-standby", "health-app/shop-c2-standby",
		"start-router/shop-router-standby", "router-check/shop-router-standby",
		"dns/shop.lab.belay.test", "certificate/shop-router-standby", "verify/shop",
	}
	if got := ids(p); !slices.Equal(got, want) {
		t.Fatalf("steps:\n got %v\nwant %v", got, want)
	}
	byID := map[string]Step{}
	for _, s := range p.Steps {
		byID[s.ID] = s
	}
	for _, h := range []string{"shop-router-1", "shop-router-2"} {
		s := byID["fence-router/"+h]
		if s.Kind != KindFence || s.Host != h || !slices.Equal(s.Argv, hostcmd.FenceRouter("shop")) {
			t.Errorf("fence of router %s: %+v", h, s)
		}
		if slices.ContainsFunc(s.Argv, func(a string) bool { return strings.HasPrefix(a, "belay-app@") }) {
			t.Errorf("router %s fenced with an app unit: %v (a router runs no app)", h, s.Argv)
		}
	}
	for _, h := range []string{"shop-c1-1", "shop-c1-2", "shop-c2-1", "shop-c2-2"} {
		if s := byID["fence-app/"+h]; !slices.Equal(s.Argv, hostcmd.FenceApp("shop")) || s.Kind != KindFence {
			t.Errorf("fence of cell server %s: %+v", h, s)
		}
	}
	if s := byID["check-release/shop/c2"]; s.Host != "shop-c2-standby" || s.Commands[0] != "test -x /srv/shop/current/start" {
		t.Errorf("release check of c2: %+v", s)
	}
	if s := byID["start-router/shop-router-standby"]; !slices.Equal(s.Argv, []string{"systemctl", "start", "nginx.service", "belay-router-sync@shop.service"}) || s.Kind != KindRoot {
		t.Errorf("standby router start: %+v", s)
	}
	if s := byID["router-check/shop-router-standby"]; s.Kind != KindRouter || s.Commands[0] != RouterStatusCommand("shop") {
		t.Errorf("router check: %+v", s)
	}
	if s := byID["dns/shop.lab.belay.test"]; s.Address != "10.213.0.170" {
		t.Errorf("DNS points at %q, want the standby router 10.213.0.170", s.Address)
	}
	if s := byID["certificate/shop-router-standby"]; !slices.Equal(s.Argv, hostcmd.IssueCertificate("shop")) || s.Kind != KindCert {
		t.Errorf("certificate step: %+v", s)
	}
	if s := byID["verify/shop"]; s.Address != "10.213.0.170" || s.Domain != "shop.lab.belay.test" {
		t.Errorf("verify: %+v", s)
	}
}

// TestPlanCellsToPrimary: the way back mirrors the switch.
func TestPlanCellsToPrimary(t *testing.T) {
	inv := cellsInventory(t, false)
	p, err := PlanSite(inv, ToPrimary)
	if err != nil {
		t.Fatalf("PlanSite: %v", err)
	}
	requireOrder(t, p, [][2]string{
		{"check-reachable/shop-router-1", "fence-router/shop-router-1"},
		{"check-reachable/shop-c2-2", "fence-app/shop-c2-2"},
		{"fence-router/shop-router-2", "reseed-monitor"},
		{"fence-app/shop-c2-2", "reseed-monitor"},
		{"stop-standby-app/shop-c1-standby", "stop-standby-app/shop-c2-standby"},
		{"stop-standby-app/shop-c2-standby", "stop-standby-router/shop-router-standby"},
		{"stop-standby-router/shop-router-standby", "readonly-standby-db"},
		{"check-formation", "start-app/shop-c1-1"},
		{"start-app/shop-c2-2", "health-app/shop-c1-1"},
		{"health-app/shop-c2-2", "start-router/shop-router-1"},
		{"start-router/shop-router-2", "router-check/shop-router-1"},
		{"router-check/shop-router-2", "dns/shop.lab.belay.test"},
		{"dns/shop.lab.belay.test", "certificate/shop-router-1"},
		{"certificate/shop-router-2", "verify/shop"},
		{"verify/shop", "backup-full"},
	})
	byID := map[string]Step{}
	for _, s := range p.Steps {
		byID[s.ID] = s
	}
	if s := byID["fence-router/shop-router-1"]; s.Kind != KindRoot {
		t.Errorf("the way back fences for real (root, not skippable): %+v", s)
	}
	if s := byID["stop-standby-router/shop-router-standby"]; !slices.Equal(s.Argv, []string{"systemctl", "stop", "belay-router-sync@shop.service"}) {
		t.Errorf("standby router stop: %+v", s)
	}
	if s := byID["start-router/shop-router-2"]; !slices.Equal(s.Argv, hostcmd.StartRouter("shop")) {
		t.Errorf("router start: %+v", s)
	}
	if s := byID["dns/shop.lab.belay.test"]; s.Address != "10.213.0.100" {
		t.Errorf("DNS back to %q, want the router VIP 10.213.0.100", s.Address)
	}
	if s := byID["verify/shop"]; s.Address != "10.213.0.100" {
		t.Errorf("verify through %q, want the router VIP", s.Address)
	}
	for id := range byID {
		if strings.HasSuffix(id, "/shop-router-standby") && strings.HasPrefix(id, "certificate/") {
			t.Errorf("way back renews the certificate on the standby router: %s", id)
		}
	}
	if _, ok := stepsOf(p, KindRouter)["router-check/shop-router-1"]; !ok {
		t.Error("no router check on shop-router-1")
	}
}

// TestPlanMixedStack: an app with cells next to one without: each keeps its
// own steps, the database steps appear once.
func TestPlanMixedStack(t *testing.T) {
	inv := cellsInventory(t, true)
	for _, to := range []Direction{ToStandby, ToPrimary} {
		p, err := PlanSite(inv, to)
		if err != nil {
			t.Fatalf("%s: %v", to, err)
		}
		seen := map[string]bool{}
		for _, s := range p.Steps {
			if seen[s.ID] {
				t.Errorf("%s: duplicate step %s", to, s.ID)
			}
			seen[s.ID] = true
		}
		for _, id := range []string{"fence-app/blog-1", "fence-app/shop-c1-1", "fence-router/shop-router-1", "dns/blog.lab.belay.test", "dns/shop.lab.belay.test", "verify/blog", "verify/shop"} {
			if !seen[id] {
				t.Errorf("%s: no step %s", to, id)
			}
		}
		dns := stepsOf(p, KindDNS)
		if to == ToStandby {
			if !seen["check-release/blog"] || !seen["start-app/blog-standby"] || !seen["start-router/shop-router-standby"] {
				t.Errorf("%s: %v", to, ids(p))
			}
			if got := dns["dns/blog.lab.belay.test"].Address; got != "10.213.0.160" {
				t.Errorf("blog points at %q, want its standby server", got)
			}
			if got := dns["dns/shop.lab.belay.test"].Address; got != "10.213.0.170" {
				t.Errorf("shop points at %q, want its standby router", got)
			}
			if n := len(stepsOf(p, KindCert)); n != 1 {
				t.Errorf("%d certificate steps, want 1 (shop's standby router; blog has no ACME)", n)
			}
		} else {
			if got := dns["dns/blog.lab.belay.test"].Address; got != "10.213.0.101" {
				t.Errorf("blog back to %q, want its VIP", got)
			}
			if !seen["stop-standby-app/blog-standby"] || !seen["start-app/blog-2"] || seen["router-check/blog-1"] {
				t.Errorf("%s: %v", to, ids(p))
			}
		}
	}
}

// TestPlanCellsRefusals: a missing standby router or cell standby server is
// an error naming the field.
func TestPlanCellsRefusals(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*inventory.App)
		want   string
	}{
		{"no standby router", func(a *inventory.App) { a.Router.Standby = "" }, `apps[shop].router.standbyHost ""`},
		{"no cell standby", func(a *inventory.App) { a.Cells[0].Standby = "nope" }, `apps[shop].cells[c1].standbyHost "nope"`},
	}
	for _, tt := range tests {
		for _, to := range []Direction{ToStandby, ToPrimary} {
			inv := cellsInventory(t, false)
			tt.mutate(inv.App("shop"))
			if _, err := PlanSite(inv, to); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("%s, %s: err %v, want %q", tt.name, to, err, tt.want)
			}
		}
	}
}
