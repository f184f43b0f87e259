package failover

import (
	"bytes"
	"context"
	"errors"
	"github.com/belay-sh/belay/hostcmd"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/belay-sh/belay/cloud/dns"
	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/remote/remotetest"
)

func testInventory(t *testing.T) *inventory.Inventory {
	t.Helper()
	inv, err := inventory.Load("testdata/inventory.json")
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

func ids(p *Plan) []string {
	var out []string
	for _, s := range p.Steps {
		out = append(out, s.ID)
	}
	return out
}

func index(t *testing.T, p *Plan, id string) int {
	t.Helper()
	for i, s := range p.Steps {
		if s.ID == id {
			return i
		}
	}
	t.Fatalf("step %s not in plan %v", id, ids(p))
	return -1
}

func TestPlanToStandbyOrder(t *testing.T) {
	inv := testInventory(t)
	p, err := PlanSite(inv, ToStandby)
	if err != nil {
		t.Fatal(err)
	}
	if p.Refusal != "" {
		t.Fatalf("refused: %s", p.Refusal)
	}
	// Invariants: checks first, fencing before promotion, promotion before the
	// apps start, apps healthy before DNS moves, verification last.
	order := [][2]string{
		{"check-release/shop", "fence-app/shop-1"},
		{"check-standby-db", "fence-db/db-1"},
		{"fence-app/shop-1", "promote-db"},
		{"fence-db/db-1", "promote-db"},
		{"fence-db/db-monitor", "promote-db"},
		{"rpo", "promote-db"},
		{"promote-db", "check-promoted"},
		{"check-promoted", "start-app/shop-standby"},
		{"start-app/shop-standby", "health-app/shop-standby"},
		{"health-app/shop-standby", "dns/shop.lab.belay.test"},
		{"dns/shop.lab.belay.test", "verify/shop"},
	}
	for _, o := range order {
		if a, b := index(t, p, o[0]), index(t, p, o[1]); a >= b {
			t.Errorf("step %s (%d) must come before %s (%d)", o[0], a, o[1], b)
		}
	}
	seen := map[string]bool{}
	for _, s := range p.Steps {
		if seen[s.ID] {
			t.Errorf("duplicate step id %s", s.ID)
		}
		seen[s.ID] = true
		if s.Kind != KindDNS && s.Kind != KindHTTP && len(s.Commands) == 0 {
			t.Errorf("step %s has no commands to show", s.ID)
		}
	}
	if got := p.Steps[index(t, p, "dns/shop.lab.belay.test")].Address; got != inv.Host("shop-standby").SSHAddress {
		t.Errorf("DNS target %s, want the standby app server's address", got)
	}
	if d1, d2 := p.Digest(), mustPlan(t, inv).Digest(); d1 != d2 {
		t.Errorf("digest not stable: %s vs %s", d1, d2)
	}
}

func mustPlan(t *testing.T, inv *inventory.Inventory) *Plan {
	t.Helper()
	p, err := PlanSite(inv, ToStandby)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPlanBadInput(t *testing.T) {
	inv := testInventory(t)
	if _, err := PlanSite(inv, "sideways"); err == nil || !strings.Contains(err.Error(), "standby or primary") {
		t.Errorf("bad direction: %v", err)
	}
	noStandby := *inv
	noStandby.Database.Standby = ""
	for _, to := range []Direction{ToStandby, ToPrimary} {
		if _, err := PlanSite(&noStandby, to); err == nil || !strings.Contains(err.Error(), "standbyHost") {
			t.Errorf("--to %s without a standby DB: %v", to, err)
		}
	}
	noMonitor := *inv
	noMonitor.Database.Monitor = ""
	if _, err := PlanSite(&noMonitor, ToPrimary); err == nil || !strings.Contains(err.Error(), "database.monitor") {
		t.Errorf("--to primary without a monitor: %v", err)
	}
	noRepo := *inv
	noRepo.Backup.Host = ""
	if _, err := PlanSite(&noRepo, ToPrimary); err == nil || !strings.Contains(err.Error(), "inventory backup") {
		t.Errorf("--to primary without a repository: %v", err)
	}
}

// TestPlanToPrimaryOrder pins the way back's safety order: the primary site is
// fenced before anything is rebuilt, the standby site stops writing and its WAL
// is archived before the primary restores from the archive, the formation is
// whole before the apps start, and the standby is re-seeded only after a
// backup of the new primary.
func TestPlanToPrimaryOrder(t *testing.T) {
	p, err := PlanSite(testInventory(t), ToPrimary)
	if err != nil {
		t.Fatal(err)
	}
	if p.Refusal != "" {
		t.Fatalf("--to primary refused: %s", p.Refusal)
	}
	idx := map[string]int{}
	for i, s := range p.Steps {
		if _, dup := idx[s.ID]; dup {
			t.Errorf("step id %s twice", s.ID)
		}
		idx[s.ID] = i
		if s.Kind == KindManual || s.Kind == KindFence {
			t.Errorf("step %s: kind %s; the way back runs every step and never skips fencing", s.ID, s.Kind)
		}
	}
	before := func(a, b string) {
		t.Helper()
		ia, ok1 := idx[a]
		ib, ok2 := idx[b]
		if !ok1 || !ok2 || ia >= ib {
			t.Errorf("%s (%d, %v) must come before %s (%d, %v)", a, ia, ok1, b, ib, ok2)
		}
	}
	before("check-standby-serving", "fence-app/shop-1")
	before("check-reachable/db-1", "fence-db/db-1")
	before("fence-db/db-1", "reseed-monitor")
	before("fence-db/db-2", "reseed-monitor")
	before("reseed-monitor", "reseed-primary/db-1")
	before("stop-standby-app/shop-standby", "readonly-standby-db")
	before("readonly-standby-db", "archive-standby-db")
	before("archive-standby-db", "stop-standby-db")
	before("stop-standby-db", "reseed-primary/db-1")
	before("reseed-primary/db-1", "reseed-replica/db-2")
	before("reseed-replica/db-2", "check-formation")
	before("check-formation", "start-app/shop-1")
	before("health-app/shop-2", "dns/shop.lab.belay.test")
	before("dns/shop.lab.belay.test", "verify/shop")
	before("verify/shop", "backup-full")
	before("backup-full", "reseed-standby-db")
	before("reseed-standby-db", "check-standby-db")
	if s := p.Steps[idx["dns/shop.lab.belay.test"]]; s.Address != "10.213.0.100" {
		t.Errorf("DNS goes back to %q, want the app's VIP", s.Address)
	}
	if s := p.Steps[idx["check-formation"]]; s.Expect != "1/1" || !s.Retry {
		t.Errorf("check-formation expects %q (retry %v), want 1/1 with retries", s.Expect, s.Retry)
	}
}

func TestResume(t *testing.T) {
	inv := testInventory(t)
	p := mustPlan(t, inv)
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name        string
		prev        *State
		wantResumed bool
		wantErr     string
	}{
		{"none", nil, false, ""},
		{"finished", &State{Stack: "lab", To: ToStandby, Plan: p.Digest(), Finished: true}, false, ""},
		{"same plan", &State{Stack: "lab", To: ToStandby, Plan: p.Digest(), Done: map[string]time.Time{"check-standby-db": now}}, true, ""},
		{"other plan", &State{Stack: "lab", To: ToStandby, Plan: "0000"}, false, "unfinished switch"},
		{"other stack", &State{Stack: "prod", To: ToStandby, Plan: p.Digest()}, false, "belongs to stack"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, resumed, err := Resume(tt.prev, p, now)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if resumed != tt.wantResumed {
				t.Errorf("resumed = %v, want %v", resumed, tt.wantResumed)
			}
			if !resumed && (len(st.Done) != 0 || st.Plan != p.Digest()) {
				t.Errorf("fresh state expected, got %+v", st)
			}
		})
	}
}

