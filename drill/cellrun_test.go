package drill

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/belay-sh/belay/remote/remotetest"
	"github.com/belay-sh/belay/router"
)

// fakeRouter is the router VIP on loopback: shops of a down cell get the
// clean 503, others 200 naming their cell; leak makes c1's shops fail too.
type fakeRouter struct {
	mu   sync.Mutex
	down map[string]bool
	leak bool
	cell map[string]string
}

func (f *fakeRouter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	c := f.cell[r.Host]
	down, leak := f.down[c], f.leak && len(f.down) > 0
	f.mu.Unlock()
	switch {
	case c == "":
		w.Header().Set(router.HeaderRouter, "unknown")
		w.WriteHeader(421)
	case down:
		w.Header().Set(router.HeaderRouter, "cell-down")
		w.WriteHeader(503)
	case leak && c == "c1":
		w.WriteHeader(502)
	default:
		w.Header().Set(HeaderCell, c)
		fmt.Fprintln(w, "ok")
	}
}

func (f *fakeRouter) set(cell string, down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if down {
		f.down[cell] = true
	} else {
		delete(f.down, cell)
	}
}

// cellFaults kills hosts in the fake: a cell is down while any host is
// killed (its VIP would move to the other; this fake skips that).
type cellFaults struct {
	r      *fakeRouter
	mu     sync.Mutex
	killed []Fault
}

func (c *cellFaults) Inject(_ context.Context, f Fault) (time.Time, error) {
	c.mu.Lock()
	c.killed = append(c.killed, f)
	c.mu.Unlock()
	c.r.set("c2", true)
	return time.Now(), nil
}

func (c *cellFaults) Heal(context.Context) error {
	c.r.set("c2", false)
	return nil
}

func (c *cellFaults) Partitioned(context.Context) (bool, error) { return false, nil }

func cellEnv(t *testing.T, lab bool, leak bool) (*Env, *fakeRouter, *cellFaults, *remotetest.Runner, string) {
	t.Helper()
	fr := &fakeRouter{down: map[string]bool{}, leak: leak, cell: map[string]string{}}
	var shops []router.Shop
	for i := 0; i < 4; i++ {
		for _, c := range []string{"c1", "c2"} {
			d := fmt.Sprintf("s%d-%s.shops.test", i, c)
			fr.cell[d] = c
			shops = append(shops, active(d, c))
		}
	}
	m := mappingJSON(t, shops...)
	srv := httptest.NewServer(fr)
	t.Cleanup(srv.Close)
	var blocked sync.Map
	r := &remotetest.Runner{Handle: func(c remotetest.Call) ([]byte, error) {
		switch {
		case c.Cmd == MappingCommand("shop"):
			if c.Host != "shop-router-1" {
				return nil, fmt.Errorf("mapping read on %s", c.Host)
			}
			return m, nil
		case strings.Contains(c.Cmd, "pg_is_in_recovery"):
			// db-2 is the stack's primary; shop-c2-db-1 a dedicated c2's (TestCellDrillDedicatedDB).
			return []byte(map[bool]string{true: "f\n", false: "t\n"}[c.Host == "db-2" || c.Host == "shop-c2-db-1"]), nil
		case strings.Contains(c.Cmd, "ALLOW_CONNECTIONS false"):
			blocked.Store("shop_c2", true)
			fr.set("c2", true)
		case strings.Contains(c.Cmd, "ALLOW_CONNECTIONS true"):
			blocked.Delete("shop_c2")
			fr.set("c2", false)
		case strings.Contains(c.Cmd, "-c SELECT 1"):
			if _, ok := blocked.Load(strings.Fields(c.Cmd)[10]); ok {
				return nil, errors.New("database is not currently accepting connections")
			}
		}
		return nil, nil
	}}
	inv := cellsInventory(t)
	f := &cellFaults{r: fr}
	env := &Env{Inv: inv, Hosts: r, Faults: f, Lab: lab, Settle: time.Millisecond}
	return env, fr, f, r, srv.URL
}

func TestCellDrillRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the drill's load for a few seconds")
	}
	tests := []struct {
		name, kill string
		leak       bool
		wantFail   string
	}{
		{"app kill, the other cell unaffected", CellKillApp, false, ""},
		{"app kill, errors leak into the other cell", CellKillApp, true, "cell c1:"},
		{"db kill", CellKillDB, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env, _, faults, runner, url := cellEnv(t, true, tt.leak)
			var progress bytes.Buffer
			env.Progress = &progress
			rep, err := ExecuteCell(context.Background(), env, CellOptions{App: "shop", Cell: "c2", Kill: tt.kill, Duration: time.Second, URL: url, Interval: 5 * time.Millisecond, RecoverTimeout: 10 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			run := rep.Runs[0]
			if rep.Drill != "cell/"+tt.kill || run.Cells == nil {
				t.Fatalf("report %+v", rep)
			}
			c1, c2 := run.Cells.Cells[0], run.Cells.Cells[1]
			if tt.wantFail == "" {
				if !run.OK {
					t.Fatalf("failed: %s\n%s", run.Error, progress.String())
				}
				if c1.Requests < 100 || c1.SuccessRate != 100 || c2.CleanDown == 0 || c2.Errors != 0 || !run.Cells.Recovered {
					t.Errorf("c1 %+v c2 %+v recovered %v", c1, c2, run.Cells.Recovered)
				}
				if c1.Shops != 4 || c2.Shops != 4 {
					t.Errorf("shops %d %d", c1.Shops, c2.Shops)
				}
			} else if run.OK || !strings.Contains(run.Error, tt.wantFail) || rep.Summary.Failed != 1 {
				t.Errorf("ok %v error %q, want %q", run.OK, run.Error, tt.wantFail)
			}
			var md bytes.Buffer
			if err := rep.WriteMarkdown(&md); err != nil || !strings.Contains(md.String(), "| c2 (killed) | 4 |") || strings.Contains(md.String(), "acknowledged writes") {
				t.Errorf("markdown: %v\n%s", err, md.String())
			}
			var js bytes.Buffer
			if err := rep.WriteJSON(&js); err != nil || !strings.Contains(js.String(), `"killedCell": "c2"`) || !strings.Contains(js.String(), `"cleanDown"`) {
				t.Errorf("json: %v\n%.400s", err, js.String())
			}
			calls := fmt.Sprint(runner.Snapshot())
			switch tt.kill {
			case CellKillApp:
				if len(faults.killed) != 2 || faults.killed[0].Host != "shop-c2-1" || faults.killed[1].Host != "shop-c2-2" || faults.killed[0].Kind != FaultKill {
					t.Errorf("faults %v", faults.killed)
				}
			case CellKillDB:
				if len(faults.killed) != 0 || !strings.Contains(calls, "db-2 (root): runuser -u postgres -- psql -X -q -t -A -v ON_ERROR_STOP=1 -c ALTER DATABASE \"shop_c2\" WITH ALLOW_CONNECTIONS false") ||
					!strings.Contains(calls, "db-2 (root): runuser -u postgres -- psql -X -q -t -A -v ON_ERROR_STOP=1 -c ALTER DATABASE \"shop_c2\" WITH ALLOW_CONNECTIONS true") {
					t.Errorf("db calls: %s", calls)
				}
			}
		})
	}
}

func TestCellDrillOutsideTheLab(t *testing.T) {
	env, _, _, _, _ := cellEnv(t, false, false)
	if _, err := ExecuteCell(context.Background(), env, CellOptions{App: "shop", Cell: "c2", Kill: CellKillDB}); !errors.Is(err, ErrNoFaults) {
		t.Errorf("db kill outside the lab: %v", err)
	}
	if SupportedCell(env, CellKillApp) != nil {
		t.Error("app kill refused outside the lab")
	}
	for _, o := range []CellOptions{
		{App: "shop", Cell: "c2", Duration: time.Millisecond},
		{App: "shop", Cell: "c2", Path: "orders"},
		{App: "shop", Cell: "c2", Kill: "disk"},
	} {
		if _, err := ExecuteCell(context.Background(), env, o); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
}

// The drill refuses to inject when the router does not serve every cell
// before the fault, and heals nothing it did not break.
func TestCellDrillNeedsAHealthyBaseline(t *testing.T) {
	env, fr, faults, _, url := cellEnv(t, true, false)
	fr.set("c1", true)
	rep, err := ExecuteCell(context.Background(), env, CellOptions{App: "shop", Cell: "c2", URL: url, Interval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Runs[0].OK || !strings.Contains(rep.Runs[0].Error, "does not serve every cell before the fault") || len(faults.killed) != 0 {
		t.Errorf("run %+v, faults %v", rep.Runs[0], faults.killed)
	}
}

// A database block that does not take fails the run at confirm, and the
// drill still unblocks the database.
func TestCellDrillDBBlockMustTake(t *testing.T) {
	env, _, _, runner, url := cellEnv(t, true, false)
	handle := runner.Handle
	runner.Handle = func(c remotetest.Call) ([]byte, error) {
		if strings.Contains(c.Cmd, "ALLOW_CONNECTIONS false") {
			return nil, nil // "succeeds" without blocking anything
		}
		return handle(c)
	}
	rep, err := ExecuteCell(context.Background(), env, CellOptions{App: "shop", Cell: "c2", Kill: CellKillDB, URL: url, Interval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if run := rep.Runs[0]; run.OK || !strings.Contains(run.Error, "step confirm: database shop_c2 of cell c2 still accepts connections on db-2") {
		t.Errorf("run: ok %v, error %q", run.OK, run.Error)
	}
	if calls := fmt.Sprint(runner.Snapshot()); !strings.Contains(calls, "ALLOW_CONNECTIONS true") {
		t.Errorf("not unblocked: %s", calls)
	}
}
