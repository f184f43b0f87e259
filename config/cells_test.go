package config_test

import (
	"strings"
	"testing"

	"github.com/belay-sh/belay/config"
)

// withCells gives app 0 of the valid config cells (and router, when set).
func withCells(cells any, router map[string]any) doc {
	d := valid()
	app(d, 0)["cells"] = cells
	if router != nil {
		app(d, 0)["router"] = router
	}
	return d
}

func TestCellsParse(t *testing.T) {
	t.Run("count expands to c1..cN with the app's defaults", func(t *testing.T) {
		cfg, err := parse(t, withCells(3, nil))
		if err != nil {
			t.Fatal(err)
		}
		a := cfg.Apps[0]
		if len(a.Cells) != 3 || a.Cells[2].Name != "c3" || a.Cells[0].Size != "cx33" || a.Cells[0].Replicas != 2 || a.Cells[0].Database != config.DatabaseShared {
			t.Errorf("cells = %+v", a.Cells)
		}
		if r := a.Router; r == nil || r.Replicas != 2 || r.Size != "cx33" || r.StandbySize != "s-2vcpu-4gb" || r.UnknownShop != "404" {
			t.Errorf("router = %+v", a.Router)
		}
		if cfg.Apps[1].HasCells() || cfg.Apps[1].Router != nil {
			t.Errorf("app 1 got cells: %+v", cfg.Apps[1])
		}
	})
	t.Run("list with overrides and a default cell", func(t *testing.T) {
		cfg, err := parse(t, withCells([]any{
			map[string]any{"name": "eu-1", "replicas": 3, "size": "cx43"},
			map[string]any{"name": "onboarding"},
		}, map[string]any{"replicas": 3, "defaultCell": "onboarding"}))
		if err != nil {
			t.Fatal(err)
		}
		a := cfg.Apps[0]
		if a.Cells[0].Replicas != 3 || a.Cells[0].Size != "cx43" || a.Cells[1].Size != "cx33" {
			t.Errorf("cells = %+v", a.Cells)
		}
		if a.Router.UnknownShop != config.UnknownShopDefault || a.Router.Replicas != 3 {
			t.Errorf("router = %+v: defaultCell set, unknownShop omitted means default", a.Router)
		}
		if config.CellDatabase("my-app", "eu-1") != "my_app_eu_1" {
			t.Error("CellDatabase spelling")
		}
	})
	t.Run("unknownShop as a YAML number", func(t *testing.T) {
		cfg, err := parse(t, withCells(2, map[string]any{"unknownShop": 421}))
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Apps[0].Router.UnknownShop != "421" {
			t.Errorf("unknownShop = %q", cfg.Apps[0].Router.UnknownShop)
		}
	})
}

