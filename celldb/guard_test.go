package celldb

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
)

// guardHosts answers the helper's tables (the stack's nodes) and marker
// (the pair's) verbs.
type guardHosts struct {
	tables, marker string
	tablesErr      error
}

func (g guardHosts) Run(context.Context, string, string) ([]byte, error) { return nil, nil }

func (g guardHosts) RunRoot(_ context.Context, host string, argv ...string) ([]byte, error) {
	switch {
	case argv[3] == "tables" && strings.HasPrefix(host, "db-"):
		return []byte(g.tables), g.tablesErr
	case argv[3] == "marker" && strings.HasPrefix(host, "shop-c2-db"):
		return []byte(g.marker), nil
	}
	return nil, errors.New("unexpected " + host + " " + strings.Join(argv, " "))
}

func TestGuard(t *testing.T) {
	inv := testInventory()
	hosts := []string{"db-1", "shop-c1-1", "shop-c2-1", "shop-c2-2"}
	if got := GuardedHosts(inv, hosts); !slices.Equal(got, []string{"shop-c2-1", "shop-c2-2"}) {
		t.Errorf("guarded hosts = %q", got)
	}
	for _, c := range []struct {
		name string
		g    guardHosts
		want string // "" allowed
	}{
		{"not copied", guardHosts{tables: "3\n", marker: "none\n"}, "cell shop/c2 is dedicated but its data is still on the stack's cluster (database shop_c2 on db-1: 3 tables)"},
		{"copied", guardHosts{tables: "3\n", marker: `{"source":"db-1"}` + "\n"}, ""},
		{"new cell", guardHosts{tables: "absent\n"}, ""},
		{"empty source", guardHosts{tables: "0\n"}, ""},
		{"unreadable", guardHosts{tablesErr: errors.New("sudo: a password is required")}, "cannot be read"},
	} {
		got := Guard(context.Background(), c.g, inv, hosts)
		switch {
		case c.want == "" && len(got) > 0:
			t.Errorf("%s: refused: %v", c.name, got)
		case c.want != "" && (len(got) != 1 || !strings.Contains(got[0].Reason, c.want) ||
			!strings.Contains(got[0].Reason, "belay db copy --cell shop/c2 --yes") || !slices.Equal(got[0].Hosts, []string{"shop-c2-1", "shop-c2-2"})):
			t.Errorf("%s: %+v, want a refusal with %q", c.name, got, c.want)
		}
	}
	// Hosts outside dedicated cells are never checked.
	if got := Guard(context.Background(), guardHosts{tables: "3", marker: "none"}, inv, []string{"shop-c1-1", "db-1"}); len(got) != 0 {
		t.Errorf("guard on hosts without a dedicated cell: %v", got)
	}
}
