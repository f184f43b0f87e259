package deploy

import (
	"strings"
	"testing"
	"time"

	"github.com/belay-sh/belay/deploy/journal"
	"github.com/belay-sh/belay/deploy/plan"
	"github.com/belay-sh/belay/deploy/release"
)

// TestFailureBeforeCanaryNeedsNoRollback: a deploy that failed at the release
// command (or earlier) changed no unit, link or route, so no undo plan runs;
// one that reached canary-start on any host does need one.
func TestFailureBeforeCanaryNeedsNoRollback(t *testing.T) {
	d := testDeployer(t)
	a := &release.Artifact{Path: "x", Kind: release.Binary, Size: 1, SHA256: strings.Repeat("a", 64)}
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
