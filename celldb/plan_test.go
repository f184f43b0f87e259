package celldb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/belay-sh/belay/hostcmd"
	"github.com/belay-sh/belay/inventory"
)

// testInventory: app shop with shared cell c1 and dedicated cell c2
// (servers shop-c2-1/-2, pair shop-c2-db-1/-2 in formation shop_c2).
func testInventory() *inventory.Inventory {
	return &inventory.Inventory{
		Stack:    "prod",
		Database: inventory.Database{Nodes: []string{"db-1", "db-2"}, Monitor: "db-monitor"},
		Apps: []inventory.App{{Name: "shop", Domains: []string{"shop.example.com"}, Cells: []inventory.Cell{
			{Name: "c1", VIP: "10.0.1.10", Hosts: []string{"shop-c1-1", "shop-c1-2"}, Database: "shop_c1"},
			{Name: "c2", VIP: "10.0.2.10", Hosts: []string{"shop-c2-1", "shop-c2-2"}, Database: "shop_c2",
				DBNodes: []string{"shop-c2-db-1", "shop-c2-db-2"}, Formation: "shop_c2"},
		}}},
	}
}

func goodFacts() Facts {
	return Facts{Formation: "1/1", SharedPrimary: "db-2", PairPrimary: "shop-c2-db-1", SourceTables: 3, TargetTables: 0}
}

func target(t *testing.T) *Target {
	t.Helper()
	tg, err := Resolve(testInventory(), "shop", "c2")
	if err != nil {
		t.Fatal(err)
	}
	return tg
}

func ids(p *Plan) []string {
	var out []string
	for _, s := range p.Steps {
		out = append(out, s.ID)
	}
	return out
}

func TestBuildOrder(t *testing.T) {
	p, err := Build("prod", target(t), goodFacts())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"check/formation", "check/target", "check/source",
		"freeze/shop-c2-1", "freeze/shop-c2-2", "stop/shop-c2-1", "stop/shop-c2-2",
		"copy", "verify", "converge/shop-c2-1", "converge/shop-c2-2", "start/shop-c2-1", "start/shop-c2-2", "health"}
	if !slices.Equal(ids(p), want) {
		t.Fatalf("steps\n%q\nwant\n%q", ids(p), want)
	}
	cp := p.Steps[slices.Index(ids(p), "copy")]
	if cp.From != "db-2" || cp.To != "shop-c2-db-1" || cp.Argv[3] != "dump" || cp.Receive[3] != "restore" || cp.Argv[4] != "shop_c2" {
		t.Errorf("copy step = %+v", cp)
	}
	var b strings.Builder
	if err := p.Print(&b); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"db-2 (stack's primary) -> shop-c2-db-1", "ssh db-2 sudo -n /usr/local/bin/belay host cell-db dump shop_c2 | ssh shop-c2-db-1 sudo -n /usr/local/bin/belay host cell-db restore shop_c2", "drop it when satisfied"} {
		if !strings.Contains(b.String(), w) {
			t.Errorf("plan print lacks %q:\n%s", w, b.String())
		}
	}
}

// Every root command the plan runs on a data node or the monitor is one its
// sudoers allow (hostcmd.ForHost with the roles' inputs).
func TestPlanCommandsAreInSudoers(t *testing.T) {
	p, err := Build("prod", target(t), goodFacts())
	if err != nil {
		t.Fatal(err)
	}
	allowed := map[string][][]string{
		"db-monitor":   hostcmd.ForHost(hostcmd.Host{Roles: []inventory.Role{inventory.RoleDBMonitor}, Formations: []string{"shop_c2"}}),
		"db-2":         hostcmd.ForHost(hostcmd.Host{Roles: []inventory.Role{inventory.RoleDB}, MovedCells: []string{"shop_c2"}}),
		"shop-c2-db-1": hostcmd.ForHost(hostcmd.Host{Roles: []inventory.Role{inventory.RoleDB}, CellDB: "shop_c2"}),
		"shop-c2-1":    hostcmd.ForHost(hostcmd.Host{Roles: []inventory.Role{inventory.RoleApp}, Apps: []string{"shop"}}),
		"shop-c2-2":    hostcmd.ForHost(hostcmd.Host{Roles: []inventory.Role{inventory.RoleApp}, Apps: []string{"shop"}}),
	}
	in := func(host string, argv []string) {
		t.Helper()
		if !slices.ContainsFunc(allowed[host], func(a []string) bool { return slices.Equal(a, argv) }) {
			t.Errorf("%s: %q is not in its sudoers", host, argv)
		}
	}
	for _, s := range p.Steps {
		switch s.Kind {
		case KindRoot:
			in(s.Host, s.Argv)
		case KindCopy:
			in(s.From, s.Argv)
			in(s.To, s.Receive)
		case KindVerify:
			in(s.From, s.Argv)
			in(s.To, s.Argv)
			in(s.To, s.Mark)
		}
	}
	in("shop-c2-db-1", hostcmd.CellDB(hostcmd.CellDBReset, "shop_c2"))
	in("shop-c2-db-1", hostcmd.CellDB(hostcmd.CellDBMarker, "shop_c2"))
	// The stack's nodes may read and dump a moved cell, never write it.
	for _, v := range []string{hostcmd.CellDBRestore, hostcmd.CellDBReset, hostcmd.CellDBMark} {
		if slices.ContainsFunc(allowed["db-2"], func(a []string) bool { return slices.Equal(a, hostcmd.CellDB(v, "shop_c2")) }) {
			t.Errorf("the stack's node may run %s", v)
		}
	}
}

