package replace

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/belay-sh/belay/inventory"
)

func testInventory(t *testing.T) *inventory.Inventory {
	t.Helper()
	inv, err := inventory.Load("testdata/inventory.json")
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

// cloudInventory is the test inventory on a cloud provider (db resize refuses the lab).
func cloudInventory(t *testing.T) *inventory.Inventory {
	t.Helper()
	inv := testInventory(t)
	for k, s := range inv.Sites {
		s.Provider = "hetzner"
		inv.Sites[k] = s
	}
	return inv
}

func whole(primary string) Facts {
	f := Facts{AppHealthy: map[string]bool{"shop-1": true, "shop-2": true}, DB: map[string]NodeState{},
		Active: map[string]Active{"shop-1": {Release: "v7", Journal: "done"}, "shop-2": {Release: "v7", Journal: "done"}}}
	for _, n := range []string{"db-1", "db-2"} {
		st := "secondary"
		if n == primary {
			st = "primary"
		}
		f.DB[n] = NodeState{Reported: st, Goal: st}
	}
	return f
}

func ids(p *Plan) []string {
	var out []string
	for _, s := range p.Steps {
		out = append(out, s.ID)
	}
	return out
}

func TestPlanReplaceOrder(t *testing.T) {
	tests := []struct {
		name  string
		host  string
		facts Facts
		want  []string
	}{
		{"app server: VIP to the peer first, then the server alone", "shop-2", whole("db-1"), []string{
			"check-peer/shop-1", "fence/shop-2", "vip/shop", "serve/shop", "replace/shop-2", "boot/shop-2", "converge/shop-2",
			"copy-release/shop-2", "release/shop-2", "start/shop-2", "health/shop-2", "serve-after/shop"}},
		{"the secondary: no switchover", "db-2", whole("db-1"), []string{
			"record-volume/db-2", "stop-keeper/db-2", "replace/db-2", "boot/db-2", "volume-kept/db-2", "converge/db-2", "rejoin/db-2", "streaming/db-1"}},
		{"the primary: switchover first, then the same as a secondary", "db-1", whole("db-1"), []string{
			"switchover/db-1", "promoted/db-2", "writable/db-2",
			"record-volume/db-1", "stop-keeper/db-1", "replace/db-1", "boot/db-1", "volume-kept/db-1", "converge/db-1", "rejoin/db-1", "streaming/db-2"}},
		{"a broken secondary while the primary runs alone: no switchover", "db-2", Facts{DB: map[string]NodeState{
			"db-1": {"wait_primary", "wait_primary"}, "db-2": {"demoted", "catchingup"}}}, []string{
			"record-volume/db-2", "stop-keeper/db-2", "replace/db-2", "boot/db-2", "volume-kept/db-2", "converge/db-2", "rejoin/db-2", "streaming/db-1"}},
		{"the standby database: volume kept, in recovery again", "db-standby", Facts{}, []string{
			"record-volume/db-standby", "replace/db-standby", "boot/db-standby", "volume-kept/db-standby", "converge/db-standby", "recovering/db-standby"}},
		{"the backup host: volume kept, repository answers", "backup", Facts{}, []string{
			"record-volume/backup", "replace/backup", "boot/backup", "volume-kept/backup", "converge/backup", "repository/backup"}},
		{"a standby app server that does not serve: the primary site's release, not started", "shop-standby", whole("db-1"), []string{
			"replace/shop-standby", "boot/shop-standby", "converge/shop-standby", "copy-release/shop-standby", "release/shop-standby"}},
		{"a standby app server of a stack never deployed: nothing to copy", "shop-standby", Facts{Active: map[string]Active{"shop-1": {}, "shop-2": {}}}, []string{
			"replace/shop-standby", "boot/shop-standby", "converge/shop-standby"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := PlanReplace(testInventory(t), tc.host, tc.facts)
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(p); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("steps\n got %v\nwant %v", got, tc.want)
			}
		})
	}
}

