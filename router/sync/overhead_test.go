package sync_test

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	rt "github.com/belay-sh/belay/router/routertest"
)

// TestRouterOverhead logs the latency a router adds (the shop lookup and the
// proxying): GETs of one shop through the router and straight to its cell,
// interleaved, each over its own kept-alive connection. Logged, not
// asserted (the machine is shared).
func TestRouterOverhead(t *testing.T) {
	lab := rt.StartDB(t)
	c1 := rt.StartCell(t, "c1")
	r := rt.StartRouter(t, "router-1", app, rt.CellsConf([]*rt.Cell{c1}, ""))
	rt.RunSync(t, r, app, lab.DSN)
	ctx := context.Background()
	v, err := lab.Store.Assign(ctx, app, "a.test", "c1", "test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lab.Store.WaitApplied(ctx, app, v, testWait); err != nil {
		t.Fatal(err)
	}
	get := func(c *http.Client, addr string) time.Duration {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
		req.Host = "a.test"
		start := time.Now()
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("GET via %s: %s", addr, resp.Status)
		}
		return time.Since(start)
	}
	via, direct := &http.Client{Transport: &http.Transport{}}, &http.Client{Transport: &http.Transport{}}
	var dv, dd []time.Duration
	for i := 0; i < 2000; i++ {
		dv = append(dv, get(via, r.Listen))
		dd = append(dd, get(direct, c1.Addr.String()))
	}
	t.Logf("2000 GETs: through the router p50 %s p90 %s; straight to the cell p50 %s p90 %s",
		rt.Percentile(dv, 50), rt.Percentile(dv, 90), rt.Percentile(dd, 50), rt.Percentile(dd, 90))
}
