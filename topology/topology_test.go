package topology

import (
	"strings"
	"testing"

	"github.com/belay-sh/belay/config"
	"github.com/belay-sh/belay/inventory"
)

func cfgWithApps(t *testing.T, primaryCIDR string, apps ...config.App) *config.Config {
	t.Helper()
	return &config.Config{
		Network: config.Network{PrimaryCIDR: primaryCIDR, StandbyCIDR: "10.20.0.0/24"},
		Apps:    apps,
	}
}

func TestPlanLayout(t *testing.T) {
	topo, err := Plan(cfgWithApps(t, "10.10.0.0/24",
		config.App{Name: "shop", Replicas: 2, Size: "cx23", StandbySize: "s-1vcpu-1gb"},
		config.App{Name: "admin", Replicas: 3, Size: "cx23", StandbySize: "s-1vcpu-1gb"},
	))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]struct {
		site inventory.SiteName
		role inventory.Role
		addr string
	}{
		"db-1":          {inventory.Primary, inventory.RoleDB, "10.10.0.10"},
		"db-2":          {inventory.Primary, inventory.RoleDB, "10.10.0.11"},
		"db-monitor":    {inventory.Primary, inventory.RoleDBMonitor, "10.10.0.12"},
		"shop-1":        {inventory.Primary, inventory.RoleApp, "10.10.0.20"},
		"shop-2":        {inventory.Primary, inventory.RoleApp, "10.10.0.21"},
		"admin-1":       {inventory.Primary, inventory.RoleApp, "10.10.0.30"},
		"admin-3":       {inventory.Primary, inventory.RoleApp, "10.10.0.32"},
		"backup":        {inventory.Standby, inventory.RoleBackupRepo, "10.20.0.10"},
		"db-standby":    {inventory.Standby, inventory.RoleStandbyDB, "10.20.0.11"},
		"shop-standby":  {inventory.Standby, inventory.RoleStandbyApp, "10.20.0.20"},
		"admin-standby": {inventory.Standby, inventory.RoleStandbyApp, "10.20.0.21"},
	}
	for name, w := range want {
		h := topo.Host(name)
		if h == nil {
			t.Errorf("%s: not planned", name)
			continue
		}
		if h.Site != w.site || h.Roles[0] != w.role || h.PrivateAddress.String() != w.addr {
			t.Errorf("%s: got site=%s role=%s addr=%s, want %+v", name, h.Site, h.Roles[0], h.PrivateAddress, w)
		}
	}
	if got := len(topo.Hosts); got != 3+2+2+3+2 {
		t.Errorf("planned %d hosts, want 12", got)
	}
	if got := topo.AppHosts["admin"]; len(got) != 3 || got[0] != "admin-1" {
		t.Errorf("AppHosts[admin] = %v", got)
	}
	seen := map[string]string{}
	for _, h := range topo.Hosts {
		key := string(h.Site) + h.PrivateAddress.String()
		if other, dup := seen[key]; dup {
			t.Errorf("%s and %s share %s", h.Name, other, h.PrivateAddress)
		}
		seen[key] = h.Name
	}
}

func TestPlanErrors(t *testing.T) {
	tests := []struct {
		name    string
		cfg     *config.Config
		wantErr string
	}{
		{"network too small", cfgWithApps(t, "10.10.0.0/28", config.App{Name: "shop", Replicas: 2}), "belay:network.primaryCidr"},
		{"bad cidr", cfgWithApps(t, "10.10.0.0", config.App{Name: "shop", Replicas: 2}), "belay:network.primaryCidr"},
		{"name clash with db", cfgWithApps(t, "10.10.0.0/24", config.App{Name: "db", Replicas: 2}), "db-1"},
		{"ipv6 network", cfgWithApps(t, "fd00::/64", config.App{Name: "shop", Replicas: 2}), "IPv4"},
		{"replicas beyond the app's block", cfgWithApps(t, "10.10.0.0/24", config.App{Name: "shop", Replicas: AppBlock + 1}), "belay:apps[0].replicas"},
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

// TestPlanStable: adding an app or a replica never moves an existing server's
// address (a moved address rewrites keepalived peers and network attachments).
func TestPlanStable(t *testing.T) {
	base := []config.App{{Name: "shop", Replicas: 2, Size: "cx23"}, {Name: "admin", Replicas: 2, Size: "cx23"}}
	edits := map[string][]config.App{
		"add an app":             append(append([]config.App{}, base...), config.App{Name: "blog", Replicas: 3, Size: "cx23"}),
		"more replicas on app 0": {{Name: "shop", Replicas: 5, Size: "cx23"}, base[1]},
		"more replicas on app 1": {base[0], {Name: "admin", Replicas: AppBlock, Size: "cx23"}},
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
		})
	}
}