// fakeSite scripts the hosts of a switch: the standby DB is in recovery until promoted.
type fakeSite struct {
	promoted   bool
	failAt     string // command substring that fails once
	failed     bool
	noRelease  bool
	unhealthy  bool
	httpServer *httptest.Server
}

func (f *fakeSite) handle(c remotetest.Call) ([]byte, error) {
	if f.failAt != "" && !f.failed && strings.Contains(c.Cmd, f.failAt) {
		f.failed = true
		return nil, errors.New("connection lost")
	}
	switch {
	case strings.HasPrefix(c.Cmd, "test -x /srv/"):
		if f.noRelease {
			return nil, errors.New("exit status 1")
		}
	case strings.Contains(c.Cmd, "pg_promote"):
		f.promoted = true
		return []byte("t\n"), nil
	case strings.Contains(c.Cmd, "pg_is_in_recovery"):
		if f.promoted {
			return []byte("f\n"), nil
		}
		return []byte("t\n"), nil
	case strings.Contains(c.Cmd, "pg_last_xact_replay_timestamp"):
		return []byte("2026-01-02 03:04:00+00\n"), nil
	case strings.HasPrefix(c.Cmd, "curl "):
		if f.unhealthy {
			return nil, errors.New("exit status 7")
		}
	}
	return nil, nil
}