func TestCellsErrors(t *testing.T) {
	cell := func(kv ...any) map[string]any {
		m := map[string]any{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	tests := []struct {
		name  string
		doc   doc
		field string
		want  string
	}{
		{"zero cells", withCells(0, nil), "belay:apps[0].cells", "expected 1..16"},
		{"too many cells", withCells(17, nil), "belay:apps[0].cells", "expected 1..16"},
		{"cells not a list", withCells("c1", nil), "belay:apps[0].cells", "expected a number of cells"},
		{"empty list", withCells([]any{}, nil), "belay:apps[0].cells", "at least one cell"},
		{"missing name", withCells([]any{cell("replicas", 2)}, nil), "belay:apps[0].cells[0].name", "missing"},
		{"bad name", withCells([]any{cell("name", "C1")}, nil), "belay:apps[0].cells[0].name", "lowercase"},
		{"name too long", withCells([]any{cell("name", "c123456789abcdefg")}, nil), "belay:apps[0].cells[0].name", "1-16"},
		{"reserved name", withCells([]any{cell("name", "router")}, nil), "belay:apps[0].cells[0].name", "belay uses"},
		{"duplicate name", withCells([]any{cell("name", "c1"), cell("name", "c1")}, nil), "belay:apps[0].cells[1].name", "unique"},
		{"unknown field", withCells([]any{cell("name", "c1", "replica", 2)}, nil), "belay:apps[0].cells[0].replica", "unknown field"},
		{"one replica", withCells([]any{cell("name", "c1", "replicas", 1)}, nil), "belay:apps[0].cells[0].replicas", "expected 2..4"},
		{"five replicas", withCells([]any{cell("name", "c1", "replicas", 5)}, nil), "belay:apps[0].cells[0].replicas", "expected 2..4"},
		{"bad size", withCells([]any{cell("name", "c1", "size", "huge")}, nil), "belay:apps[0].cells[0].size", "huge"},
		{"bad database", withCells([]any{cell("name", "c1", "database", "mine")}, nil), "belay:apps[0].cells[0].database", "expected \"shared\" or \"dedicated\""},
		{"databaseSize on a shared cell", withCells([]any{cell("name", "c1", "databaseSize", "cx43")}, nil), "belay:apps[0].cells[0].databaseSize", "only with database \"dedicated\""},
		{"defaultCell unknown", withCells(2, map[string]any{"defaultCell": "c9"}), "belay:apps[0].router.defaultCell", "one of the app's cells"},
		{"default without defaultCell", withCells(2, map[string]any{"unknownShop": "default"}), "belay:apps[0].router.unknownShop", "needs defaultCell"},
		{"bad unknownShop", withCells(2, map[string]any{"unknownShop": 500}), "belay:apps[0].router.unknownShop", "expected 404, 421 or default"},
		{"one router", withCells(2, map[string]any{"replicas": 1}), "belay:apps[0].router.replicas", "expected 2..10"},
		{"router unknown field", withCells(2, map[string]any{"replics": 2}), "belay:apps[0].router.replics", "unknown field"},
		{"router without cells", func() doc { d := valid(); app(d, 1)["router"] = map[string]any{}; return d }(), "belay:apps[1].router", "without cells"},
		{"cell database is the stack's", func() doc {
			d := withCells([]any{cell("name", "c1")}, nil)
			obj(d, "database")["name"] = "web_c1"
			return d
		}(), "belay:apps[0].cells[0].name", "belay:database.name"},
		{"host name too long", func() doc {
			d := withCells([]any{cell("name", "abcdefghijklmnop")}, nil)
			app(d, 0)["name"] = strings.Repeat("w", 40)
			return d
		}(), "belay:apps[0].name", "63"},
		{"cells area does not fit the network", func() doc {
			d := withCells(2, nil)
			d["network"] = map[string]any{"primaryCidr": "10.10.0.0/25"}
			apps := d["apps"].([]any)
			for i := 0; i < 3; i++ {
				apps = append(apps, map[string]any{"name": "x" + string(rune('a'+i)), "size": "cx23", "standbySize": "s-1vcpu-2gb", "port": 5000 + i, "domains": []any{"x" + string(rune('a'+i)) + ".example.com"}, "tls": map[string]any{"mode": "off"}})
			}
			d["apps"] = apps
			return d
		}(), "belay:network.primaryCidr", "larger network"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parse(t, tt.doc)
			if err == nil {
				t.Fatal("Parse accepted it")
			}
			found := false
			for _, line := range strings.Split(err.Error(), "\n") {
				if strings.HasPrefix(line, tt.field+":") && strings.Contains(line, tt.want) {
					found = true
				}
			}
			if !found {
				t.Errorf("error = %v\nwant a line %q ... %q", err, tt.field, tt.want)
			}
		})
	}
}

// TestDedicatedCells: a dedicated cell parses with its databaseSize defaulting to the
// stack's data nodes' size, and its own mistakes are named.
func TestDedicatedCells(t *testing.T) {
	cell := func(kv ...any) map[string]any {
		m := map[string]any{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	t.Run("accepted with the stack's database size by default", func(t *testing.T) {
		cfg, err := parse(t, withCells([]any{cell("name", "c1"), cell("name", "c2", "database", "dedicated"), cell("name", "c3", "database", "dedicated", "databaseSize", "cx43")}, nil))
		if err != nil {
			t.Fatal(err)
		}
		c := cfg.Apps[0].Cells
		if c[0].Dedicated() || c[0].DatabaseSize != "" {
			t.Errorf("shared cell = %+v", c[0])
		}
		if !c[1].Dedicated() || c[1].DatabaseSize != cfg.Database.Size {
			t.Errorf("dedicated cell = %+v, want databaseSize %q", c[1], cfg.Database.Size)
		}
		if c[2].DatabaseSize != "cx43" {
			t.Errorf("databaseSize = %q", c[2].DatabaseSize)
		}
	})
	tests := []struct {
		name, field, want string
		cell              map[string]any
	}{
		{"bad databaseSize", "belay:apps[0].cells[0].databaseSize", "huge", cell("name", "c1", "database", "dedicated", "databaseSize", "huge")},
		{"three replicas", "belay:apps[0].cells[0].replicas", "at most 2", cell("name", "c1", "database", "dedicated", "replicas", 3)},
		{"formation clash across apps", "belay:apps[1].cells[0].name", "as belay:apps[0].cells[0].name does", nil},
		{"databaseSize not a string", "belay:apps[0].cells[0].databaseSize", "expected", cell("name", "c1", "database", "dedicated", "databaseSize", 4)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := withCells([]any{tt.cell}, nil)
			if tt.cell == nil {
				// web + cell "x-y" and web-x + cell "y" both give web_x_y.
				d = withCells([]any{cell("name", "x-y", "database", "dedicated")}, nil)
				app(d, 1)["name"] = "web-x"
				app(d, 1)["cells"] = []any{cell("name", "y", "database", "dedicated")}
			}
			_, err := parse(t, d)
			if err == nil {
				t.Fatal("Parse accepted it")
			}
			found := false
			for _, line := range strings.Split(err.Error(), "\n") {
				if strings.HasPrefix(line, tt.field+":") && strings.Contains(line, tt.want) {
					found = true
				}
			}
			if !found {
				t.Errorf("error = %v\nwant a line %q ... %q", err, tt.field, tt.want)
			}
		})
	}
}
