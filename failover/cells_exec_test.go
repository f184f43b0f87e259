package failover

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/belay-sh/belay/remote/remotetest"
	"github.com/belay-sh/belay/router/admin"
	"github.com/belay-sh/belay/router/store"
)

// fakeRouter answers the cells request of a router: its own report gets
// newer at every ask once router-sync was started (synced), never before.
type fakeRouter struct {
	synced bool
	asks   int
	error  string
	down   bool
}

func (r *fakeRouter) answer(host string) []byte {
	r.asks++
	res := admin.Response{Cells: []admin.CellInfo{{Name: "c1", Addrs: []string{"10.213.0.150:80"}, Shops: 3, Health: "up"}, {Name: "c2", Addrs: []string{"10.213.0.160:80"}, Shops: 2, Health: "up"}}}
	if r.down {
		res.Cells[1].Health = "down: dial tcp 10.213.0.160:80: connection refused"
	}
	base := time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC)
	// A stale row (an earlier switch) until the sync runs.
	res.Routers = []store.Router{{Name: host, Version: 3, AppliedAt: base, SeenAt: base}}
	if r.synced {
		res.Routers[0] = store.Router{Name: host, Version: 9, AppliedAt: base.Add(time.Hour), SeenAt: base.Add(time.Duration(r.asks) * time.Hour), Error: r.error}
	}
	b, _ := json.Marshal(res)
	return b
}

// cellsSite scripts a cells stack around fakeSite's database behaviour.
type cellsSite struct {
	fakeSite
	router fakeRouter
}

func (f *cellsSite) handle(c remotetest.Call) ([]byte, error) {
	switch {
	case c.Root && strings.Contains(c.Cmd, "systemctl start nginx.service belay-router-sync@shop.service"):
		if !f.promoted {
			return nil, errors.New("router-sync started before the promotion")
		}
		f.router.synced = true
		return nil, nil
	case !c.Root && strings.Contains(c.Cmd, "host shop-db --app shop"):
		return f.router.answer(c.Host), nil
	}
	return f.fakeSite.handle(c)
}

func TestExecuteCellsSwitch(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(srv.Close)
	inv := cellsInventory(t, false)
	p := mustPlan(t, inv)
	u, _ := url.Parse(srv.URL)
	for i := range p.Steps {
		if p.Steps[i].Kind == KindHTTP {
			p.Steps[i].Address = u.Host // stands in for the standby router
		}
	}
	f := &cellsSite{}
	r := &remotetest.Runner{Handle: f.handle}
	d := &FileDNSDouble{Path: filepath.Join(t.TempDir(), "dns.json")}
	env := &Env{Inv: inv, Hosts: r, DNS: d, Zone: "lab.belay.test", TTL: 60, StatePath: filepath.Join(t.TempDir(), "state.json"),
		HealthTimeout: 2 * time.Second, Out: &bytes.Buffer{}, Sleep: func(time.Duration) {},
		OldSiteReachable: func(context.Context) (bool, string) { return true, "" }}
	res, err := Execute(context.Background(), env, p)
	if err != nil {
		t.Fatalf("Execute: %v\n%s", err, env.Out)
	}
	var routerNote string
	for _, s := range res.Steps {
		if s.Status != "done" {
			t.Errorf("step %s: %s (%s)", s.ID, s.Status, s.Note)
		}
		if s.ID == "router-check/shop-router-standby" {
			routerNote = s.Note
		}
	}
	if !strings.Contains(routerNote, "mapping version 9 (5 shops on 2 cells") {
		t.Errorf("router check note %q", routerNote)
	}
	if f.router.asks < 2 {
		t.Errorf("router asked %d times: the check must see a fresh report after the first answer", f.router.asks)
	}
	recs, err := d.Records()
	if err != nil {
		t.Fatal(err)
	}
	if got := recs["shop.lab.belay.test"].Address; got != "10.213.0.170" {
		t.Errorf("DNS record = %q, want the standby router", got)
	}
	fenced := map[string]bool{}
	for _, c := range r.Snapshot() {
		if c.Root && strings.HasPrefix(c.Cmd, "systemctl stop") {
			fenced[c.Host] = true
		}
		if c.Host == "db-standby" && strings.Contains(c.Cmd, "pg_promote") {
			for _, h := range []string{"shop-router-1", "shop-router-2", "shop-c1-1", "shop-c1-2", "shop-c2-1", "shop-c2-2", "db-1", "db-2"} {
				if !fenced[h] {
					t.Errorf("promoted before fencing %s", h)
				}
			}
		}
	}
}

