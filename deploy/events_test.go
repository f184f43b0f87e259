package deploy

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/belay-sh/belay/deploy/notify"
	"github.com/belay-sh/belay/deploy/plan"
	"github.com/belay-sh/belay/deploy/run"
	"github.com/belay-sh/belay/hostrelease"
	"github.com/belay-sh/belay/hostrelease/journal"
)

// TestFailureBeforeCanaryNeedsNoRollback: a deploy that failed at the release
// command (or earlier) changed no unit, link or route, so no undo plan runs;
// one that reached canary-start on any host does need one.
func TestFailureBeforeCanaryNeedsNoRollback(t *testing.T) {
	d := testDeployer(t)
	a := &hostrelease.Artifact{Path: "x", Kind: hostrelease.Binary, Size: 1, SHA256: strings.Repeat("a", 64)}
	p, err := plan.Deploy(plan.Input{Inventory: d.Inv, App: "shop", Release: "v2", Artifact: a, Env: true,
		ReleaseCommand: []string{"bin/migrate"}, Strategy: plan.Strategy{Steps: []int{10}, Pause: time.Minute}})
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
	for _, tc := range []struct {
		name string
		recs map[string]journal.Record
		want bool
	}{
		{"hook failed", map[string]journal.Record{"shop-1": {Step: step("env"), InProgress: step("release-command")}, "shop-2": {Step: step("env")}}, false},
		{"unpack failed on one host", map[string]journal.Record{"shop-1": {InProgress: step("unpack")}, "shop-2": {Step: step("env")}}, false},
		{"canary started on one host", map[string]journal.Record{"shop-1": {Step: step("release-command")}, "shop-2": {InProgress: step("canary-start")}}, true},
		{"routed", map[string]journal.Record{"shop-1": {Step: step("route-10")}}, true},
	} {
		if got := mayHaveStarted(p, tc.recs); got != tc.want {
			t.Errorf("%s: mayHaveStarted %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestEnvOnlyRelease(t *testing.T) {
	for _, tc := range []struct {
		cur    string
		serial int
		rel    string
		err    string
	}{
		{"v41", 3, "v41.env3", ""},
		{"v41.env3", 4, "v41.env4", ""},
		{"v41.env4", 4, "", "already runs env serial 4"},
		{"", 1, "", "no release runs yet"},
	} {
		in := plan.Input{App: "shop"}
		err := envOnly(&in, tc.cur, tc.serial)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s/%d: err %v, want %q", tc.cur, tc.serial, err, tc.err)
			}
			continue
		}
		if err != nil || in.Release != tc.rel || in.CopyFrom != tc.cur {
			t.Errorf("%s/%d: %q from %q, %v", tc.cur, tc.serial, in.Release, in.CopyFrom, err)
		}
	}
}

// TestEvents: the verdict (with its figures) and the outcome reach the
// webhook in order, with the app, stack and actor filled in.
func TestEvents(t *testing.T) {
	n, events := eventSink(t)
	d := testDeployer(t)
	d.Notify, d.Stack, d.Actor, d.Runner = n, "prod", Actor{Who: "ci@runner"}, &run.Runner{}
	restore := d.watchVerdicts("v2", "d1")
	d.Runner.OnVerdict("10%", run.Verdict{Decision: run.Fail, Reason: "canary 5xx 7%", Numbers: map[string]int{"canary5xx": 21}})
	restore()
	if d.Runner.OnVerdict != nil {
		t.Fatal("the verdict hook was not restored")
	}
	d.notifyOutcome(&Outcome{Result: "rolled-back", Release: "v2", Previous: "v1", DeployID: "d1", Error: "canary rejected"})
	d.notifyOutcome(&Outcome{Result: "rollback-failed", Release: "v2"})
	d.notifyOutcome(&Outcome{}) // a refused input: no event
	n.Close(5 * time.Second)
	got := events()
	if len(got) != 3 {
		t.Fatalf("events: %+v", got)
	}
	v := got[0]
	if v.Event != "verdict" || v.Verdict != "fail" || v.Stage != "10%" || v.App != "shop" || v.Stack != "prod" || v.By != "ci@runner" || fmt.Sprint(v.Analysis) != "map[canary5xx:21]" {
		t.Errorf("verdict event: %+v", v)
	}
	if got[1].Event != "rolled-back" || got[1].Previous != "v1" || got[1].Error != "canary rejected" || got[2].Event != "failed" {
		t.Errorf("outcome events: %+v", got[1:])
	}
}

// A `belay rollback` reports rolled-back (not "promoted") or failed; an
// abandon with nothing to undo is silent.
func TestRollbackEvents(t *testing.T) {
	n, events := eventSink(t)
	d := testDeployer(t)
	d.Notify, d.Stack = n, "prod"
	d.notifyRollback(&Outcome{Result: "ok", Release: "v1", Previous: "v2"})
	d.notifyRollback(&Outcome{Result: "nothing to abandon"})
	d.notifyRollback(&Outcome{Result: "failed", Error: "host unreachable"})
	n.Close(5 * time.Second)
	got := events()
	if len(got) != 2 || got[0].Event != "rolled-back" || got[0].Reason != "belay rollback" || got[0].Release != "v1" || got[1].Event != "failed" {
		t.Errorf("events: %+v", got)
	}
}

// eventSink is a webhook receiver on loopback and a notifier posting to it;
// events returns what arrived (call it after the notifier's Close).
func eventSink(t *testing.T) (*notify.Notifier, func() []notify.Event) {
	t.Helper()
	var mu sync.Mutex
	var got []notify.Event
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev notify.Event
		if err := json.NewDecoder(r.Body).Decode(&ev); err != nil {
			t.Error(err)
		}
		mu.Lock()
		got = append(got, ev)
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	n, err := notify.New([]string{srv.URL}, notify.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return n, func() []notify.Event {
		mu.Lock()
		defer mu.Unlock()
		return append([]notify.Event(nil), got...)
	}
}

// TestCellEvents: a cell's Deployer (ForCell) sends its events with the
// cell; an app's events have none (omitted from the JSON).
func TestCellEvents(t *testing.T) {
	n, events := eventSink(t)
	d := &Deployer{Inv: cellsInventory(t, 2), App: "shop", Runner: &run.Runner{}, Notify: n, Stack: "prod"}
	c2, err := d.ForCell("c2")
	if err != nil {
		t.Fatal(err)
	}
	c2.notifyRollback(&Outcome{Result: "ok", Release: "v1", Previous: "v2"})
	c2.notifyOutcome(&Outcome{Result: "ok", Release: "v3", Previous: "v1"})
	d.notifyOutcome(&Outcome{Result: "ok", Release: "v3"})
	n.Close(5 * time.Second)
	got := events()
	if len(got) != 3 || got[0].Cell != "c2" || got[0].Event != "rolled-back" || got[1].Cell != "c2" || got[1].Event != "promoted" || got[2].Cell != "" {
		t.Errorf("events: %+v", got)
	}
	b, _ := json.Marshal(notify.Event{App: "shop"})
	if strings.Contains(string(b), "cell") {
		t.Errorf("an app's event carries a cell: %s", b)
	}
}