// switchEnv builds an Env whose HTTP check hits a local server standing in for the standby app server.
func switchEnv(t *testing.T, f *fakeSite, reachable bool) (*Env, *remotetest.Runner, *FileDNSDouble, *Plan) {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Host != "shop.lab.belay.test" {
			http.Error(w, "wrong host "+r.Host, http.StatusBadGateway)
		}
	}))
	t.Cleanup(srv.Close)
	f.httpServer = srv
	inv := testInventory(t)
	p := mustPlan(t, inv)
	u, _ := url.Parse(srv.URL)
	for i := range p.Steps {
		if p.Steps[i].Kind == KindHTTP {
			p.Steps[i].Address = u.Host // the double standing in for shop-standby:80
		}
	}
	r := &remotetest.Runner{Handle: f.handle}
	d := &FileDNSDouble{Path: filepath.Join(t.TempDir(), "dns.json")}
	env := &Env{Inv: inv, Hosts: r, DNS: d, Zone: "lab.belay.test", TTL: 60, StatePath: filepath.Join(t.TempDir(), "state.json"),
		HealthTimeout: 2 * time.Second, Out: &bytes.Buffer{},
		OldSiteReachable: func(context.Context) (bool, string) { return reachable, "partitioned (test)" }}
	return env, r, d, p
}

func TestExecuteSwitch(t *testing.T) {
	f := &fakeSite{}
	env, r, d, p := switchEnv(t, f, true)
	res, err := Execute(context.Background(), env, p)
	if err != nil {
		t.Fatalf("Execute: %v\n%s", err, env.Out)
	}
	if len(res.Steps) != len(p.Steps) {
		t.Fatalf("%d step results for %d steps", len(res.Steps), len(p.Steps))
	}
	for _, s := range res.Steps {
		if s.Status != "done" {
			t.Errorf("step %s: %s (%s)", s.ID, s.Status, s.Note)
		}
	}
	recs, err := d.Records()
	if err != nil {
		t.Fatal(err)
	}
	if got := recs["shop.lab.belay.test"].Address; got != env.Inv.Host("shop-standby").SSHAddress {
		t.Errorf("DNS record = %q", got)
	}
	var fenced, promoted bool
	for _, c := range r.Snapshot() {
		if c.Host == "db-1" && c.Root && strings.Contains(c.Cmd, "systemctl stop pgautofailover*") {
			fenced = true
		}
		if c.Host == "db-standby" && strings.Contains(c.Cmd, "pg_promote") {
			promoted = true
			if !fenced {
				t.Error("promoted before fencing db-1")
			}
		}
	}
	if !fenced || !promoted {
		t.Errorf("fenced=%v promoted=%v; calls: %v", fenced, promoted, r.Snapshot())
	}
	st, err := LoadState(env.StatePath)
	if err != nil || st == nil || !st.Finished {
		t.Fatalf("state after success: %+v, %v", st, err)
	}
	if st.Facts["lastReplayedCommit"] == "" {
		t.Errorf("RPO edge not recorded: %v", st.Facts)
	}
}

