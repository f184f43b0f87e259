package plan_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/belay-sh/belay/deploy/plan"
	"github.com/belay-sh/belay/deploy/traffic"
	"github.com/belay-sh/belay/hostrelease"
	"github.com/belay-sh/belay/inventory"
)

var update = flag.Bool("update", false, "rewrite golden files")

func inv(t *testing.T) *inventory.Inventory {
	t.Helper()
	i, err := inventory.Load("testdata/inventory.json")
	if err != nil {
		t.Fatal(err)
	}
	return i
}

var artifact = &hostrelease.Artifact{Path: "shop.tar.gz", Kind: hostrelease.Tarball, Gzip: true, Size: 3 << 20,
	SHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}

func TestGolden(t *testing.T) {
	tests := []struct {
		name string
		in   plan.Input
	}{
		{"canary-whitelist-steps", plan.Input{App: "shop", Release: "v42", Artifact: artifact, Strategy: plan.Strategy{
			Rules: traffic.Rules{Shops: []string{"alpha.example.com"}, Clients: []string{"203.0.113.7"}},
			Steps: []int{10, 50}, Pause: 2 * time.Minute, Protect: []string{"v41"}}}},
		{"percent-only-no-analysis", plan.Input{App: "shop", Release: "v42", Artifact: artifact, Strategy: plan.Strategy{Steps: []int{25, 100}}}},
		{"stop-after-whitelist", plan.Input{App: "shop", Release: "v42", Artifact: artifact, Strategy: plan.Strategy{
			Rules: traffic.Rules{Shops: []string{"alpha.example.com"}}, Steps: []int{10}, Pause: time.Minute, StopAfter: "whitelist"}}},
		{"env-release-command", plan.Input{App: "shop", Release: "v42", Artifact: artifact, Env: true, ReleaseCommand: []string{"bin/migrate", "--up"},
			Strategy: plan.Strategy{Steps: []int{10}, Pause: time.Minute}}},
		{"direct-rollback", plan.Input{App: "shop", Release: "v41", Strategy: plan.Strategy{Direct: true, Steps: []int{10}, Pause: time.Minute}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.in.Inventory = inv(t)
			p, err := plan.Deploy(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			plan.Print(&buf, p)
			golden(t, tc.name+".txt", buf.Bytes())
			js, err := plan.JSON(p)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, tc.name+".json", js)
		})
	}
	t.Run("skip-standby", func(t *testing.T) {
		p, err := plan.Deploy(plan.Input{Inventory: inv(t), App: "shop", Release: "v42", Artifact: artifact, SkipStandby: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range p.Steps {
			for _, h := range s.Hosts {
				if h == "shop-standby" {
					t.Errorf("%s runs on the skipped standby", s.ID)
				}
			}
		}
	})
	t.Run("abort", func(t *testing.T) {
		p, err := plan.Abort(inv(t), "shop", "")
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		plan.Print(&buf, p)
		golden(t, "abort.txt", buf.Bytes())
	})
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file; diff with go test -update && git diff\n--- got ---\n%s", name, got)
	}
}

// TestStageOrder checks the safety invariants every strategy must keep.
func TestStageOrder(t *testing.T) {
	strategies := map[string]plan.Strategy{
		"whitelist":        {Rules: traffic.Rules{Shops: []string{"a.example.com"}}, Pause: time.Minute},
		"steps":            {Steps: []int{10, 50}, Pause: time.Minute},
		"whitelist+steps":  {Rules: traffic.Rules{Clients: []string{"10.0.0.0/8"}}, Steps: []int{5, 20, 60}},
		"straight to 100%": {},
		"direct":           {Direct: true},
	}
	for name, st := range strategies {
		t.Run(name, func(t *testing.T) {
			in := plan.Input{Inventory: inv(t), App: "shop", Release: "v42", Artifact: artifact, Strategy: st}
			if st.Direct {
				in.Artifact = nil
			}
			p, err := plan.Deploy(in)
			if err != nil {
				t.Fatal(err)
			}
			idx := map[string]int{}
			for i, s := range p.Steps {
				idx[s.ID[3:]] = i
				hosts := strings.Join(s.Hosts, ",")
				switch s.ID[3:] {
				case "upload", "unpack", "verify", "cleanup":
					if hosts != "shop-1,shop-2,shop-standby" {
						t.Errorf("%s runs on %v, want the app hosts and the standby", s.ID, s.Hosts)
					}
				case "standby-current":
					if hosts != "shop-standby" {
						t.Errorf("%s runs on %v, want the standby only", s.ID, s.Hosts)
					}
				default: // canary, routing, promotion: the serving group only
					if hosts != "shop-1,shop-2" {
						t.Errorf("%s runs on %v, want both app hosts", s.ID, s.Hosts)
					}
				}
				if s.Command == "" && s.Analyze == nil {
					t.Errorf("%s has nothing to do", s.ID)
				}
			}
			before := func(a, b string) {
				t.Helper()
				ia, oka := idx[a]
				ib, okb := idx[b]
				if !oka || !okb || ia >= ib {
					t.Errorf("%s must come before %s (plan: %v)", a, b, idx)
				}
			}
			// Nothing gets traffic before it is healthy; stable restarts only while the canary serves everything.
			before("canary-start", "canary-health")
			before("canary-health", "route-full")
			before("route-full", "switch-current")
			before("switch-current", "restart-stable")
			before("restart-stable", "stable-health")
			before("stable-health", "route-stable")
			before("route-stable", "stop-canary")
			before("stop-canary", "standby-current")
			if !st.Direct {
				before("upload", "unpack")
				before("unpack", "canary-start")
				before("standby-current", "cleanup")
			}
			if !st.Rules.Empty() {
				before("canary-health", "route-whitelist")
			}
			for _, pct := range st.Steps {
				before("canary-health", "route-"+itoa(pct))
				if st.Pause > 0 {
					before("route-"+itoa(pct), "analyze-"+itoa(pct))
				}
			}
			n := 0
			for _, s := range p.Steps {
				if s.Switches {
					n++
				}
			}
			if n != 1 {
				t.Errorf("%d steps switch current, want exactly 1", n)
			}
		})
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestBadInput(t *testing.T) {
	tests := []struct {
		name string
		in   plan.Input
		want string
	}{
		{"unknown app", plan.Input{App: "blog", Release: "v1", Artifact: artifact}, `app "blog": not in the inventory (apps: shop)`},
		{"bad release", plan.Input{App: "shop", Release: "../v1", Artifact: artifact}, "release"},
		{"no artifact", plan.Input{App: "shop", Release: "v1"}, "artifact: required"},
		{"steps not ascending", plan.Input{App: "shop", Release: "v1", Artifact: artifact, Strategy: plan.Strategy{Steps: []int{50, 10}}}, "steps"},
		{"step zero", plan.Input{App: "shop", Release: "v1", Artifact: artifact, Strategy: plan.Strategy{Steps: []int{0}}}, "steps"},
		{"keep 1", plan.Input{App: "shop", Release: "v1", Artifact: artifact, Strategy: plan.Strategy{KeepReleases: 1}}, "keep releases"},
		{"stop after unknown stage", plan.Input{App: "shop", Release: "v1", Artifact: artifact, Strategy: plan.Strategy{Steps: []int{10}, StopAfter: "whitelist"}}, `stop after "whitelist": not a stage of this rollout (stages: 10%)`},
		{"bad shop", plan.Input{App: "shop", Release: "v1", Artifact: artifact, Strategy: plan.Strategy{Rules: traffic.Rules{Shops: []string{"bad shop;"}}}}, "shop"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.in.Inventory = inv(t)
			_, err := plan.Deploy(tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want error containing %q, got %v", tc.want, err)
			}
		})
	}
}

// When the canary already serves all traffic (a rollout stopped after
// route-full), a rollback or recovery never restarts it under that traffic:
// it starts at switch-current and drains before the canary stops.
func TestDirectWhileCanaryServes(t *testing.T) {
	p, err := plan.Deploy(plan.Input{Inventory: inv(t), App: "shop", Release: "v41", Strategy: plan.Strategy{Direct: true, CanaryServes: true}})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, s := range p.Steps {
		ids = append(ids, s.ID[3:])
		if strings.Contains(s.Command, "restart belay-canary@") {
			t.Errorf("step %s restarts the serving canary", s.ID)
		}
	}
	want := "verify switch-current restart-stable stable-health route-stable stop-canary standby-current"
	if got := strings.Join(ids, " "); got != want {
		t.Fatalf("steps %q, want %q", got, want)
	}
	if _, err := plan.Deploy(plan.Input{Inventory: inv(t), App: "shop", Release: "v42", Artifact: artifact, Strategy: plan.Strategy{CanaryServes: true}}); err == nil {
		t.Fatal("canary-serves accepted for a canary rollout")
	}
}
