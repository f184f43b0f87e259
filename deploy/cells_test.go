package deploy

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/belay-sh/belay/deploy/plan"
	"github.com/belay-sh/belay/deploy/run"
	"github.com/belay-sh/belay/deploy/sshx"
	"github.com/belay-sh/belay/deploy/traffic"
	"github.com/belay-sh/belay/hostrelease"
	"github.com/belay-sh/belay/inventory"
)

// cellsInventory is plan/testdata/inventory.json with app shop split into
// n cells of two app servers (shop-cN-1, shop-cN-2) and a router tier.
func cellsInventory(t *testing.T, n int) *inventory.Inventory {
	t.Helper()
	inv, err := inventory.Load("plan/testdata/inventory.json")
	if err != nil {
		t.Fatal(err)
	}
	tmpl := *inv.Host("shop-1")
	a := inv.App("shop")
	a.Hosts, a.Standby = nil, ""
	for i := 1; i <= n; i++ {
		c := inventory.Cell{Name: fmt.Sprintf("c%d", i), VIP: fmt.Sprintf("10.213.0.%d", 126-i), Database: fmt.Sprintf("shop_c%d", i)}
		for j := 1; j <= 2; j++ {
			h := tmpl
			h.Name, h.Cell = fmt.Sprintf("shop-c%d-%d", i, j), c.Name
			h.PrivateAddress = fmt.Sprintf("10.213.0.%d", 20+10*i+j)
			h.SSHAddress = h.PrivateAddress
			inv.Hosts = append(inv.Hosts, h)
			c.Hosts = append(c.Hosts, h.Name)
		}
		a.Cells = append(a.Cells, c)
	}
	a.Router = &inventory.Router{VIP: "10.213.0.100", UnknownShop: "404"}
	return inv
}

func TestWaves(t *testing.T) {
	a := cellsInventory(t, 5).App("shop")
	tests := []struct {
		name string
		o    CellsOptions
		want [][]string
		err  string
	}{
		{"default: first cell, then one at a time", CellsOptions{}, [][]string{{"c1"}, {"c2"}, {"c3"}, {"c4"}, {"c5"}}, ""},
		{"wave size 2", CellsOptions{WaveSize: 2}, [][]string{{"c1"}, {"c2", "c3"}, {"c4", "c5"}}, ""},
		{"wave size larger than the rest", CellsOptions{WaveSize: 9}, [][]string{{"c1"}, {"c2", "c3", "c4", "c5"}}, ""},
		{"canary cell flag", CellsOptions{CanaryCell: "c3", WaveSize: 2}, [][]string{{"c3"}, {"c1", "c2"}, {"c4", "c5"}}, ""},
		{"--cells in the given order", CellsOptions{Cells: []string{"c4", "c2"}}, [][]string{{"c4"}, {"c2"}}, ""},
		{"--cells one cell", CellsOptions{Cells: []string{"c2"}}, [][]string{{"c2"}}, ""},
		{"--cells with the canary cell", CellsOptions{Cells: []string{"c1", "c2", "c3"}, CanaryCell: "c2"}, [][]string{{"c2"}, {"c1"}, {"c3"}}, ""},
		{"unknown cell", CellsOptions{Cells: []string{"c1", "c9"}}, nil, `--cells: app shop has no cell "c9" (cells: c1, c2, c3, c4, c5)`},
		{"duplicate", CellsOptions{Cells: []string{"c1", "c2", "c1"}}, nil, `--cells: cell "c1" named twice`},
		{"empty name", CellsOptions{Cells: []string{"c1", ""}}, nil, "--cells: empty cell name"},
		{"unknown canary cell", CellsOptions{CanaryCell: "c9"}, nil, `--canary-cell: app shop has no cell "c9"`},
		{"canary cell outside --cells", CellsOptions{Cells: []string{"c1", "c2"}, CanaryCell: "c3"}, nil, "--canary-cell c3: not among --cells c1,c2"},
		{"negative wave size", CellsOptions{WaveSize: -1}, nil, "--wave-size -1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Waves(a, tc.o)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %v %v, want %v", got, err, tc.want)
			}
		})
	}
	plain := testDeployer(t).Inv.App("shop")
	if _, err := Waves(plain, CellsOptions{Cells: []string{"c1"}}); err == nil || !strings.Contains(err.Error(), "--cells: app shop has no cells") {
		t.Fatalf("--cells on an app without cells: %v", err)
	}
}

