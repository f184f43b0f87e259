package inventory

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const key1 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGH4aW9Q3YDZ8ydS9hDOHnu0Bg0qW9K2tlyH6/g5n3Tm"

func sample() *Inventory {
	host := func(name string, site SiteName, app string, addr string, roles ...Role) Host {
		return Host{Name: name, Site: site, Provider: "lab", Roles: roles, App: app, PrivateAddress: addr,
			SSHAddress: addr, SSHPort: 22, DeployUser: "deploy", HostKey: key1}
	}
	return &Inventory{
		Version: Version, Stack: "lab",
		Sites: map[SiteName]Site{Primary: {Provider: "lab", CIDR: "10.213.0.0/25"}, Standby: {Provider: "lab", CIDR: "10.213.0.128/25"}},
		Hosts: []Host{
			host("shop-1", Primary, "shop", "10.213.0.20", RoleApp),
			host("shop-2", Primary, "shop", "10.213.0.21", RoleApp),
			host("db-1", Primary, "", "10.213.0.10", RoleDB),
			host("shop-standby", Standby, "shop", "10.213.0.148", RoleStandbyApp),
		},
		Apps:     []App{{Name: "shop", VIP: "10.213.0.100", Port: 8080, HealthPath: "/healthz", Hosts: []string{"shop-1", "shop-2"}, Standby: "shop-standby"}},
		Database: Database{Name: "app", Port: 5432, Nodes: []string{"db-1"}},
	}
}

func TestRoundTripAndStackOutputWrapper(t *testing.T) {
	b, err := sample().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Parse(b); err != nil {
		t.Fatalf("bare inventory: %v", err)
	}
	wrapped, _ := json.Marshal(map[string]json.RawMessage{"inventory": b})
	inv, err := Parse(wrapped)
	if err != nil {
		t.Fatalf("pulumi stack output wrapper: %v", err)
	}
	if got := inv.WithRole(RoleApp); len(got) != 2 || got[0].Name != "shop-1" {
		t.Fatalf("WithRole(app) = %v", got)
	}
	path := filepath.Join(t.TempDir(), "inv.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err != nil {
		t.Fatalf("Load: %v", err)
	}
}

func TestValidateErrors(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Inventory)
		want   string
	}{
		{"wrong version", func(i *Inventory) { i.Version = 2 }, "version: got 2"},
		{"duplicate host", func(i *Inventory) { i.Hosts[1].Name = "shop-1" }, "duplicate host name"},
		{"bad site", func(i *Inventory) { i.Hosts[0].Site = "moon" }, `.site: "moon"`},
		{"unknown role", func(i *Inventory) { i.Hosts[0].Roles = []Role{"cache"} }, `unknown role "cache"`},
		{"bad address", func(i *Inventory) { i.Hosts[0].PrivateAddress = "10.0.0" }, "privateAddress"},
		{"bad port", func(i *Inventory) { i.Hosts[0].SSHPort = 0 }, "sshPort: 0"},
		{"no host key", func(i *Inventory) { i.Hosts[0].HostKey = "" }, "hostKey: not an SSH public key"},
		{"app names unknown host", func(i *Inventory) { i.Apps[0].Hosts = []string{"shop-9"} }, `unknown host "shop-9"`},
		{"app host is a db", func(i *Inventory) { i.Apps[0].Hosts = []string{"db-1"} }, "not an app server of shop"},
		{"db node unknown", func(i *Inventory) { i.Database.Nodes = []string{"db-7"} }, `database.nodes: unknown host "db-7"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv := sample()
			tt.mutate(inv)
			err := inv.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate() = %v, want error containing %q", err, tt.want)
			}
		})
	}
}

func TestUnknownFieldRefused(t *testing.T) {
	b, _ := sample().Marshal()
	b = []byte(strings.Replace(string(b), `"stack"`, `"stak": "x", "stack"`, 1))
	if _, err := Parse(b); err == nil || !strings.Contains(err.Error(), "stak") {
		t.Fatalf("Parse() = %v, want an error naming the unknown field", err)
	}
}
