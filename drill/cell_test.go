package drill

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/router"
)

// cellsInventory is the lab inventory with app shop split into cells c1
// and c2 behind a router pair (as lab/cells-stack.yaml lays it out).
func cellsInventory(t *testing.T) *inventory.Inventory {
	t.Helper()
	inv := labInventory(t)
	a := &inv.Apps[0]
	a.Hosts, a.Standby = nil, ""
	a.Cells = []inventory.Cell{
		{Name: "c1", VIP: "10.213.0.125", Hosts: []string{"shop-c1-1", "shop-c1-2"}, Database: "shop_c1"},
		{Name: "c2", VIP: "10.213.0.124", Hosts: []string{"shop-c2-1", "shop-c2-2"}, Database: "shop_c2"},
	}
	a.Router = &inventory.Router{VIP: "10.213.0.100", Hosts: []string{"shop-router-1", "shop-router-2"}, UnknownShop: "404"}
	return inv
}

func mappingJSON(t *testing.T, shops ...router.Shop) []byte {
	t.Helper()
	b, err := json.Marshal(router.Mapping{App: "shop", Version: 7, Shops: shops})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func active(domain, cell string) router.Shop {
	return router.Shop{Domain: domain, App: "shop", Cell: cell, State: router.Active}
}

func TestClassifyCellAnswer(t *testing.T) {
	hdr := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i+1 < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	tests := []struct {
		name   string
		status int
		h      http.Header
		class  CellClass
		reason string
	}{
		{"app answer", 200, hdr(), CellOK, ""},
		{"app 404 is an answer", 404, hdr(), CellOK, ""},
		{"right cell", 200, hdr(HeaderCell, "c1"), CellOK, ""},
		{"wrong cell", 200, hdr(HeaderCell, "c2"), CellError, "served by cell c2"},
		{"clean 503", 503, hdr(router.HeaderRouter, "cell-down"), CellDown, ""},
		{"app 503 without the marker", 503, hdr(), CellError, "HTTP 503"},
		{"frozen shop", 503, hdr(router.HeaderRouter, "frozen"), CellError, "router frozen (HTTP 503)"},
		{"unknown shop", 421, hdr(router.HeaderRouter, "unknown"), CellError, "router unknown (HTTP 421)"},
		{"cell-down marker on a 502", 502, hdr(router.HeaderRouter, "cell-down"), CellError, "router cell-down (HTTP 502)"},
		{"app 500", 500, hdr(), CellError, "HTTP 500"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, r := ClassifyCellAnswer(tt.status, tt.h, "c1")
			if c != tt.class || r != tt.reason {
				t.Errorf("= %s %q, want %s %q", c, r, tt.class, tt.reason)
			}
		})
	}
}

// cellTimeline builds load results: every ms-th millisecond from..to, one request
// per cell in turn, each answered 5 ms later with class(cell, start).
func cellTimeline(t0 time.Time, from, to, every int, cells []string, class func(cell string, ms int) (CellClass, string)) []CellResult {
	var out []CellResult
	for ms := from; ms < to; ms += every {
		for _, c := range cells {
			cl, reason := class(c, ms)
			st := t0.Add(time.Duration(ms) * time.Millisecond)
			out = append(out, CellResult{Start: st, End: st.Add(5 * time.Millisecond), Shop: c + ".shops.test", Cell: c, Class: cl, Reason: reason})
		}
	}
	return out
}

