package cells

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/belay-sh/belay/hostcmd"
	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/router/admin"
)

// dedicatedInventory: app shop with cells c1 (on the stack's pair) and c2
// (its own pair, formation shop_c2), monitor db-monitor.
func dedicatedInventory() *inventory.Inventory {
	return &inventory.Inventory{
		Database: inventory.Database{Monitor: "db-monitor", Nodes: []string{"db-1", "db-2"}},
		Apps: []inventory.App{{Name: "shop", Cells: []inventory.Cell{
			{Name: "c1", Hosts: []string{"shop-c1-1"}, Database: "shop_c1"},
			{Name: "c2", Hosts: []string{"shop-c2-1"}, Database: "shop_c2", DBNodes: []string{"shop-c2-db-1", "shop-c2-db-2"}, Formation: "shop_c2"},
		}}},
	}
}

// TestCellsDatabaseHealth: each cell's database health comes from its own
// formation on the monitor, with exactly the argv the monitor's sudoers allow
// (one query per formation); --json carries it per cell and the text report
// has a DATABASE column; a cell whose pair lost its secondary is degraded,
// one whose monitor cannot be read is unknown, and neither is "up".
func TestCellsDatabaseHealth(t *testing.T) {
	inv := dedicatedInventory()
	allowed := hostcmd.ForHost(hostcmd.Host{Roles: []inventory.Role{inventory.RoleDBMonitor}, Formations: []string{"shop_c2"}})
	answers := map[string]string{
		"default": "db-1|primary|primary\ndb-2|secondary|secondary\n",
		"shop_c2": "shop-c2-db-1|wait_primary|wait_primary\nshop-c2-db-2|catchingup|secondary\n",
	}
	var calls []string
	run := func(_ context.Context, host string, argv []string) ([]byte, error) {
		if host != "db-monitor" {
			t.Errorf("ran on %s, want the monitor", host)
		}
		if !slices.ContainsFunc(allowed, func(c []string) bool { return slices.Equal(c, argv) }) {
			t.Errorf("%q is not a command the monitor's sudoers allow", argv)
		}
		for f, out := range answers {
			if strings.Contains(argv[len(argv)-1], "formationid = '"+f+"'") {
				calls = append(calls, f)
				return []byte(out), nil
			}
		}
		return nil, errors.New("unexpected query")
	}
	cells := []admin.CellInfo{{Name: "c1", Health: "up"}, {Name: "c2", Health: "up"}, {Name: "c1b", Health: "up"}}
	inv.Apps[0].Cells = append(inv.Apps[0].Cells, inventory.Cell{Name: "c1b", Hosts: []string{"shop-c1b-1"}, Database: "shop_c1b"})
	if fillDatabases(context.Background(), inv, "shop", cells, run) {
		t.Error("all up, although c2's pair has no secondary")
	}
	if !slices.Equal(calls, []string{"default", "shop_c2"}) {
		t.Errorf("monitor queries %v, want one per formation", calls)
	}
	c1, c2 := cells[0].Database, cells[1].Database
	if c1 == nil || c1.Kind != "shared" || c1.Formation != "default" || c1.Health != "up" || c1.Nodes["db-2"] != "secondary" {
		t.Errorf("c1 database = %+v", c1)
	}
	if c2 == nil || c2.Kind != "dedicated" || c2.Formation != "shop_c2" || !strings.HasPrefix(c2.Health, "degraded: shop-c2-db-1 is wait_primary with no secondary") || c2.Nodes["shop-c2-db-2"] != "catchingup (going secondary)" {
		t.Errorf("c2 database = %+v", c2)
	}
	if d := cells[2].Database; d == nil || d.Kind != "shared" || d.Health != "up" {
		t.Errorf("c1b database = %+v", d)
	}

	var b bytes.Buffer
	if err := printCells(&b, admin.Response{Cells: cells}, true); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Cells []struct {
			Name     string         `json:"name"`
			Database map[string]any `json:"database"`
		} `json:"cells"`
	}
	if err := json.Unmarshal(b.Bytes(), &doc); err != nil || len(doc.Cells) != 3 || doc.Cells[1].Database["formation"] != "shop_c2" || doc.Cells[1].Database["kind"] != "dedicated" {
		t.Errorf("--json: %v\n%s", err, b.String())
	}
	b.Reset()
	if err := printCells(&b, admin.Response{Cells: cells}, false); err != nil {
		t.Fatal(err)
	}
	if txt := b.String(); !strings.Contains(txt, "DATABASE") || !strings.Contains(txt, "up (shared, default)") || !strings.Contains(txt, "(dedicated, shop_c2)") {
		t.Errorf("text report:\n%s", txt)
	}

	// The monitor unreachable, a formation with no node, no primary.
	for _, tc := range []struct {
		out  string
		err  error
		want string
	}{
		{"", errors.New("dial db-monitor: connection refused\nmore"), "unknown: monitor db-monitor: dial db-monitor: connection refused"},
		{"", nil, "down: the monitor lists no node in formation shop_c2"},
		{"shop-c2-db-1|demoted|catchingup\nshop-c2-db-2|secondary|secondary\n", nil, "down: no primary"},
		{"shop-c2-db-1|primary|primary\nshop-c2-db-2|primary|primary\n", nil, "down: shop-c2-db-1 and shop-c2-db-2 both take writes"},
	} {
		one := []admin.CellInfo{{Name: "c2"}}
		ok := fillDatabases(context.Background(), inv, "shop", one, func(context.Context, string, []string) ([]byte, error) { return []byte(tc.out), tc.err })
		if ok || !strings.HasPrefix(one[0].Database.Health, tc.want) {
			t.Errorf("%q/%v: %v %+v, want %q", tc.out, tc.err, ok, one[0].Database, tc.want)
		}
	}
	// A formation name that is not an identifier never reaches the monitor.
	inv.Apps[0].Cells[1].Formation = "shop_c2' OR true --"
	one := []admin.CellInfo{{Name: "c2"}}
	fillDatabases(context.Background(), inv, "shop", one, func(context.Context, string, []string) ([]byte, error) {
		t.Error("ran a query for an invalid formation")
		return nil, nil
	})
	if !strings.HasPrefix(one[0].Database.Health, "unknown: inventory: formation") {
		t.Errorf("invalid formation: %+v", one[0].Database)
	}
}