func TestExecuteResumesAfterInterruption(t *testing.T) {
	f := &fakeSite{failAt: "systemctl enable --now belay-app@shop.service"}
	env, r, _, p := switchEnv(t, f, true)
	if _, err := Execute(context.Background(), env, p); err == nil || !strings.Contains(err.Error(), "start-app/shop-standby") {
		t.Fatalf("first run: err = %v, want a failure at start-app", err)
	}
	st, err := LoadState(env.StatePath)
	if err != nil || st == nil || st.Finished {
		t.Fatalf("state after failure: %+v, %v", st, err)
	}
	if _, ok := st.Done["promote-db"]; !ok {
		t.Fatalf("promote-db not recorded as done: %v", st.Done)
	}
	before := len(r.Snapshot())
	res, err := Execute(context.Background(), env, p)
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	if !res.Resumed {
		t.Error("second run did not resume")
	}
	for _, c := range r.Snapshot()[before:] {
		if strings.Contains(c.Cmd, "pg_promote") || strings.Contains(c.Cmd, "systemctl stop") {
			t.Errorf("resumed run repeated a done step: %s", c)
		}
	}
}

func TestExecuteSkipsFencingWhenUnreachable(t *testing.T) {
	f := &fakeSite{}
	env, r, _, p := switchEnv(t, f, false)
	res, err := Execute(context.Background(), env, p)
	if err != nil {
		t.Fatal(err)
	}
	skipped := 0
	for _, s := range res.Steps {
		if strings.HasPrefix(s.ID, "fence-") {
			if s.Status != "skipped" || !strings.Contains(s.Note, "partitioned") {
				t.Errorf("step %s: %s %q, want skipped with the reason", s.ID, s.Status, s.Note)
			}
			skipped++
		}
	}
	if skipped == 0 {
		t.Fatal("no fence steps")
	}
	for _, c := range r.Snapshot() {
		if strings.HasPrefix(c.Cmd, "systemctl stop") {
			t.Errorf("fenced an unreachable host: %s", c)
		}
	}
	if !strings.Contains(env.Out.(*bytes.Buffer).String(), "SKIPPED") {
		t.Error("no warning printed for the skipped fence")
	}
}

func TestExecuteRefusesWithoutRelease(t *testing.T) {
	f := &fakeSite{noRelease: true}
	env, r, _, p := switchEnv(t, f, true)
	_, err := Execute(context.Background(), env, p)
	if err == nil || !strings.Contains(err.Error(), "no release of shop") {
		t.Fatalf("err = %v, want a clear no-release error", err)
	}
	for _, c := range r.Snapshot() {
		if c.Root {
			t.Errorf("changed something before the release check passed: %s", c)
		}
	}
}

