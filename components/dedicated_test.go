package components

import (
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/belay-sh/belay/config"
	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/roles"
)

// userDataFile is the text of file path in a server's rendered user data.
func userDataFile(t *testing.T, ud, path string) string {
	t.Helper()
	var c roles.CloudConfig
	if err := yaml.Unmarshal([]byte(ud), &c); err != nil {
		t.Fatalf("user data: %v", err)
	}
	for _, f := range c.WriteFiles {
		if f.Path == path {
			text, err := f.Text()
			if err != nil {
				t.Fatal(err)
			}
			return text
		}
	}
	t.Fatalf("user data has no %s", path)
	return ""
}

// dedicatedDoc is cellsDoc with app 0's cells listed: c1 shared, and the
// names in dedicated with their own pair.
func dedicatedDoc(p, s config.Provider, names []string, dedicated ...string) map[string]any {
	d := cellsDoc(p, s, 2, 2)
	var cells []any
	for _, n := range names {
		c := map[string]any{"name": n}
		for _, x := range dedicated {
			if x == n {
				c["database"] = "dedicated"
			}
		}
		cells = append(cells, c)
	}
	d["apps"].([]any)[0].(map[string]any)["cells"] = cells
	return d
}

// TestDedicatedCellProgram: a dedicated cell's pair is made like db-1/db-2
// (protected, retained data volumes; delete protection on Hetzner; user data
// ignored after creation; the db firewall group), registers in its own
// formation, is listed in the inventory with role db and its cell, and the
// cell's servers reach it.
func TestDedicatedCellProgram(t *testing.T) {
	for _, dir := range directions {
		t.Run(dir.name, func(t *testing.T) {
			res := runProgram(t, values(dedicatedDoc(dir.primary, dir.standby, []string{"c1", "c2"}, "c2")))
			if res.err != nil {
				t.Fatal(res.err)
			}
			inv, err := inventory.Parse([]byte(res.inventory))
			if err != nil {
				t.Fatalf("inventory.Parse: %v\n%s", err, res.inventory)
			}
			srv := servers(t, res.m)
			vols := map[string]registration{}
			for _, r := range res.m.byType(volumeTypes[dir.primary]) {
				vols[r.Name] = r
			}
			var pairAddrs []string
			for _, n := range []string{"shop0-c2-db-1", "shop0-c2-db-2"} {
				s, ok := srv[n]
				if !ok {
					t.Errorf("%s: no server", n)
					continue
				}
				setup := userDataFile(t, str(s.Inputs, "userData"), roles.DBSetupScript)
				if !strings.Contains(setup, "--formation shop0_c2 ") || !strings.Contains(setup, "ensure_formation") {
					t.Errorf("%s: user data does not register in formation shop0_c2", n)
				}
				if !has(s.IgnoreChanges, "userData") {
					t.Errorf("%s: ignoreChanges %v", n, s.IgnoreChanges)
				}
				if v, ok := vols[n+"-data"]; !ok || !v.Protect || !v.Retain {
					t.Errorf("%s: data volume %+v, want protected and retained", n, v)
				}
				if dir.primary == config.Hetzner {
					if dp := s.Inputs["deleteProtection"]; !dp.IsBool() || !dp.BoolValue() {
						t.Errorf("%s: no delete protection", n)
					}
				}
				if p := parentComponent(s); !strings.Contains(p, "CellDatabase") {
					t.Errorf("%s: parent %s, want the cell's CellDatabase", n, p)
				}
				h := inv.Host(n)
				if h == nil || !h.Has(inventory.RoleDB) || h.App != "shop0" || h.Cell != "c2" {
					t.Errorf("inventory host %s = %+v", n, h)
					continue
				}
				pairAddrs = append(pairAddrs, h.PrivateAddress)
			}
			c2 := inv.App("shop0").Cell("c2")
			if c2 == nil || strings.Join(c2.DBNodes, ",") != "shop0-c2-db-1,shop0-c2-db-2" || c2.Formation != "shop0_c2" {
				t.Errorf("inventory cell c2 = %+v", c2)
			}
			if strings.Join(inv.Database.Nodes, ",") != "db-1,db-2" {
				t.Errorf("database.nodes = %v, want the stack's pair only", inv.Database.Nodes)
			}
			if len(pairAddrs) == 2 {
				want := "@" + pairAddrs[0] + ":5432," + pairAddrs[1] + ":5432/shop0_c2?"
				if ud := str(srv["shop0-c2-1"].Inputs, "userData"); !strings.Contains(ud, want) {
					t.Errorf("shop0-c2-1's DATABASE_URL does not name its pair (%s)", want)
				}
			}
			checkCellStandbyDB(t, res, dir.standby, inv, srv)
		})
	}
}

