package labapp

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestEchoesTheRoutersCell: the router's X-Belay-Cell request header comes
// back on every answer (the cells lab test reads the cell from it), and is
// absent when no router set it.
func TestEchoesTheRoutersCell(t *testing.T) {
	h := New(Config{Release: "r", Slot: "stable"}, func(string) {}).WithData(t.TempDir()).Handler()
	for _, path := range []string{"/", "/sleep?d=1ms", "/data?shop=a.test", "/data?shop=BAD", "/env?key=LAB_NOPE"} {
		for _, cell := range []string{"c2", ""} {
			req := httptest.NewRequest(http.MethodGet, path, nil)
			if cell != "" {
				req.Header.Set(HeaderCell, cell)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if got := rec.Header().Get(HeaderCell); got != cell {
				t.Errorf("GET %s with %s %q: answered %q", path, HeaderCell, cell, got)
			}
		}
	}
}
