package inventory

import (
	"strings"
	"testing"

	"github.com/belay-sh/belay/internal/shq/shqtest"
)

// TestHostileValuesRefused puts every hostile value into every inventory field
// that reaches a host (alone and after a valid prefix) and wants an error
// naming that field.
func TestHostileValuesRefused(t *testing.T) {
	fields := []struct {
		field  string
		prefix string
		set    func(*Inventory, string)
	}{
		{"stack", "lab", func(i *Inventory, v string) { i.Stack = v }},
		{"hosts[0].name", "shop-1", func(i *Inventory, v string) { i.Hosts[0].Name = v }},
		{"hosts[0].app", "shop", func(i *Inventory, v string) { i.Hosts[0].App = v }},
		{"hosts[0].deployUser", "deploy", func(i *Inventory, v string) { i.Hosts[0].DeployUser = v }},
		{"hosts[0].sshAddress", "shop-1.example.com", func(i *Inventory, v string) { i.Hosts[0].SSHAddress = v }},
		{"hosts[0].publicAddress", "10.0.0.1", func(i *Inventory, v string) { i.Hosts[0].PublicAddress = v }},
		{"apps[0].name", "shop", func(i *Inventory, v string) { i.Apps[0].Name = v }},
		{"apps[0].healthPath", "/healthz", func(i *Inventory, v string) { i.Apps[0].HealthPath = v }},
		{"apps[0].vip", "10.213.0.100", func(i *Inventory, v string) { i.Apps[0].VIP = v }},
		{"apps[0].domains[0]", "shop.example.com", func(i *Inventory, v string) { i.Apps[0].Domains = []string{v} }},
		{"database.name", "app", func(i *Inventory, v string) { i.Database.Name = v }},
		{"backup.stanza", "belay", func(i *Inventory, v string) { i.Backup.Stanza = v }},
	}
	n := 0
	for _, f := range fields {
		for _, v := range shqtest.Values {
			for _, s := range []string{v.S, f.prefix + v.S} {
				if s == f.prefix || (s != v.S && inertAfterPrefix[v.Name]) {
					continue
				}
				if v.S == "" && optional[f.field] {
					continue // empty means absent for optional fields
				}
				inv := sample()
				f.set(inv, s)
				err := inv.Validate()
				if err == nil || !strings.Contains(err.Error(), f.field) {
					t.Errorf("%s = %q (%s): Validate() = %v, want an error naming %s", f.field, s, v.Name, err, f.field)
					continue
				}
				n++
			}
		}
	}
	t.Logf("%d hostile inventory values refused", n)
	if n < 300 {
		t.Errorf("only %d hostile values tried", n)
	}
}

var (
	inertAfterPrefix = map[string]bool{"empty": true, "leading dash": true, "tilde": true, "dot dot": true}
	optional         = map[string]bool{"hosts[0].app": true, "hosts[0].deployUser": true, "hosts[0].sshAddress": true,
		"hosts[0].publicAddress": true, "apps[0].vip": true, "database.name": true, "backup.stanza": true}
)

func TestHealthPathMessage(t *testing.T) {
	inv := sample()
	inv.Apps = append(inv.Apps, inv.Apps[0])
	inv.Apps[1].HealthPath = "/up;id"
	err := inv.Validate()
	want := `apps[1].healthPath: "/up;id", expected a plain URL path like /healthz`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Validate() = %v, want %q", err, want)
	}
}
