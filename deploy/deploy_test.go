package deploy

import (
	"strings"
	"testing"
	"time"

	"github.com/belay-sh/belay/deploy/plan"
	"github.com/belay-sh/belay/deploy/traffic"
	"github.com/belay-sh/belay/hostrelease"
	"github.com/belay-sh/belay/hostrelease/journal"
	"github.com/belay-sh/belay/inventory"
)

func testDeployer(t *testing.T) *Deployer {
	t.Helper()
	inv, err := inventory.Load("plan/testdata/inventory.json")
	if err != nil {
		t.Fatal(err)
	}
	return &Deployer{Inv: inv, App: "shop"}
}

func states(cur ...string) map[string]*HostState {
	m := map[string]*HostState{}
	for i, c := range cur {
		h := []string{"shop-1", "shop-2"}[i]
		m[h] = &HostState{Host: h, Current: c}
	}
	return m
}

// TestUndoPlan pins the rollback rule: abort when no host switched, swap back
// when any did, converge forward when there is nothing to go back to.
func TestUndoPlan(t *testing.T) {
	d := testDeployer(t)
	tests := []struct {
		name         string
		st           map[string]*HostState
		target, prev string
		kind         string // plan kind
		release      string
		how          string
	}{
		{"nothing switched", states("v1", "v1"), "v2", "v1", "abort", "", "traffic back to stable (v1)"},
		{"one host switched", states("v2", "v1"), "v2", "v1", "direct", "v1", "swapping every host back to v1"},
		{"all switched", states("v2", "v2"), "v2", "v1", "direct", "v1", "swapping every host back to v1"},
		{"first deploy, none switched", states("", ""), "v1", "", "abort", "", "traffic back to stable ((none))"},
		{"first deploy, one switched", states("v1", ""), "v1", "", "direct", "v1", "no previous release: converging every host on v1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, how, err := d.undoPlan(tc.st, tc.target, tc.prev)
			if err != nil {
				t.Fatal(err)
			}
			if p.Kind != tc.kind || p.Release != tc.release || !strings.Contains(how, tc.how) {
				t.Fatalf("got %s %q (%s), want %s %q (%s)", p.Kind, p.Release, how, tc.kind, tc.release, tc.how)
			}
		})
	}
}

func TestCommonCurrent(t *testing.T) {
	if r, err := commonCurrent(states("v3", "v3")); err != nil || r != "v3" {
		t.Fatalf("%q %v", r, err)
	}
	_, err := commonCurrent(states("v3", "v2"))
	if err == nil || !strings.Contains(err.Error(), "shop-1: v3") || !strings.Contains(err.Error(), "shop-2: v2") {
		t.Fatalf("disagreeing hosts: %v", err)
	}
}

func TestParseState(t *testing.T) {
	out := "current=v3\ncanary=v4\nstable=active\ncanaryUnit=active\nstage=percent 10 (sticky ip)\nhealth=200\ncanaryHealth=503\n" +
		"releases=v4 v3 v2 \njournal={\"deployId\":\"d\",\"target\":\"v4\",\"status\":\"running\",\"knownGood\":[\"v2\",\"v3\"]}\n" +
		"lease=1790000000 tok {\"token\":\"tok\",\"who\":\"a b@c\",\"pid\":1,\"action\":\"deploy v4\",\"since\":\"2026-09-21T10:00:00Z\"}\nhostNow=1789999000\n"
	var s HostState
	if err := parseState([]byte(out), &s); err != nil {
		t.Fatal(err)
	}
	if s.Current != "v3" || s.Canary != "v4" || s.CanaryShare != "10%" || s.CanaryHealth != "503" || len(s.Releases) != 3 ||
		!s.Journal.Unfinished() || s.Lease == nil || !s.Lease.Live || s.Lease.Who != "a b@c" ||
		!strings.Contains(s.Lease.String(), "held by a b@c (pid 1 on ): deploy v4, since 2026-09-21T10:00:00Z") {
		t.Fatalf("%+v", s)
	}
	if knownGood(map[string]*HostState{"shop-1": &s})[1] != "v3" {
		t.Fatal("known-good from the journal")
	}
	for stage, want := range map[string]string{"": "0%", "stable": "0%", "full": "100%", "whitelist": "whitelist", "percent 50 (sticky shop)": "50%"} {
		if got := share(stage); got != want {
			t.Errorf("share(%q) = %s, want %s", stage, got, want)
		}
	}
	var expired HostState
	if err := parseState([]byte("lease=1790000000 tok {\"token\":\"tok\",\"who\":\"a\"}\nhostNow=1790000000\n"), &expired); err != nil || expired.Lease.Live {
		t.Fatalf("a lease at its expiry second is live: %+v %v", expired.Lease, err)
	}
	var junk HostState
	if err := parseState([]byte("lease=garbage\n"), &junk); err != nil || junk.Lease == nil || junk.Lease.Live {
		t.Fatalf("a corrupt lease file: %+v %v", junk.Lease, err)
	}
	var bad HostState
	if err := parseState([]byte("journal={not json\n"), &bad); err == nil {
		t.Fatal("corrupt journal accepted")
	}
	_ = journal.Done
}