func TestBuildRefusals(t *testing.T) {
	tg := target(t)
	for _, c := range []struct {
		name string
		f    func(*Facts)
		want string
	}{
		{"formation down", func(f *Facts) { f.Formation = "1/0" }, `formation shop_c2 is "1/0"`},
		{"no pair primary", func(f *Facts) { f.PairPrimary = "" }, "no writable node among shop-c2-db-1"},
		{"no shared primary", func(f *Facts) { f.SharedPrimary = "" }, "no writable node among the stack's db-1, db-2"},
		{"target has tables", func(f *Facts) { f.TargetTables = 2 }, "already holds 2 user tables"},
		{"source absent", func(f *Facts) { f.SourceTables = -1 }, "a new dedicated cell needs no copy"},
		{"source unreadable", func(f *Facts) { f.Errs = map[string]string{"source": "sudo: a password is required"} }, "sudo: a password is required"},
	} {
		f := goodFacts()
		c.f(&f)
		_, err := Build("prod", tg, f)
		if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want a refusal with %q", c.name, err, c.want)
		}
	}
	inv := testInventory()
	for _, c := range []struct{ app, cell, want string }{
		{"shop", "c1", "database: shared"}, {"shop", "c9", "no cell"}, {"web", "c1", "no app"},
	} {
		if _, err := Resolve(inv, c.app, c.cell); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Resolve %s/%s: %v", c.app, c.cell, err)
		}
	}
}

// With the marker there the plan is the switch only, and says so.
func TestBuildAfterCopy(t *testing.T) {
	f := goodFacts()
	f.TargetTables = 3
	f.Marker = &Marker{Source: "db-2", Tables: 3, Rows: 530, At: time.Date(2026, 12, 6, 18, 0, 0, 0, time.UTC)}
	p, err := Build("prod", target(t), f)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"converge/shop-c2-1", "converge/shop-c2-2", "start/shop-c2-1", "start/shop-c2-2", "health"}
	if !slices.Equal(ids(p), want) || p.Copied == nil || !strings.Contains(strings.Join(p.Notes, " "), "copied already") {
		t.Fatalf("plan after the copy: %q %v", ids(p), p.Notes)
	}
}

// fakeHosts records every command and fails the one named in failAt.
type fakeHosts struct {
	mu     sync.Mutex
	calls  []string
	failAt string // "host verb" substring of a call that fails
}

func (f *fakeHosts) record(host, what string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	call := host + " " + what
	f.calls = append(f.calls, call)
	if f.failAt != "" && strings.Contains(call, f.failAt) {
		return fmt.Errorf("injected failure of %s", call)
	}
	return nil
}

func (f *fakeHosts) Run(_ context.Context, host, cmd string) ([]byte, error) {
	return nil, f.record(host, cmd)
}

func (f *fakeHosts) RunRoot(_ context.Context, host string, argv ...string) ([]byte, error) {
	err := f.record(host, strings.Join(argv, " "))
	switch {
	case err != nil:
		return nil, err
	case slices.Contains(argv, hostcmd.CellDBCounts):
		return []byte("500\tpublic.orders\n30\tpublic.shops\n"), nil
	case slices.Contains(argv, hostcmd.CellDBTables) && strings.HasPrefix(host, "shop-c2-db"):
		return []byte("0\n"), nil
	case slices.Contains(argv, hostcmd.CellDBTables):
		return []byte("2\n"), nil
	case strings.Contains(strings.Join(argv, " "), "formationid = 'shop_c2'"):
		return []byte("1/1\n"), nil
	}
	return nil, nil
}

func (f *fakeHosts) Stream(_ context.Context, host, cmd string, stdout, _ io.Writer) error {
	if err := f.record(host, cmd); err != nil {
		return err
	}
	_, err := io.WriteString(stdout, "PGDMP archive")
	return err
}

func (f *fakeHosts) RunInput(_ context.Context, host, cmd string, stdin io.Reader) ([]byte, error) {
	data, _ := io.ReadAll(stdin)
	if err := f.record(host, cmd); err != nil {
		return nil, err
	}
	if strings.Contains(cmd, " mark ") && !strings.Contains(string(data), `"public.orders":500`) {
		return nil, fmt.Errorf("mark got %s", data)
	}
	return []byte("restored into shop_c2\n"), nil
}