func TestPlanReplaceRefusals(t *testing.T) {
	notSettled := whole("db-1")
	notSettled.DB["db-1"] = NodeState{Reported: "primary", Goal: "primary"}
	notSettled.DB["db-2"] = NodeState{Reported: "catchingup", Goal: "secondary"}
	deadPeer := whole("db-1")
	deadPeer.DB["db-1"] = NodeState{Reported: "primary", Goal: "primary"}
	deadPeer.DB["db-2"] = NodeState{Reported: "demoted", Goal: "catchingup"}
	noMonitor := Facts{DBError: "dial tcp: connection refused"}
	appDown := whole("db-1")
	appDown.AppHealthy["shop-1"] = false
	appDown.AppWhy = map[string]string{"shop-1": "exit status 3"}
	serving := Facts{StandbyServing: map[string]bool{"shop-standby": true}}
	with := func(active map[string]Active) Facts {
		f := whole("db-1")
		for h, a := range active {
			f.Active[h] = a
		}
		return f
	}
	tests := []struct {
		name  string
		host  string
		facts Facts
		want  string
	}{
		{"unknown host", "shop-9", whole("db-1"), `host "shop-9" is not in the inventory`},
		{"the app's peer is down", "shop-2", appDown, "would take the last serving node"},
		{"the other data node is catching up (replacing the primary takes the last node)", "db-1", notSettled, "db-2 is catchingup (going secondary): it could not take over from db-1"},
		{"the other data node is down", "db-1", deadPeer, "db-2 is demoted (going catchingup): it could not take over"},
		{"the primary's peer is not listed", "db-1", Facts{DB: map[string]NodeState{"db-1": {"primary", "primary"}}}, "the monitor does not list db-2"},
		{"the monitor does not answer", "db-2", noMonitor, "cannot read the formation from the monitor db-monitor"},
		{"the monitor", "db-monitor", Facts{}, "its formation state is not on a volume"},
		{"a standby app server while the standby site serves", "shop-standby", serving, "serves shop right now"},
		{"the peer has no release", "shop-2", with(map[string]Active{"shop-1": {}}), "no healthy server of shop has an active release to copy (shop-1: no current release)"},
		{"the peer could not be read", "shop-2", with(map[string]Active{"shop-1": {Err: "exit status 255"}}), "(shop-1: unreadable (exit status 255))"},
		{"a paused rollout on the peer", "shop-2", with(map[string]Active{"shop-1": {Release: "v7", Canary: "v8", Journal: "paused"}}),
			"a rollout of shop is paused or was left unfinished on shop-1 (current v7, canary v8, journal paused): finish it (belay deploy) or roll it back"},
		{"a died rollout on the peer", "shop-2", with(map[string]Active{"shop-1": {Release: "v7", Journal: "running"}}), "left unfinished on shop-1"},
		{"the primary site's servers differ", "shop-standby", with(map[string]Active{"shop-2": {Release: "v8", Journal: "done"}}),
			"the servers of shop run different releases (shop-1: current v7, journal done; shop-2: current v8, journal done)"},
		{"no primary-site server could be read", "shop-standby", with(map[string]Active{"shop-1": {Err: "timeout"}, "shop-2": {Err: "timeout"}}),
			"no primary-site server of shop has an active release to copy"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := PlanReplace(testInventory(t), tc.host, tc.facts)
			if err == nil || !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want a refusal containing %q", err, tc.want)
			}
		})
	}
}

func TestPlanCopyStep(t *testing.T) {
	p, err := PlanReplace(testInventory(t), "shop-2", whole("db-1"))
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(p.Steps, func(s Step) bool { return s.Kind == KindCopyRelease })
	if i < 0 {
		t.Fatalf("no copy step in %v", ids(p))
	}
	s := p.Steps[i]
	if s.Host != "shop-2" || s.From != "shop-1" || s.App != "shop" || s.Release != "v7" || s.Timeout != CopyTimeout {
		t.Errorf("copy step %+v", s)
	}
	var b strings.Builder
	if err := p.Print(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"[copy-release/shop-2] copy release v7 of shop from shop-1", "$ ssh shop-1 tar -C /srv/shop/releases/v7 -c . | ssh shop-2"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("the printed plan lacks %q:\n%s", want, b.String())
		}
	}
}