func TestFileDNSDouble(t *testing.T) {
	d := &FileDNSDouble{Path: filepath.Join(t.TempDir(), "sub", "dns.json")}
	ip := netip.MustParseAddr("10.213.0.148")
	ctx := context.Background()
	steps := []struct {
		name, zone, rec string
		ip              netip.Addr
		ttl             int
		want            dns.Outcome
		wantErr         string
	}{
		{"create", "lab.belay.test", "shop.lab.belay.test", ip, 60, dns.Created, ""},
		{"again", "lab.belay.test", "shop", ip, 60, dns.Unchanged, ""},
		{"move", "lab.belay.test", "shop", netip.MustParseAddr("10.213.0.100"), 60, dns.Updated, ""},
		{"ttl too low", "lab.belay.test", "shop", ip, 5, "", "ttl"},
		{"ipv6", "lab.belay.test", "shop", netip.MustParseAddr("::1"), 60, "", "IPv4"},
		{"bad zone", "test", "shop", ip, 60, "", "zone"},
	}
	for _, s := range steps {
		got, err := d.UpsertA(ctx, s.zone, s.rec, s.ip, s.ttl)
		if s.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), s.wantErr) {
				t.Errorf("%s: err = %v, want %q", s.name, err, s.wantErr)
			}
			continue
		}
		if err != nil || got != s.want {
			t.Errorf("%s: %v, %v; want %v", s.name, got, err, s.want)
		}
	}
	recs, _ := d.Records()
	if len(recs) != 1 || recs["shop.lab.belay.test"].Address != "10.213.0.100" {
		t.Errorf("records = %+v", recs)
	}
}

func TestDefaultStatePath(t *testing.T) {
	env := map[string]string{"HOME": "/home/ops"}
	get := func(k string) string { return env[k] }
	if got := DefaultStatePath("prod", 0, get); got != "/var/lib/belay/failover-prod.json" {
		t.Errorf("root: %s", got)
	}
	if got := DefaultStatePath("prod", 1000, get); got != "/home/ops/.local/state/belay/failover-prod.json" {
		t.Errorf("user: %s", got)
	}
	env["XDG_STATE_HOME"] = "/xdg"
	if got := DefaultStatePath("prod", 1000, get); got != "/xdg/belay/failover-prod.json" {
		t.Errorf("xdg: %s", got)
	}
}

func TestPrintListsEveryStep(t *testing.T) {
	p := mustPlan(t, testInventory(t))
	var b bytes.Buffer
	if err := p.Print(&b); err != nil {
		t.Fatal(err)
	}
	for _, s := range p.Steps {
		if !strings.Contains(b.String(), "["+s.ID+"]") {
			t.Errorf("printed plan lacks %s", s.ID)
		}
	}
}

func TestPreflight(t *testing.T) {
	tests := []struct {
		name    string
		f       *fakeSite
		wantErr string
	}{
		{"ready", &fakeSite{}, ""},
		{"no release", &fakeSite{noRelease: true}, "no release of shop"},
		{"already promoted", &fakeSite{promoted: true}, "already promoted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, r, _, p := switchEnv(t, tt.f, true)
			err := Preflight(context.Background(), env, p)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			for _, c := range r.Snapshot() {
				if strings.Contains(c.Cmd, "systemctl") || strings.Contains(c.Cmd, "pg_promote") {
					t.Errorf("preflight changed something: %s", c)
				}
			}
		})
	}
}

// fakePrimarySite scripts the way back: the standby DB is promoted (serving),
// the formation becomes whole only after a few polls.
type fakePrimarySite struct {
	inRecovery   bool // the standby DB answers pg_is_in_recovery() = t
	formationIn  int  // polls of the formation before it reports 1/1
	standbyPolls int
	reseeded     bool
}

func (f *fakePrimarySite) handle(c remotetest.Call) ([]byte, error) {
	switch {
	case c.Host == "db-standby" && strings.Contains(c.Cmd, "pg_is_in_recovery"):
		if f.inRecovery {
			return []byte("t\n"), nil
		}
		if f.reseeded {
			f.standbyPolls++
			if f.standbyPolls > 1 {
				return []byte("t\n"), nil
			}
		}
		return []byte("f\n"), nil
	case strings.Contains(c.Cmd, "belay-standby-restore --resync"):
		f.reseeded = true
	case strings.Contains(c.Cmd, "pgautofailover.node"):
		if f.formationIn > 0 {
			f.formationIn--
			return []byte("1/0\n"), nil
		}
		return []byte("1/1\n"), nil
	}
	return nil, nil
}

