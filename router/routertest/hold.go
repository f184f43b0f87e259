package routertest

import (
	"net"
	"net/http"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/belay-sh/belay/internal/labapp"
)

// HoldCell is a cell whose /hold requests wait until Release (or until the
// client goes away): a long request in flight through the router. Every
// other path answers 200 at once. Answers carry the cell name as release.
type HoldCell struct {
	Name    string
	Addr    netip.AddrPort
	release chan struct{}
	// Holding counts /hold requests being held now.
	Holding atomic.Int32
}

// StartHoldCell starts a holding cell on loopback.
func StartHoldCell(t testing.TB, name string) *HoldCell {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &HoldCell{Name: name, Addr: netip.MustParseAddrPort(ln.Addr().String()), release: make(chan struct{})}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			c.Holding.Add(1)
			select {
			case <-c.release:
			case <-r.Context().Done():
			}
			c.Holding.Add(-1)
		}
		w.Header().Set(labapp.HeaderRelease, name)
		_, _ = w.Write([]byte("ok\n"))
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { c.Release(); _ = srv.Close() })
	return c
}

// Release ends every held request, now and later.
func (c *HoldCell) Release() {
	select {
	case <-c.release:
	default:
		close(c.release)
	}
}

// Conf is the cell's cells.conf line.
func (c *HoldCell) Conf() string { return "cell " + c.Name + " " + c.Addr.String() + "\n" }