// TestCellInventory: the per-app pipeline, given a cell's inventory view,
// plans steps on that cell's servers only and leaves the inventory alone.
func TestCellInventory(t *testing.T) {
	inv := cellsInventory(t, 3)
	ci, err := CellInventory(inv, "shop", "c2")
	if err != nil {
		t.Fatal(err)
	}
	a := ci.App("shop")
	if !slices.Equal(a.Hosts, []string{"shop-c2-1", "shop-c2-2"}) || a.VIP != "10.213.0.124" || a.Cells != nil || a.Router != nil {
		t.Fatalf("cell view: %+v", a)
	}
	if orig := inv.App("shop"); len(orig.Hosts) != 0 || len(orig.Cells) != 3 {
		t.Fatalf("the inventory changed: %+v", orig)
	}
	p, err := plan.Deploy(plan.Input{Inventory: ci, App: "shop", Release: "v2", Artifact: testArtifact(), Strategy: canaryStrategy()})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range p.Steps {
		for _, h := range s.Hosts {
			if !strings.HasPrefix(h, "shop-c2-") {
				t.Fatalf("step %s runs on %s, outside cell c2", s.ID, h)
			}
		}
	}
	if _, err := CellInventory(inv, "shop", "c9"); err == nil || !strings.Contains(err.Error(), `no cell "c9"`) {
		t.Fatalf("unknown cell: %v", err)
	}
	d := &Deployer{Inv: inv, App: "shop"}
	if _, err := d.app(); err == nil || !strings.Contains(err.Error(), "has cells (c1, c2, c3)") {
		t.Fatalf("the whole-app pipeline on a cells app: %v", err)
	}
}

func testArtifact() *hostrelease.Artifact {
	return &hostrelease.Artifact{Kind: hostrelease.Binary, Size: 1, SHA256: strings.Repeat("a", 64)}
}

func canaryStrategy() plan.Strategy {
	return plan.Strategy{Rules: traffic.Rules{Shops: []string{"a.example.com"}}, Steps: []int{10, 50}, Pause: time.Minute}
}

// fakeCells records the cells' rollouts and rollbacks.
type fakeCells struct {
	mu        sync.Mutex
	calls     []string
	prev      map[string]string
	fail      map[string]bool          // these cells' own rollout fails (and rolls itself back)
	block     map[string]chan struct{} // these cells wait for it to close (or ctx)
	rbFail    map[string]bool
	inFlight  int
	maxFlight int
}

func (f *fakeCells) ops() cellOps {
	return cellOps{
		deploy: func(ctx context.Context, c string) (*Outcome, error) {
			f.mu.Lock()
			f.calls = append(f.calls, "deploy "+c)
			f.inFlight++
			f.maxFlight = max(f.maxFlight, f.inFlight)
			f.mu.Unlock()
			defer func() { f.mu.Lock(); f.inFlight--; f.mu.Unlock() }()
			out := &Outcome{App: "shop", Action: "deploy", Release: "v2", Previous: f.prev[c], Result: "ok"}
			if ch := f.block[c]; ch != nil {
				select {
				case <-ch:
				case <-ctx.Done():
					out.Result = "rolled-back"
					return out, fmt.Errorf("%w; every host was rolled back to %s", context.Cause(ctx), out.Previous)
				}
			}
			time.Sleep(5 * time.Millisecond) // lets a sequential order show overlaps if there were any
			if f.fail[c] {
				out.Result = "rolled-back"
				return out, errors.New("canary verdict at 10%: canary 5xx 7%; every host was rolled back to " + out.Previous)
			}
			return out, nil
		},
		rollback: func(ctx context.Context, c, to string) (*Outcome, error) {
			f.mu.Lock()
			f.calls = append(f.calls, "rollback "+c+" to "+to)
			f.mu.Unlock()
			if f.rbFail[c] {
				return &Outcome{Result: "failed"}, errors.New("host shop-" + c + "-1 unreachable")
			}
			return &Outcome{App: "shop", Action: "rollback", Release: to, Result: "ok"}, nil
		},
		note: func(string, ...any) {},
	}
}