func primaryEnv(t *testing.T, f *fakePrimarySite) (*Env, *remotetest.Runner, *FileDNSDouble, *Plan) {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Host != "shop.lab.belay.test" {
			http.Error(w, "wrong host "+r.Host, http.StatusBadGateway)
		}
	}))
	t.Cleanup(srv.Close)
	inv := testInventory(t)
	p, err := PlanSite(inv, ToPrimary)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(srv.URL)
	for i := range p.Steps {
		if p.Steps[i].Kind == KindHTTP {
			p.Steps[i].Address = u.Host // the double standing in for the VIP
		}
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	r := &remotetest.Runner{Handle: f.handle}
	d := &FileDNSDouble{Path: filepath.Join(t.TempDir(), "dns.json")}
	env := &Env{Inv: inv, Hosts: r, DNS: d, Zone: "lab.belay.test", TTL: 60, StatePath: filepath.Join(t.TempDir(), "state.json"),
		HealthTimeout: 2 * time.Second, Out: &bytes.Buffer{},
		Now: func() time.Time { return now }, Sleep: func(d time.Duration) { now = now.Add(d) }}
	return env, r, d, p
}

func TestExecuteBackToPrimary(t *testing.T) {
	f := &fakePrimarySite{formationIn: 3}
	env, r, d, p := primaryEnv(t, f)
	res, err := Execute(context.Background(), env, p)
	if err != nil {
		t.Fatalf("Execute: %v\n%s", err, env.Out)
	}
	for _, s := range res.Steps {
		if s.Status != "done" {
			t.Errorf("step %s: %s (%s)", s.ID, s.Status, s.Note)
		}
	}
	recs, _ := d.Records()
	if got := recs["shop.lab.belay.test"].Address; got != "10.213.0.100" {
		t.Errorf("DNS record = %q, want the VIP", got)
	}
	var order []string
	for _, c := range r.Snapshot() {
		switch {
		case c.Root && strings.Contains(c.Cmd, "belay-db-reseed"):
			order = append(order, c.Host+" "+c.Cmd[strings.LastIndex(c.Cmd, " ")+1:])
		case c.Root && strings.Contains(c.Cmd, hostcmd.StandbyFinalArchiveScript):
			order = append(order, c.Host+" archived")
		}
	}
	if want := "db-monitor monitor,db-standby archived,db-1 primary,db-2 replica"; strings.Join(order, ",") != want {
		t.Errorf("reseed order %q, want %q", strings.Join(order, ","), want)
	}
	if res.Facts["downtime"] == "" {
		t.Errorf("no downtime recorded: %v", res.Facts)
	}
}

func TestExecuteBackToPrimaryRefusesWithoutSwitch(t *testing.T) {
	f := &fakePrimarySite{inRecovery: true}
	env, r, _, p := primaryEnv(t, f)
	_, err := Execute(context.Background(), env, p)
	if err == nil || !strings.Contains(err.Error(), "no switch to undo") {
		t.Fatalf("err = %v, want a refusal: the primary site serves already", err)
	}
	for _, c := range r.Snapshot() {
		if c.Host != "db-standby" {
			t.Errorf("ran %s after the refusing check", c)
		}
	}
}

func TestExecuteBackToPrimaryFormationTimeout(t *testing.T) {
	f := &fakePrimarySite{formationIn: 1 << 30}
	env, _, _, p := primaryEnv(t, f)
	_, err := Execute(context.Background(), env, p)
	if err == nil || !strings.Contains(err.Error(), "check-formation") || !strings.Contains(err.Error(), `printed "1/0", expected "1/1"`) {
		t.Fatalf("err = %v, want check-formation to time out with the last answer", err)
	}
	st, _ := LoadState(env.StatePath)
	if _, ok := st.Done["reseed-replica/db-2"]; !ok || st.Finished {
		t.Errorf("state: done %v finished %v; want the reseeds recorded and the switch unfinished (resumable)", st.Done, st.Finished)
	}
}