// checkCellStandbyDB: the dedicated cell c2's standby database is made like
// db-standby at the standby provider (the Standby component's child, its
// firewall group, a protected and retained data volume, user data ignored
// after creation, delete protection on Hetzner), restores the cell's stanza,
// is the inventory cell's standbyDB, the cell's standby server's
// DATABASE_URL names it, and the repository admits its client key for the
// cell's stanza only.
func checkCellStandbyDB(t *testing.T, res result, standby config.Provider, inv *inventory.Inventory, srv map[string]registration) {
	t.Helper()
	const n = "shop0-c2-standby-db"
	s, ok := srv[n]
	if !ok {
		t.Fatalf("%s: no server", n)
	}
	if p := parentComponent(s); !strings.Contains(p, "Standby") {
		t.Errorf("%s: parent %s, want the Standby component", n, p)
	}
	if !has(s.IgnoreChanges, "userData") {
		t.Errorf("%s: ignoreChanges %v", n, s.IgnoreChanges)
	}
	vols := map[string]registration{}
	for _, r := range res.m.byType(volumeTypes[standby]) {
		vols[r.Name] = r
	}
	if v, ok := vols[n+"-data"]; !ok || !v.Protect || !v.Retain {
		t.Errorf("%s: data volume %+v, want protected and retained", n, v)
	}
	if standby == config.Hetzner {
		if dp := s.Inputs["deleteProtection"]; !dp.IsBool() || !dp.BoolValue() {
			t.Errorf("%s: no delete protection", n)
		}
	}
	ud := str(s.Inputs, "userData")
	if !strings.Contains(userDataFile(t, ud, roles.StandbyRestoreScript), "stanza=shop0_c2\n") {
		t.Errorf("%s: its restore script does not restore stanza shop0_c2", n)
	}
	h := inv.Host(n)
	if h == nil || !h.Has(inventory.RoleStandbyDB) || h.App != "shop0" || h.Cell != "c2" || h.Site != inventory.Standby {
		t.Fatalf("inventory host %s = %+v", n, h)
	}
	if c2 := inv.App("shop0").Cell("c2"); c2 == nil || c2.StandbyDB != n {
		t.Errorf("inventory cell c2 = %+v, want standbyDB %s", c2, n)
	}
	if c1 := inv.App("shop0").Cell("c1"); c1 == nil || c1.StandbyDB != "" {
		t.Errorf("inventory cell c1 = %+v, want no standbyDB", c1)
	}
	if ud := str(srv["shop0-c2-standby"].Inputs, "userData"); !strings.Contains(ud, "@"+h.PrivateAddress+":5432/shop0_c2?") {
		t.Errorf("shop0-c2-standby's DATABASE_URL does not name %s (%s)", n, h.PrivateAddress)
	}
	keys := userDataFile(t, str(srv["backup"].Inputs, "userData"), "/home/pgbackrest/.ssh/authorized_keys")
	if got := strings.Count(keys, "belay-pgbackrest-remote shop0_c2\""); got != 3 {
		t.Errorf("repository authorized_keys: %d keys bound to shop0_c2, want 3 (the pair and its standby database)\n%s", got, keys)
	}
}

// TestDedicatedCellEditsReplaceNothing: adding a dedicated cell, or making a
// shared cell dedicated, registers new resources only (the pair, its volumes,
// attachments and static IPs): nothing is replaced or deleted, judged by the
// providers' ForceNew fields. Making a cell dedicated moves no data (see
// docs/cells.md, "Dedicated database").
func TestDedicatedCellEditsReplaceNothing(t *testing.T) {
	edits := []struct {
		name string
		doc  func(p, s config.Provider) map[string]any
	}{
		{"add a dedicated cell", func(p, s config.Provider) map[string]any {
			return dedicatedDoc(p, s, []string{"c1", "c2", "c3"}, "c3")
		}},
		{"switch a cell shared to dedicated", func(p, s config.Provider) map[string]any {
			return dedicatedDoc(p, s, []string{"c1", "c2"}, "c2")
		}},
	}
	for _, dir := range directions {
		base := runProgram(t, values(dedicatedDoc(dir.primary, dir.standby, []string{"c1", "c2"})))
		if base.err != nil {
			t.Fatal(base.err)
		}
		before := map[string]bool{}
		for _, r := range base.m.all() {
			before[r.Type+"::"+r.Name] = true
		}
		for _, e := range edits {
			t.Run(dir.name+"/"+e.name, func(t *testing.T) {
				res := runProgram(t, values(e.doc(dir.primary, dir.standby)))
				if res.err != nil {
					t.Fatal(res.err)
				}
				for _, r := range replacements(base.m.all(), res.m.all()) {
					t.Errorf("%s would be replaced: %s", r.Key, r.Why)
				}
				var added []string
				for _, r := range res.m.all() {
					if !before[r.Type+"::"+r.Name] {
						added = append(added, r.Name)
					}
				}
				pair := 0
				for _, n := range added {
					if strings.Contains(n, "-db-1") || strings.Contains(n, "-db-2") {
						pair++
					}
				}
				if pair < 4 { // two servers, two volumes at least
					t.Errorf("new registrations %v: the pair is missing", added)
				}
				sdb := 0
				for _, n := range added {
					if strings.Contains(n, "-standby-db") {
						sdb++
					}
				}
				if sdb < 2 { // its server and volume at least
					t.Errorf("new registrations %v: the cell's standby database is missing", added)
				}
			})
		}
	}
}
