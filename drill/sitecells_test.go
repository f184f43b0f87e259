package drill

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/belay-sh/belay/router"
)

func TestPickSiteShops(t *testing.T) {
	a := cellsInventory(t).App("shop")
	frozen := active("f.example", "c1")
	frozen.State = router.CellFrozen
	m := mappingJSON(t, active("b.example", "c1"), active("a.example", "c1"), active("c.example", "c1"), active("z.example", "c2"), frozen, active("x.example", "c9"))
	got, err := pickSiteShops(m, a, 2)
	if err != nil {
		t.Fatal(err)
	}
	want := []CellShop{{"a.example", "c1"}, {"b.example", "c1"}, {"z.example", "c2"}} // spread: sorted, evenly
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("shop %d: %v, want %v (got %v)", i, got[i], want[i], got)
		}
	}
	if _, err := pickSiteShops(mappingJSON(t, frozen), a, 2); err == nil || !strings.Contains(err.Error(), "no active shop is mapped") {
		t.Errorf("no shops: %v", err)
	}
	if _, err := pickSiteShops([]byte("nope"), a, 2); err == nil || !strings.Contains(err.Error(), "router mapping") {
		t.Errorf("bad JSON: %v", err)
	}
}

// TestAskCellShops: a stand-in router that routes by Host; a shop answered
// by the wrong cell, or by the router itself, fails the check.
func TestAskCellShops(t *testing.T) {
	routes := map[string]string{"a.example": "c1", "z.example": "c2"}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := routes[r.Host]
		if !ok {
			w.Header().Set(router.HeaderRouter, "unknown")
			w.WriteHeader(http.StatusNotFound)
			return
		}
		w.Header().Set(HeaderCell, c)
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	shops := []CellShop{{"a.example", "c1"}, {"z.example", "c2"}}
	note, err := askCellShops(context.Background(), u.Host, shops, 2*time.Second)
	if err != nil || !strings.Contains(note, "2 mapped shops of 2 cells answered from their cell") {
		t.Fatalf("= %q, %v", note, err)
	}
	routes["z.example"] = "c1" // routed to the wrong cell
	if _, err := askCellShops(context.Background(), u.Host, shops, time.Second); err == nil || !strings.Contains(err.Error(), "z.example (cell c2)") || !strings.Contains(err.Error(), "1 of 2") {
		t.Errorf("wrong cell: %v", err)
	}
	delete(routes, "z.example") // unknown at this router
	if _, err := askCellShops(context.Background(), u.Host, shops, time.Second); err == nil || !strings.Contains(err.Error(), "unknown") {
		t.Errorf("unknown shop: %v", err)
	}
}