func outcomeFor(t *testing.T, n int, o CellsOptions) *CellsOutcome {
	t.Helper()
	a := cellsInventory(t, n).App("shop")
	w, err := Waves(a, o)
	if err != nil {
		t.Fatal(err)
	}
	return newCellsOutcome(a, "v2", w)
}

// TestRunWavesOrder: the canary cell alone first, then each wave after the
// previous one ended; the cells of a wave run at once.
func TestRunWavesOrder(t *testing.T) {
	f := &fakeCells{prev: map[string]string{}}
	out := outcomeFor(t, 4, CellsOptions{CanaryCell: "c3"})
	if err := runWaves(context.Background(), f.ops(), out); err != nil {
		t.Fatal(err)
	}
	if want := []string{"deploy c3", "deploy c1", "deploy c2", "deploy c4"}; !slices.Equal(f.calls, want) || f.maxFlight != 1 {
		t.Fatalf("calls %v (max %d at once), want %v one at a time", f.calls, f.maxFlight, want)
	}
	if out.Result != "ok" || len(out.Touched) != 4 || len(out.Untouched) != 0 || len(out.RolledBack) != 0 {
		t.Fatalf("outcome %+v", out)
	}

	// Wave size 2: c2 and c3 run together, and both finish before c4 starts.
	release := make(chan struct{})
	f = &fakeCells{prev: map[string]string{}, block: map[string]chan struct{}{"c2": release, "c3": release}}
	out = outcomeFor(t, 4, CellsOptions{WaveSize: 2})
	go func() {
		for {
			f.mu.Lock()
			n := f.inFlight
			f.mu.Unlock()
			if n == 2 {
				close(release)
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	if err := runWaves(context.Background(), f.ops(), out); err != nil {
		t.Fatal(err)
	}
	if f.maxFlight != 2 || f.calls[0] != "deploy c1" || f.calls[3] != "deploy c4" || !reflect.DeepEqual(out.Waves, [][]string{{"c1"}, {"c2", "c3"}, {"c4"}}) {
		t.Fatalf("calls %v, max %d at once, waves %v", f.calls, f.maxFlight, out.Waves)
	}
}

// TestRunWavesRollsBackEveryTouchedCell: a bad verdict in wave 2 (cell c3,
// after c1 the canary cell and c2) rolls back c1 and c2, each to its own
// previous release; c4 and c5 never get a command.
func TestRunWavesRollsBackEveryTouchedCell(t *testing.T) {
	f := &fakeCells{prev: map[string]string{"c1": "v1", "c2": "v0", "c3": "v1"}, fail: map[string]bool{"c3": true}}
	out := outcomeFor(t, 5, CellsOptions{})
	err := runWaves(context.Background(), f.ops(), out)
	if err == nil {
		t.Fatal("a bad verdict passed")
	}
	deploys := slices.DeleteFunc(slices.Clone(f.calls), func(s string) bool { return !strings.HasPrefix(s, "deploy") })
	if !slices.Equal(deploys, []string{"deploy c1", "deploy c2", "deploy c3"}) {
		t.Fatalf("deploys %v", deploys)
	}
	rbs := slices.DeleteFunc(slices.Clone(f.calls), func(s string) bool { return !strings.HasPrefix(s, "rollback") })
	slices.Sort(rbs)
	if !slices.Equal(rbs, []string{"rollback c1 to v1", "rollback c2 to v0"}) {
		t.Fatalf("rollbacks %v (c3 rolled itself back; c4, c5 untouched)", rbs)
	}
	if out.Result != "rolled-back" || !slices.Equal(out.Touched, []string{"c1", "c2", "c3"}) ||
		!slices.Equal(out.RolledBack, []string{"c1", "c2", "c3"}) || !slices.Equal(out.Untouched, []string{"c4", "c5"}) {
		t.Fatalf("outcome %s touched %v rolled back %v untouched %v", out.Result, out.Touched, out.RolledBack, out.Untouched)
	}
	for _, c := range out.Cells[3:] {
		if c.State != CellUntouched || c.Deploy != nil || c.Rollback != nil {
			t.Fatalf("cell %s: %+v", c.Cell, c)
		}
	}
	for _, want := range []string{"cell c3: canary verdict", "touched cells c1, c2, c3", "rolled back c1, c2, c3", "never touched c4, c5"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

// TestRunWavesStopsTheWave: a failing cell stops the other cells of its
// wave (they roll themselves back) and the rollback of the earlier cells
// reports one that fails, and a first release with nothing to go back to.
func TestRunWavesStopsTheWave(t *testing.T) {
	f := &fakeCells{prev: map[string]string{"c1": "v1", "c2": "v1", "c3": "v1", "c4": "v1"},
		fail:   map[string]bool{"c4": true},
		block:  map[string]chan struct{}{"c5": make(chan struct{})}, // never released: only the stop ends it
		rbFail: map[string]bool{"c2": true}}
	out := outcomeFor(t, 6, CellsOptions{WaveSize: 2})
	err := runWaves(context.Background(), f.ops(), out)
	if err == nil || out.Result != "rollback-failed" {
		t.Fatalf("result %s, err %v", out.Result, err)
	}
	byCell := map[string]CellOutcome{}
	for _, c := range out.Cells {
		byCell[c.Cell] = c
	}
	if s := byCell["c5"]; s.State != CellRolledBack || !strings.Contains(s.Error, "stopped: cell c4 failed") {
		t.Fatalf("c5 in c4's wave: %+v", s)
	}
	if byCell["c1"].State != CellRolledBack || byCell["c3"].State != CellRolledBack || byCell["c2"].State != CellRollbackFailed {
		t.Fatalf("states c1 %s c2 %s c3 %s", byCell["c1"].State, byCell["c2"].State, byCell["c3"].State)
	}
	if byCell["c6"].State != CellUntouched || !strings.Contains(err.Error(), "ROLLBACK FAILED: cell c2") {
		t.Fatalf("c6 %s, err %v", byCell["c6"].State, err)
	}

	// A cell on its first release has nothing to roll back to: said, not hidden.
	f = &fakeCells{prev: map[string]string{}, fail: map[string]bool{"c2": true}}
	out = outcomeFor(t, 2, CellsOptions{})
	err = runWaves(context.Background(), f.ops(), out)
	if out.Cells[0].State != CellRollbackFailed || !strings.Contains(out.Cells[0].Error, "no previous release") || err == nil {
		t.Fatalf("first release: %+v %v", out.Cells[0], err)
	}
}

// TestDeployCellsBadInputTouchesNothing: bad cell names, --stop-after over
// several cells, or a plan one cell refuses stop before any host is dialled.
func TestDeployCellsBadInputTouchesNothing(t *testing.T) {
	var mu sync.Mutex
	var dialled []string
	pool := sshx.NewPool(func(ctx context.Context, host string) (*sshx.Client, error) {
		mu.Lock()
		dialled = append(dialled, host)
		mu.Unlock()
		return nil, errors.New("no network in this test")
	})
	t.Cleanup(pool.Close)
	d := &Deployer{Inv: cellsInventory(t, 3), App: "shop", Pool: pool, Runner: &run.Runner{Pool: pool}}
	in := plan.Input{Release: "v2", Artifact: testArtifact(), Strategy: canaryStrategy()}
	stop := in
	stop.Strategy.StopAfter = "whitelist"
	bad := in
	bad.Strategy.Steps = []int{50, 10}
	tests := []struct {
		name string
		in   plan.Input
		o    CellsOptions
		err  string
	}{
		{"unknown cell", in, CellsOptions{Cells: []string{"c7"}}, `--cells: app shop has no cell "c7"`},
		{"duplicate", in, CellsOptions{Cells: []string{"c2", "c2"}}, `--cells: cell "c2" named twice`},
		{"stop-after over cells", stop, CellsOptions{}, "--stop-after: a cells deploy pauses one cell at a time"},
		{"bad strategy", bad, CellsOptions{}, "cell c1: "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := d.DeployCells(context.Background(), tc.in, tc.o)
			if err == nil || out != nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("got %v %v, want %q", out, err, tc.err)
			}
		})
		if tc.in.Strategy.StopAfter != "" {
			continue // an env-only deploy is checked with the same plans
		}
		t.Run("env-only "+tc.name, func(t *testing.T) {
			out, err := d.DeployCellsEnvOnly(context.Background(), tc.in, tc.o, 3)
			if err == nil || out != nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("got %v %v, want %q", out, err, tc.err)
			}
		})
	}
	if out, err := d.DeployCellsEnvOnly(context.Background(), in, CellsOptions{}, 0); err == nil || out != nil || !strings.Contains(err.Error(), "no env set") {
		t.Fatalf("env-only without an env: %v %v", out, err)
	}
	if len(dialled) != 0 {
		t.Fatalf("bad input dialled %v", dialled)
	}
	// Good input goes as far as connecting, and stops there when a host does not answer.
	_, err := d.DeployCells(context.Background(), in, CellsOptions{Cells: []string{"c2"}})
	if err == nil || !strings.Contains(err.Error(), "nothing was run anywhere") || len(dialled) != 2 || !strings.HasPrefix(dialled[0], "shop-c2-") {
		t.Fatalf("connect: %v, dialled %v", err, dialled)
	}
	dialled = nil
	_, err = d.DeployCellsEnvOnly(context.Background(), plan.Input{Strategy: canaryStrategy()}, CellsOptions{Cells: []string{"c3"}}, 2)
	if err == nil || !strings.Contains(err.Error(), "nothing was run anywhere") || len(dialled) != 2 || !strings.HasPrefix(dialled[0], "shop-c3-") {
		t.Fatalf("env-only connect: %v, dialled %v", err, dialled)
	}
}

func TestJudgeCell(t *testing.T) {
	ok := func(h, rel string) *HostState {
		return &HostState{Host: h, Current: rel, Stable: "active", Health: "200"}
	}
	tests := []struct {
		name    string
		states  []*HostState
		holders []string
		rel     string
		probs   []string
	}{
		{"healthy", []*HostState{ok("a", "v2"), ok("b", "v2"), {Host: "s", Standby: true, Current: "v1"}}, []string{"a"}, "v2", nil},
		{"no VIP holder", []*HostState{ok("a", "v2"), ok("b", "v2")}, []string{}, "v2", []string{"no server holds the VIP 10.0.0.1"}},
		{"split brain", []*HostState{ok("a", "v2"), ok("b", "v2")}, []string{"a", "b"}, "v2", []string{"VIP 10.0.0.1 held by 2 servers (a, b)"}},
		{"disagree", []*HostState{ok("a", "v2"), ok("b", "v1")}, []string{"a"}, "", []string{"servers disagree: v1 on b; v2 on a"}},
		{"unreadable and down", []*HostState{{Host: "a", Error: "dial: refused"}, {Host: "b", Current: "v2", Stable: "failed", Health: "000"}}, []string{"b"}, "v2",
			[]string{"a unreadable: dial: refused", "b: stable unit failed", "b: health check answered 000"}},
		{"nothing deployed", []*HostState{{Host: "a", Stable: "inactive", Health: "000"}}, []string{"a"}, "",
			[]string{"a: stable unit inactive", "a: health check answered 000", "no release deployed"}},
	}
	for _, tc := range tests {
		cs := &CellState{VIP: "10.0.0.1", States: tc.states, VIPHolders: tc.holders}
		judgeCell(cs)
		if cs.Release != tc.rel || !slices.Equal(cs.Problems, tc.probs) || cs.Healthy != (len(tc.probs) == 0) {
			t.Errorf("%s: release %q problems %q healthy %v", tc.name, cs.Release, cs.Problems, cs.Healthy)
		}
	}
	if !holdsVIP("2: eth1    inet 10.213.0.125/32 scope global eth1\\       valid_lft forever", "10.213.0.125") || holdsVIP("inet 10.213.0.12/24", "10.213.0.125") {
		t.Error("holdsVIP")
	}
}

// TestForCellProgress: each cell's progress lines carry its name.
func TestForCellProgress(t *testing.T) {
	var b strings.Builder
	d := &Deployer{Inv: cellsInventory(t, 2), App: "shop", Runner: &run.Runner{Progress: &b}}
	c2, err := d.ForCell("c2")
	if err != nil {
		t.Fatal(err)
	}
	c2.Runner.Note("rolling back every host: %s", "x")
	d.note("== wave 1")
	if got := b.String(); got != "cell c2: rolling back every host: x\n== wave 1\n" {
		t.Fatalf("progress %q", got)
	}
	if c2.Runner == d.Runner || d.Runner.Fence != nil {
		t.Fatal("the cell shares the app's runner")
	}
}