// TestJudgeRouter: what the router check accepts, waits for, and refuses.
func TestJudgeRouter(t *testing.T) {
	seen := time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC)
	answer := func(mut func(*admin.Response)) []byte {
		res := admin.Response{Cells: []admin.CellInfo{{Name: "c1", Health: "up", Shops: 1}},
			Routers: []store.Router{{Name: "r", Version: 4, AppliedAt: seen, SeenAt: seen}, {Name: "other", Version: 1, SeenAt: seen.Add(time.Hour)}}}
		if mut != nil {
			mut(&res)
		}
		b, _ := json.Marshal(res)
		return b
	}
	later := func(r *admin.Response) { r.Routers[0].SeenAt = seen.Add(5 * time.Second) }
	tests := []struct {
		name    string
		first   *time.Time
		out     []byte
		want    string // "" = accepted
		notYet  bool
		setsFst bool
	}{
		{"fresh report", &seen, answer(later), "", false, false},
		{"first answer only records", nil, answer(nil), "waiting for a report after", true, true},
		{"no new report", &seen, answer(nil), "has not reported since", true, false},
		{"other router's report does not count", &seen, answer(func(r *admin.Response) { r.Routers = r.Routers[1:] }), "has not reported to the database yet", true, false},
		{"refused mapping", &seen, answer(func(r *admin.Response) { later(r); r.Routers[0].Error = "shop a.example on unknown cell c9" }), "refused the mapping", false, false},
		{"cell unreachable", &seen, answer(func(r *admin.Response) { later(r); r.Cells[0].Health = "down: refused" }), "cannot reach cell c1", false, false},
		{"no cells", &seen, answer(func(r *admin.Response) { later(r); r.Cells = nil }), "lists no cell", false, false},
		{"helper error", &seen, answer(func(r *admin.Response) { r.Error = "database: connection refused" }), "shop-db: database", false, false},
		{"never loaded", &seen, answer(func(r *admin.Response) { later(r); r.Routers[0].AppliedAt = time.Time{} }), "has not loaded a mapping", true, false},
		{"not JSON", &seen, []byte("sudo: a password is required"), "no JSON", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			first := tt.first
			note, err := judgeRouter("r", tt.out, &first)
			if tt.want == "" {
				if err != nil || !strings.Contains(note, "version 4") {
					t.Fatalf("= %q, %v; want accepted", note, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want %q", err, tt.want)
			}
			if errors.Is(err, errNotYet) != tt.notYet {
				t.Errorf("errNotYet = %v, want %v", errors.Is(err, errNotYet), tt.notYet)
			}
			if (tt.first == nil && first != nil) != tt.setsFst {
				t.Errorf("first set = %v, want %v", first != nil, tt.setsFst)
			}
		})
	}
}

// TestExecuteRouterCheckTimesOut: a standby router whose sync never reports
// stops the switch at its check (the shops would not be routed).
func TestExecuteRouterCheckTimesOut(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)
	f := &fakeRouter{}
	r := &remotetest.Runner{Handle: func(c remotetest.Call) ([]byte, error) { return f.answer(c.Host), nil }}
	x := &executor{env: &Env{Hosts: r, Now: func() time.Time { return now }, Sleep: func(d time.Duration) { now = now.Add(d) }}, st: &State{Facts: map[string]string{}}}
	s := routerCheck(cellsInventory(t, false).Apps[0], "shop-router-standby", "standby")
	_, _, err := x.run(context.Background(), s)
	if err == nil || !strings.Contains(err.Error(), "not routing after 2m0s") || !strings.Contains(err.Error(), "has not reported since") {
		t.Fatalf("err = %v", err)
	}
}