func TestAnalyzeCells(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ms := func(v int) time.Time { return t0.Add(time.Duration(v) * time.Millisecond) }
	w := CellWindow{Fault: ms(0), Down: ms(100), Heal: ms(5000)}
	cells := []string{"c1", "c2"}
	shops := []CellShop{{"a.shops.test", "c1"}, {"b.shops.test", "c1"}, {"x.shops.test", "c2"}}
	// good: c2 down from 200 ms to 5500 ms with the clean 503, then back.
	good := func(cell string, m int) (CellClass, string) {
		if cell == "c2" && m >= 200 && m < 5500 {
			return CellDown, ""
		}
		return CellOK, ""
	}
	with := func(base func(string, int) (CellClass, string), cell string, at int, cl CellClass, reason string) func(string, int) (CellClass, string) {
		return func(c string, m int) (CellClass, string) {
			if c == cell && m == at {
				return cl, reason
			}
			return base(c, m)
		}
	}
	tests := []struct {
		name     string
		kill     string
		class    func(string, int) (CellClass, string)
		end      int
		wantFail []string
		check    func(t *testing.T, f *CellFigures)
	}{
		{name: "app kill, other cell untouched", kill: CellKillApp, class: good, end: 8000, check: func(t *testing.T, f *CellFigures) {
			c1, c2 := f.Cells[0], f.Cells[1]
			if c1.Shops != 2 || c2.Shops != 1 || !c2.Killed || c1.Killed {
				t.Errorf("shops/killed: %+v %+v", c1, c2)
			}
			if c1.SuccessRate != 100 || c1.Requests != 180 || c2.CleanDown != 106 || c2.Errors != 0 {
				t.Errorf("accounts: %+v %+v", c1, c2)
			}
			if f.FirstCleanDown != 205*time.Millisecond || !f.Recovered || f.Recovery != 500*time.Millisecond || !f.FaultSeen {
				t.Errorf("figures: first 503 %s, recovered %v after %s, seen %v", f.FirstCleanDown, f.Recovered, f.Recovery, f.FaultSeen)
			}
		}},
		{name: "one error in the other cell fails", kill: CellKillApp, class: with(good, "c1", 3000, CellError, "HTTP 502"), end: 8000,
			wantFail: []string{"cell c1: 1 of 180 requests failed (99.44 % answered; 1 HTTP 502)"}},
		{name: "a clean 503 in the other cell fails too", kill: CellKillApp, class: with(good, "c1", 3000, CellDown, ""), end: 8000,
			wantFail: []string{"cell c1: 1 of 180 requests failed", "1 clean 503 cell-down"}},
		{name: "app kill without a clean 503 fails", kill: CellKillApp, class: func(c string, m int) (CellClass, string) {
			if c == "c2" && m >= 200 && m < 5500 {
				return CellError, "timeout"
			}
			return CellOK, ""
		}, end: 8000, wantFail: []string{"no clean 503"}, check: func(t *testing.T, f *CellFigures) {
			if w := strings.Join(f.Warnings, "; "); w != "cell c2: 96 answers after it was down were not the clean 503 (96 timeout)" {
				t.Errorf("warnings %q", w)
			}
		}},
		{name: "an unclean answer after the cell is down is a warning", kill: CellKillApp, class: with(good, "c2", 1000, CellError, "HTTP 502"), end: 8000, check: func(t *testing.T, f *CellFigures) {
			if w := strings.Join(f.Warnings, "; "); w != "cell c2: 1 answers after it was down were not the clean 503 (1 HTTP 502)" {
				t.Errorf("warnings %q", w)
			}
		}},
		{name: "the app's 500 during a db kill is neither a failure nor a warning", kill: CellKillDB, class: with(good, "c2", 1000, CellError, "HTTP 500"), end: 8000, check: func(t *testing.T, f *CellFigures) {
			if len(f.Warnings) > 0 || f.Cells[1].Errors != 1 {
				t.Errorf("warnings %q, c2 %+v", f.Warnings, f.Cells[1])
			}
		}},
		{name: "an unclean answer between the two kills is no warning", kill: CellKillApp, class: with(good, "c2", 50, CellError, "HTTP 502"), end: 8000, check: func(t *testing.T, f *CellFigures) {
			if len(f.Warnings) > 0 {
				t.Errorf("warnings %q", f.Warnings)
			}
		}},
		{name: "error between the two kills is counted, not failed", kill: CellKillApp, class: with(good, "c2", 50, CellError, "HTTP 502"), end: 8000, check: func(t *testing.T, f *CellFigures) {
			if f.Cells[1].Errors != 1 || f.Cells[1].InFlight != 0 {
				t.Errorf("c2 = %+v", f.Cells[1])
			}
		}},
		{name: "not back after the heal fails", kill: CellKillApp, class: func(c string, m int) (CellClass, string) {
			if c == "c2" && m >= 200 {
				return CellDown, ""
			}
			return CellOK, ""
		}, end: 8000, wantFail: []string{"did not answer again for 2s"}},
		{name: "back too briefly before the load stopped fails", kill: CellKillApp, class: good, end: 7000, wantFail: []string{"did not answer again"}},
		{name: "failure before the fault fails", kill: CellKillApp, class: with(good, "c2", -500, CellError, "HTTP 500"), end: 8000,
			wantFail: []string{"cell c2: 1 requests failed before the fault"}},
		{name: "db kill the page does not feel", kill: CellKillDB, class: func(string, int) (CellClass, string) { return CellOK, "" }, end: 8000, check: func(t *testing.T, f *CellFigures) {
			if f.FaultSeen || !f.Recovered || f.Recovery != 0 {
				t.Errorf("seen %v, recovered %v after %s", f.FaultSeen, f.Recovered, f.Recovery)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := cellTimeline(t0, -1000, tt.end, 50, cells, tt.class)
			f := AnalyzeCells(res, shops, cells, "c2", tt.kill, w)
			got := strings.Join(f.Failures, "\n")
			if len(tt.wantFail) == 0 && !f.OK() {
				t.Fatalf("failures:\n%s", got)
			}
			if len(tt.wantFail) > 0 && f.OK() {
				t.Fatalf("passed, want failures %q", tt.wantFail)
			}
			for _, want := range tt.wantFail {
				if !strings.Contains(got, want) {
					t.Errorf("failures:\n%s\nwant %q", got, want)
				}
			}
			if tt.check != nil {
				tt.check(t, f)
			}
		})
	}
}

func TestAnalyzeCellsExcusesRequestsInFlight(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ms := func(v int) time.Time { return t0.Add(time.Duration(v) * time.Millisecond) }
	res := cellTimeline(t0, -1000, 8000, 50, []string{"c1", "c2"}, func(c string, m int) (CellClass, string) {
		if c == "c2" && m >= 200 && m < 5500 {
			return CellDown, ""
		}
		return CellOK, ""
	})
	// Sent before the fault, timed out after it.
	res = append(res, CellResult{Start: ms(-20), End: ms(4980), Cell: "c2", Class: CellError, Reason: "timeout"})
	f := AnalyzeCells(res, nil, []string{"c1", "c2"}, "c2", CellKillApp, CellWindow{Fault: ms(0), Down: ms(100), Heal: ms(5000)})
	if !f.OK() || f.Cells[1].InFlight != 1 || f.Cells[1].Errors != 1 {
		t.Errorf("failures %q, c2 %+v", f.Failures, f.Cells[1])
	}
}

func TestSelectCellShops(t *testing.T) {
	a := &cellsInventory(t).Apps[0]
	m := mappingJSON(t,
		active("a.shops.test", "c1"), active("b.shops.test", "c1"), active("c.shops.test", "c1"),
		active("x.shops.test", "c2"),
		router.Shop{Domain: "moving.shops.test", App: "shop", Cell: "c2", State: router.Frozen, MoveTo: "c1"},
		active("gone.shops.test", "c9"),
	)
	shops, notes, err := SelectCellShops(m, a, "c2", nil, 2)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range shops {
		got = append(got, s.Domain+"@"+s.Cell)
	}
	// Two of c1's three (spread), c2's one repeated at every turn of c2.
	if want := "a.shops.test@c1 x.shops.test@c2 b.shops.test@c1 x.shops.test@c2"; strings.Join(got, " ") != want {
		t.Errorf("shops = %s, want %s", strings.Join(got, " "), want)
	}
	if n := strings.Join(notes, "; "); !strings.Contains(n, "cell c1: 2 of its 3 shops") || !strings.Contains(n, "1 frozen") || !strings.Contains(n, "1 shop(s) mapped to cells shop does not have") {
		t.Errorf("notes = %q", n)
	}
	shops, _, err = SelectCellShops(m, a, "c2", []string{"C.shops.test.", "x.shops.test"}, 0)
	if err != nil || len(shops) != 2 || shops[0].Domain != "c.shops.test" {
		t.Errorf("--shops: %v %v", shops, err)
	}
	errs := []struct {
		name   string
		m      []byte
		failed string
		sample []string
		want   string
	}{
		{"unmapped --shops", m, "c2", []string{"nope.shops.test"}, "--shops nope.shops.test: not in the router's mapping"},
		{"frozen --shops", m, "c2", []string{"moving.shops.test"}, "frozen (a move is in progress)"},
		{"--shops on an unknown cell", m, "c2", []string{"gone.shops.test"}, `cell "c9", which app shop does not have`},
		{"bad --shops", m, "c2", []string{"*.shops.test"}, "--shops: domain"},
		{"killed cell without shops", mappingJSON(t, active("a.shops.test", "c1")), "c2", nil, "cell c2: no active shop in the load"},
		{"only the killed cell", mappingJSON(t, active("x.shops.test", "c2")), "c2", nil, "only cell c2 has shops"},
		{"--shops of one cell", m, "c2", []string{"x.shops.test"}, "only cell c2 has shops"},
		{"not JSON", []byte("cat: mapping.json: No such file"), "c2", nil, "is belay-router-sync@shop running"},
		{"another app's mapping", []byte(`{"app":"blog","shops":[]}`), "c2", nil, `app "blog", expected shop`},
	}
	for _, tt := range errs {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := SelectCellShops(tt.m, a, tt.failed, tt.sample, 0)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestCellDBCommands(t *testing.T) {
	block, unblock := CellDBCommands("shop_c2")
	want := `runuser -u postgres -- psql -X -q -t -A -v ON_ERROR_STOP=1 -c ALTER DATABASE "shop_c2" WITH ALLOW_CONNECTIONS false -c SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = 'shop_c2'`
	if got := strings.Join(block, " "); got != want {
		t.Errorf("block =\n%s\nwant\n%s", got, want)
	}
	if got := strings.Join(unblock, " "); !strings.HasSuffix(got, `-c ALTER DATABASE "shop_c2" WITH ALLOW_CONNECTIONS true`) {
		t.Errorf("unblock = %s", got)
	}
	// Quoting holds even for a name the inventory would refuse.
	block, _ = CellDBCommands(`x"; DROP DATABASE y; --'`)
	if !strings.Contains(block[12], `"x""; DROP DATABASE y; --'"`) || !strings.Contains(block[14], `'x"; DROP DATABASE y; --'''`) {
		t.Errorf("quoting: %q", block)
	}
}

func TestCellStepsAndRunbook(t *testing.T) {
	inv := cellsInventory(t)
	for _, kill := range CellKills {
		for _, lab := range []bool{true, false} {
			steps, err := CellSteps(inv, "shop", "c2", kill, lab)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, s := range steps {
				ids = append(ids, s.ID)
			}
			if got := strings.Join(ids, " "); got != "shops whole load inject confirm hold heal recover verify" {
				t.Errorf("%s lab=%v: steps %s", kill, lab, got)
			}
		}
	}
	steps, _ := CellSteps(inv, "shop", "c2", CellKillApp, true)
	if c := strings.Join(steps[3].Commands, "; "); c != "belay lab fault kill shop-c2-1; belay lab fault kill shop-c2-2" {
		t.Errorf("lab inject: %s", c)
	}
	steps, _ = CellSteps(inv, "shop", "c2", CellKillApp, false)
	if c := strings.Join(steps[3].Commands, "; "); c != "systemctl stop nginx.service" {
		t.Errorf("cloud inject: %s", c)
	}
	bad := []struct{ app, cell, kill, want string }{
		{"shop", "c3", "", `--cell "c3": not a cell of shop, expected one of c1, c2`},
		{"shop", "c2", "disk", `--kill "disk": expected one of app, db`},
		{"blog", "c1", "", `APP "blog": not in the inventory`},
	}
	for _, tt := range bad {
		if _, err := CellSteps(inv, tt.app, tt.cell, tt.kill, true); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: err = %v, want %q", tt, err, tt.want)
		}
	}
	if _, err := CellSteps(labInventory(t), "shop", "c1", "", true); err == nil || !strings.Contains(err.Error(), "has 0 cell(s)") {
		t.Errorf("app without cells: %v", err)
	}
	var b bytes.Buffer
	if err := WriteRunbook(&b, inv); err != nil {
		t.Fatal(err)
	}
	rb := b.String()
	for _, want := range []string{"### cell (app shop)", "`belay drill cell shop --cell c2", "#### --kill app", "belay lab fault kill shop-c2-1", "#### --kill db", `ALLOW_CONNECTIONS false`} {
		if !strings.Contains(rb, want) {
			t.Errorf("runbook lacks %q", want)
		}
	}
	if b.Reset(); WriteRunbook(&b, labInventory(t)) != nil || strings.Contains(b.String(), "### cell") {
		t.Errorf("a stack without cells has a cell drill section")
	}
}
