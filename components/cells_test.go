package components

import (
	"strings"
	"testing"

	"github.com/belay-sh/belay/config"
	"github.com/belay-sh/belay/inventory"
)

// cellsDoc is testDoc with app 0 split into cells (n cells of the app's size).
func cellsDoc(p, s config.Provider, apps, cells int) map[string]any {
	d := testDoc(p, s, apps)
	d["apps"].([]any)[0].(map[string]any)["cells"] = cells
	return d
}

func TestCellsProgram(t *testing.T) {
	for _, dir := range directions {
		t.Run(dir.name, func(t *testing.T) {
			res := runProgram(t, values(cellsDoc(dir.primary, dir.standby, 2, 2)))
			if res.err != nil {
				t.Fatal(res.err)
			}
			inv, err := inventory.Parse([]byte(res.inventory))
			if err != nil {
				t.Fatalf("inventory.Parse: %v\n%s", err, res.inventory)
			}
			srv := servers(t, res.m)
			for _, h := range []string{"shop0-router-1", "shop0-router-2", "shop0-router-standby", "shop0-c1-1", "shop0-c1-2", "shop0-c2-1", "shop0-c2-standby", "shop1-1"} {
				if _, ok := srv["test-"+h]; !ok && inv.Host(h) == nil {
					t.Errorf("%s: no server registered", h)
				}
			}
			if inv.Host("shop0-1") != nil {
				t.Error("an app with cells got servers of its own")
			}
			a := inv.App("shop0")
			if a == nil || a.Router == nil || len(a.Cells) != 2 || len(a.Hosts) != 0 {
				t.Fatalf("inventory app = %+v", a)
			}
			vips := map[string]bool{a.Router.VIP: true, inv.App("shop1").VIP: true}
			for _, c := range a.Cells {
				if c.VIP == "" || vips[c.VIP] {
					t.Errorf("cell %s VIP %q: expected its own floating IP", c.Name, c.VIP)
				}
				vips[c.VIP] = true
				for _, n := range c.Hosts {
					if h := inv.Host(n); h == nil || h.Cell != c.Name {
						t.Errorf("host %s does not carry cell %s", n, c.Name)
					}
				}
			}
			if a.VIP != a.Router.VIP {
				t.Errorf("app VIP %s, expected the router tier's %s", a.VIP, a.Router.VIP)
			}
			var fips []string
			for _, r := range res.m.byType(types[dir.primary].floatingIP) {
				if strings.HasSuffix(r.Name, "-vip") {
					fips = append(fips, r.Name)
				}
			}
			if len(fips) != 4 {
				t.Errorf("floating IPs %v, expected 4 (shop1, router, c1, c2)", fips)
			}
			for _, r := range res.m.byType("digitalocean:index/dnsRecord:DnsRecord") {
				if strings.HasPrefix(str(r.Inputs, "name"), "shop0") || strings.HasPrefix(str(r.Inputs, "name"), "www.shop0") {
					if str(r.Inputs, "value") != a.Router.VIP {
						t.Errorf("record %s points at %s, expected the router VIP %s", str(r.Inputs, "name"), str(r.Inputs, "value"), a.Router.VIP)
					}
				}
			}
		})
	}
}

// TestCellEditsReplaceNothing: growing a cells stack registers new resources
// only; no server, volume or floating IP is replaced or deleted.
func TestCellEditsReplaceNothing(t *testing.T) {
	app0 := func(d map[string]any) map[string]any { return d["apps"].([]any)[0].(map[string]any) }
	edits := []struct {
		name string
		edit func(p config.Provider, d map[string]any)
	}{
		{"add cell c3", func(_ config.Provider, d map[string]any) { app0(d)["cells"] = 3 }},
		{"add router", func(_ config.Provider, d map[string]any) { app0(d)["router"] = map[string]any{"replicas": 3} }},
		{"add cell replica", func(_ config.Provider, d map[string]any) {
			app0(d)["cells"] = []any{map[string]any{"name": "c1", "replicas": 3}, map[string]any{"name": "c2"}}
		}},
		{"add app", func(p config.Provider, d map[string]any) {
			more := testDoc(p, otherProvider(p), 3)
			d["apps"] = append(d["apps"].([]any), more["apps"].([]any)[2])
		}},
		{"add an app with cells", func(p config.Provider, d map[string]any) {
			more := testDoc(p, otherProvider(p), 3)
			extra := more["apps"].([]any)[2].(map[string]any)
			extra["cells"] = 2
			d["apps"] = append(d["apps"].([]any), extra)
		}},
		{"default cell", func(_ config.Provider, d map[string]any) {
			app0(d)["router"] = map[string]any{"defaultCell": "c2"}
		}},
	}
	for _, dir := range directions {
		base := runProgram(t, values(cellsDoc(dir.primary, dir.standby, 2, 2)))
		if base.err != nil {
			t.Fatal(base.err)
		}
		for _, e := range edits {
			t.Run(dir.name+"/"+e.name, func(t *testing.T) {
				doc := cellsDoc(dir.primary, dir.standby, 2, 2)
				e.edit(dir.primary, doc)
				res := runProgram(t, values(doc))
				if res.err != nil {
					t.Fatal(res.err)
				}
				for _, r := range replacements(base.m.all(), res.m.all()) {
					t.Errorf("%s would be replaced: %s", r.Key, r.Why)
				}
				if e.name != "default cell" && len(res.m.all()) <= len(base.m.all()) {
					t.Errorf("%d registrations after, %d before: the edit added nothing", len(res.m.all()), len(base.m.all()))
				}
			})
		}
	}
}