// TestMayHaveSwitched: the rollback skips reading host state only when this
// run's records show no host reached the step that switches `current`.
func TestMayHaveSwitched(t *testing.T) {
	d := testDeployer(t)
	p, err := plan.Deploy(plan.Input{Inventory: d.Inv, App: "shop", Release: "v2",
		Artifact: &hostrelease.Artifact{Kind: hostrelease.Binary, Size: 1, SHA256: strings.Repeat("a", 64)},
		Strategy: plan.Strategy{Rules: traffic.Rules{Shops: []string{"a.example.com"}}, Pause: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	step := func(suffix string) string {
		for _, s := range p.Steps {
			if strings.HasSuffix(s.ID, "-"+suffix) {
				return s.ID
			}
		}
		t.Fatalf("no step %s", suffix)
		return ""
	}
	tests := []struct {
		name string
		recs map[string]journal.Record
		want bool
	}{
		{"nothing ran", map[string]journal.Record{"shop-1": {}, "shop-2": {}}, false},
		{"verdict at the whitelist", map[string]journal.Record{"shop-1": {Step: step("route-whitelist")}, "shop-2": {Step: step("route-whitelist")}}, false},
		{"one host switching", map[string]journal.Record{"shop-1": {Step: step("route-full")}, "shop-2": {Step: step("route-full"), InProgress: step("switch-current")}}, true},
		{"one host switched", map[string]journal.Record{"shop-1": {Step: step("switch-current")}, "shop-2": {Step: step("route-full")}}, true},
		{"after the switch", map[string]journal.Record{"shop-1": {Step: step("stop-canary")}, "shop-2": {Step: step("stop-canary")}}, true},
		{"a record from another plan", map[string]journal.Record{"shop-1": {Step: "99-elsewhere"}}, false},
	}
	for _, tc := range tests {
		if got := mayHaveSwitched(p, tc.recs); got != tc.want {
			t.Errorf("%s: mayHaveSwitched = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestRollbackTarget: the default rollback target is the newest known-good
// release on disk on every host; one that only some hosts have is skipped.
func TestRollbackTarget(t *testing.T) {
	st := func(rels ...[]string) map[string]*HostState {
		m := map[string]*HostState{}
		for i, r := range rels {
			h := []string{"shop-1", "shop-2"}[i]
			m[h] = &HostState{Host: h, Releases: r}
		}
		return m
	}
	tests := []struct {
		name    string
		known   []string
		cur     string
		states  map[string]*HostState
		want    string
		skipped int
	}{
		{"newest other than current", []string{"v1", "v2", "v3"}, "v3", st([]string{"v3", "v2", "v1"}, []string{"v3", "v2", "v1"}), "v2", 0},
		{"partial deploy skipped", []string{"v1", "v2", "v3"}, "v1", st([]string{"v3", "v2", "v1"}, []string{"v2", "v1"}), "v2", 1},
		{"nothing everywhere", []string{"v1", "v2"}, "v1", st([]string{"v2", "v1"}, []string{"v1"}), "", 1},
		{"only current known", []string{"v1"}, "v1", st([]string{"v1"}, []string{"v1"}), "", 0},
	}
	for _, tc := range tests {
		got, skipped := rollbackTarget(tc.known, tc.cur, tc.states)
		if got != tc.want || len(skipped) != tc.skipped {
			t.Errorf("%s: rollbackTarget = %q, skipped %q; want %q with %d skipped", tc.name, got, skipped, tc.want, tc.skipped)
		}
		for _, sk := range skipped {
			if !strings.Contains(sk, "not on disk on shop-2") {
				t.Errorf("%s: skip reason %q does not name the host missing it", tc.name, sk)
			}
		}
	}
}

// TestClassifyRollout: status tells a run under way (journal running, lease
// live) from one that died (journal running, no live lease).
func TestClassifyRollout(t *testing.T) {
	running := &journal.Record{Status: journal.Running}
	tests := []struct {
		name  string
		lease *LeaseState
		j     *journal.Record
		want  string
	}{
		{"lease held", &LeaseState{Who: "a", Live: true}, running, "running"},
		{"lease expired", &LeaseState{Who: "a", Live: false}, running, "died"},
		{"no lease", nil, running, "died"},
		{"paused", nil, &journal.Record{Status: journal.Paused}, "paused"},
		{"done, lease held by a drill", &LeaseState{Who: "a", Live: true}, &journal.Record{Status: journal.Done}, ""},
		{"no journal", nil, nil, ""},
	}
	for _, tc := range tests {
		st := []*HostState{{Host: "shop-1", Lease: tc.lease, Journal: tc.j}, {Host: "shop-2", Journal: tc.j}}
		classify(st)
		for _, s := range st {
			if s.Rollout != tc.want {
				t.Errorf("%s: %s rollout %q, want %q", tc.name, s.Host, s.Rollout, tc.want)
			}
		}
	}
}