func TestParseActive(t *testing.T) {
	tests := []struct {
		out  string
		want Active
	}{
		{"current=v7\ncanary=\njournal=\n", Active{Release: "v7"}},
		{"current=v7\ncanary=v8\njournal={\"deployId\":\"d\",\"app\":\"shop\",\"kind\":\"deploy\",\"target\":\"v8\",\"status\":\"paused\",\"by\":\"x\",\"startedAt\":\"2026-01-01T00:00:00Z\",\"updatedAt\":\"2026-01-01T00:00:00Z\"}\n",
			Active{Release: "v7", Canary: "v8", Journal: "paused"}},
		{"current=\ncanary=\njournal=\n", Active{}},
		{"current=../etc\n", Active{Release: "../etc", Err: `current link: release "../etc": expected 1-64 characters of letters, digits, '.', '_', '-', starting with a letter or digit, without '..'`}},
	}
	for _, tc := range tests {
		if got := ParseActive(tc.out); got != tc.want {
			t.Errorf("ParseActive(%q) = %+v, want %+v", tc.out, got, tc.want)
		}
	}
}

func TestPlanResize(t *testing.T) {
	t.Run("replica first, switchover, then the old primary", func(t *testing.T) {
		p, err := PlanResize(cloudInventory(t), "cpx42", whole("db-2"))
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"set-size",
			"record-volume/db-1", "stop-keeper/db-1", "resize/db-1", "boot/db-1", "volume-kept/db-1", "start-keeper/db-1", "rejoin/db-1", "streaming/db-2",
			"switchover/db-2", "promoted/db-1", "writable/db-1",
			"record-volume/db-2", "stop-keeper/db-2", "resize/db-2", "boot/db-2", "volume-kept/db-2", "start-keeper/db-2", "rejoin/db-2", "streaming/db-1"}
		if got := ids(p); !reflect.DeepEqual(got, want) {
			t.Errorf("steps\n got %v\nwant %v", got, want)
		}
		for _, s := range p.Steps {
			if (s.Kind == KindResize || s.Kind == KindSetSize) && s.Size != "cpx42" {
				t.Errorf("step %s size %q", s.ID, s.Size)
			}
		}
	})
	refusals := []struct {
		name string
		inv  func(*testing.T) *inventory.Inventory
		size string
		f    Facts
		want string
	}{
		{"the lab has no sizes", testInventory, "cpx42", whole("db-1"), "the lab's machines have no server size"},
		{"empty size", cloudInventory, " ", whole("db-1"), `--size: " ", expected a hetzner size orderable`},
		{"not a size of the provider", cloudInventory, "s-4vcpu-8gb", whole("db-1"), "expected a hetzner size"},
		{"deprecated", cloudInventory, "cx22", whole("db-1"), "use cx23"},
		{"formation not whole", cloudInventory, "cpx42", Facts{DB: map[string]NodeState{"db-1": {"primary", "primary"}}}, "the monitor does not list db-2"},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			_, err := PlanResize(tc.inv(t), tc.size, tc.f)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestParseNodeStates(t *testing.T) {
	m, err := ParseNodeStates("db-1|primary|primary\ndb-2|catchingup|secondary\n")
	if err != nil {
		t.Fatal(err)
	}
	if m["db-2"].Settled() || !m["db-1"].Settled() || m["db-2"].String() != "catchingup (going secondary)" {
		t.Errorf("parsed %+v", m)
	}
	for _, bad := range []string{"", "db-1 primary primary", "|primary|primary"} {
		if _, err := ParseNodeStates(bad); err == nil {
			t.Errorf("ParseNodeStates(%q) = nil error", bad)
		}
	}
}
