package router_test

import (
	"testing"

	"github.com/belay-sh/belay/router"
	rt "github.com/belay-sh/belay/router/routertest"
)

// TestUnknownShopAnswers runs real nginx on loopback with the server block
// and the map.conf of an empty mapping (what the router role ships before
// the first sync): an unknown shop gets the configured 404 or 421 page
// marked X-Belay-Router: unknown, or reaches the default cell.
func TestUnknownShopAnswers(t *testing.T) {
	c1 := rt.StartCell(t, "c1")
	c2 := rt.StartCell(t, "c2")
	cells := rt.CellsConf([]*rt.Cell{c1, c2}, "")
	for _, tc := range []struct {
		name, conf string
		status     int
		cell       string
	}{
		{"unknown 404", cells + "unknown 404\n", 404, ""},
		{"unknown 421", cells + "unknown 421\n", 421, ""},
		{"no unknown line", cells, 421, ""},
		{"default cell", rt.CellsConf([]*rt.Cell{c1, c2}, "c2"), 200, "c2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rt.StartRouter(t, "r1", "shop", tc.conf)
			a, err := r.Get("nobody.example.com", "/")
			if err != nil {
				t.Fatal(err)
			}
			if a.Status != tc.status || a.Cell != tc.cell {
				t.Fatalf("unknown shop: %+v, want %d from cell %q", a, tc.status, tc.cell)
			}
			if tc.cell == "" && (a.Router != "unknown" || a.Body != "No shop is served under this name here.\n") {
				t.Errorf("unknown shop page: %+v, want %s: unknown and the clear body", a, router.HeaderRouter)
			}
		})
	}
}