func (f *fakeHosts) env() *Env {
	return &Env{Hosts: f, Pipe: f,
		Converge: func(_ context.Context, host string) error { return f.record(host, "converge") },
		HTTPGet: func(context.Context, string, string) (int, error) {
			if err := f.record("vip", "GET"); err != nil {
				return 0, err
			}
			return 200, nil
		}, Poll: time.Millisecond}
}

// TestExecuteFailures fails each step in turn: a check changes nothing; a
// failure while the cell is frozen restarts it on its old database (and
// empties the pair once the copy started); a failure in the switch leaves it
// and names the resume.
func TestExecuteFailures(t *testing.T) {
	start := "systemctl start keepalived.service nginx.service belay-route-watch.service belay-app@shop.service"
	reset := "shop-c2-db-1 /usr/local/bin/belay host cell-db reset shop_c2"
	for _, c := range []struct {
		failAt   string
		reset    bool
		restart  bool
		wantText string
	}{
		{"db-monitor runuser", false, false, "nothing changed"},
		{"shop-c2-db-1 /usr/local/bin/belay host cell-db tables", false, false, "nothing changed"},
		{"db-2 /usr/local/bin/belay host cell-db tables", false, false, "nothing changed"},
		{"shop-c2-2 systemctl stop nginx.service", false, true, "rolled back"},
		{"shop-c2-1 systemctl stop belay-route-watch", false, true, "rolled back"},
		{"db-2 sudo -n /usr/local/bin/belay host cell-db dump", true, true, "rolled back"},
		{"shop-c2-db-1 sudo -n /usr/local/bin/belay host cell-db restore", true, true, "rolled back"},
		{"shop-c2-db-1 /usr/local/bin/belay host cell-db counts", true, true, "rolled back"},
		{"shop-c2-db-1 sudo -n /usr/local/bin/belay host cell-db mark", true, true, "rolled back"},
		{"shop-c2-2 converge", false, false, "resumes at the switch"},
		{"shop-c2-1 " + start, false, false, "resumes at the switch"},
	} {
		f := &fakeHosts{failAt: c.failAt}
		p, err := Build("prod", target(t), goodFacts())
		if err != nil {
			t.Fatal(err)
		}
		res, err := Execute(context.Background(), f.env(), p)
		if err == nil || !strings.Contains(err.Error(), c.wantText) {
			t.Errorf("fail at %q: %v, want %q", c.failAt, err, c.wantText)
			continue
		}
		after := f.calls[slices.IndexFunc(f.calls, func(s string) bool { return strings.Contains(s, c.failAt) })+1:]
		var gotReset, restarted []string
		for _, call := range after {
			if call == reset {
				gotReset = append(gotReset, call)
			}
			if strings.HasSuffix(call, start) {
				restarted = append(restarted, strings.Fields(call)[0])
			}
		}
		if (len(gotReset) == 1) != c.reset {
			t.Errorf("fail at %q: reset calls %q, want reset=%v", c.failAt, gotReset, c.reset)
		}
		if c.restart && !slices.Equal(restarted, []string{"shop-c2-1", "shop-c2-2"}) || !c.restart && len(restarted) > 0 {
			t.Errorf("fail at %q: restarted %q, want restart=%v (after: %q)", c.failAt, restarted, c.restart, after)
		}
		if c.restart != res.RolledBack {
			t.Errorf("fail at %q: RolledBack = %v", c.failAt, res.RolledBack)
		}
		if c.reset && slices.Index(after, reset) > slices.IndexFunc(after, func(s string) bool { return strings.HasSuffix(s, start) }) {
			t.Errorf("fail at %q: the cell restarted before the pair was emptied: %q", c.failAt, after)
		}
	}
}

func TestExecuteSuccess(t *testing.T) {
	f := &fakeHosts{}
	p, err := Build("prod", target(t), goodFacts())
	if err != nil {
		t.Fatal(err)
	}
	res, err := Execute(context.Background(), f.env(), p)
	if err != nil {
		t.Fatal(err)
	}
	if res.Bytes != int64(len("PGDMP archive")) || res.Tables != 2 || res.Rows != 530 || res.RolledBack || len(res.Steps) != len(p.Steps) {
		t.Errorf("result = %+v", res)
	}
	// The freeze comes before the stop, the stop before the dump, the
	// marker before the converge.
	order := func(sub string) int {
		return slices.IndexFunc(f.calls, func(s string) bool { return strings.Contains(s, sub) })
	}
	seq := []int{order("stop nginx.service"), order("stop belay-route-watch"), order("cell-db dump"), order("cell-db mark"), order("converge"), order("systemctl start")}
	if !slices.IsSorted(seq) || slices.Contains(seq, -1) {
		t.Errorf("call order %v:\n%s", seq, strings.Join(f.calls, "\n"))
	}
}
