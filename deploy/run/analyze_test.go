package run_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/belay-sh/belay/deploy/plan"
	"github.com/belay-sh/belay/deploy/run"
	"github.com/belay-sh/belay/hostrelease"
	"github.com/belay-sh/belay/inventory"
)

var t0 = time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)

// fakeClock is the runner's Now and Sleep: sleeping advances it at once and
// then runs onSleep, which plays what happened on the hosts meanwhile.
type fakeClock struct {
	mu      sync.Mutex
	t       time.Time
	onSleep func(at time.Duration)
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Sleep(_ context.Context, d time.Duration) error {
	c.mu.Lock()
	c.t = c.t.Add(d)
	at := c.t.Sub(t0)
	c.mu.Unlock()
	if c.onSleep != nil {
		c.onSleep(at)
	}
	return nil
}

func (c *fakeClock) at() time.Duration { return c.Now().Sub(t0) }

// fakeUnit defines systemctl and journalctl as shell functions (they win over
// PATH): the canary unit's state is the file $BELAY_ROOT/unit-state.
const fakeUnit = `systemctl() {
  case " $* " in
  *ExecMainExitTimestamp*) echo "Sun 2026-11-22 03:00:03.250000 UTC";;
  *" --value "*) sed -n 's/^NRestarts=//p' "$BELAY_ROOT/unit-state";;
  *) cat "$BELAY_ROOT/unit-state";;
  esac
}
journalctl() { echo "shop-2 belay-canary-shop[7]: panic: out of memory"; }
`

// probeSpec is the plan's real analysis probe, reading $BELAY_ROOT/access.log
// and the fake unit.
func probeSpec(t *testing.T, pause, maxWait time.Duration) *plan.AnalyzeSpec {
	t.Helper()
	inv, err := inventory.Load("../plan/testdata/inventory.json")
	if err != nil {
		t.Fatal(err)
	}
	p, err := plan.Deploy(plan.Input{Inventory: inv, App: "shop", Release: "v2", Artifact: &hostrelease.Artifact{Kind: hostrelease.Tarball, SHA256: strings.Repeat("a", 64)},
		Strategy: plan.Strategy{Steps: []int{10}, Pause: pause, MaxWait: maxWait}})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range p.Steps {
		if s.Analyze != nil {
			a := *s.Analyze
			a.ProbeCommand = fakeUnit + strings.ReplaceAll(a.ProbeCommand, plan.AccessLog("shop"), "$BELAY_ROOT/access.log")
			return &a
		}
	}
	t.Fatal("no analyze step")
	return nil
}

// lineJudgement records every line it is given and decides by a function of
// the fake time and the lines so far.
type lineJudgement struct {
	mu     sync.Mutex
	lines  map[string][]string
	decide func(at time.Duration, lines map[string][]string) run.Verdict
	clock  *fakeClock
}

func (j *lineJudgement) Add(host string, b []byte) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if !strings.HasSuffix(string(b), "\n") {
		return fmt.Errorf("%s: given an incomplete line: %q", host, b)
	}
	j.lines[host] = append(j.lines[host], strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")...)
	return nil
}

func (j *lineJudgement) Verdict() (run.Verdict, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.decide(j.clock.at(), j.lines), nil
}

type analyzeRig struct {
	th    *testHosts
	clock *fakeClock
	r     *run.Runner
	j     *lineJudgement
	p     *plan.Plan
	hosts []string
}

func newAnalyzeRig(t *testing.T, pause, maxWait time.Duration, decide func(time.Duration, map[string][]string) run.Verdict, hosts ...string) *analyzeRig {
	t.Helper()
	if len(hosts) == 0 {
		hosts = []string{"shop-1", "shop-2"}
	}
	rig := &analyzeRig{th: newHosts(t, hosts...), clock: &fakeClock{t: t0}, hosts: hosts}
	for _, h := range hosts {
		rig.write(t, h, "access.log", "before the stage\n")
		rig.write(t, h, "unit-state", "ActiveState=active\nSubState=running\nNRestarts=1\n")
	}
	rig.j = &lineJudgement{lines: map[string][]string{}, decide: decide, clock: rig.clock}
	rig.r = &run.Runner{Pool: rig.th.pool, Layout: layout, Now: rig.clock.Now, Sleep: rig.clock.Sleep,
		Judge: func(string) run.Judgement { return rig.j }}
	rig.p = &plan.Plan{Steps: []plan.Step{{ID: "01-analyze", Title: "analyze 10%", Hosts: hosts, Analyze: probeSpec(t, pause, maxWait)}}}
	return rig
}

func (rig *analyzeRig) write(t *testing.T, host, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(rig.th.roots[host], name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (rig *analyzeRig) appendLog(t *testing.T, host, s string) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(rig.th.roots[host], "access.log"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.WriteString(s)
}

func (rig *analyzeRig) exec() error {
	return rig.r.Exec(context.Background(), rig.p, recs(rig.hosts...))
}

// TestAnalyzeVerdictTiming: the verdict is re-evaluated every tick; a Fail
// ends the stage at once, a Pass only counts once the whole pause was
// observed, Wait goes on to MaxWait.
func TestAnalyzeVerdictTiming(t *testing.T) {
	v := func(d run.Decision) run.Verdict { return run.Verdict{Decision: d, Reason: fmt.Sprint("decision ", d)} }
	tests := []struct {
		name           string
		pause, maxWait time.Duration
		decide         func(at time.Duration) run.Decision
		wantAt         time.Duration
		wantErr        string
	}{
		{"pass only after the whole pause", 4 * time.Second, 12 * time.Second, func(time.Duration) run.Decision { return run.Pass }, 4 * time.Second, ""},
		{"fail at the first tick", 4 * time.Second, 12 * time.Second, func(time.Duration) run.Decision { return run.Fail }, time.Second, "canary rejected at 10%: decision 2"},
		{"fail mid-stage after passing", 6 * time.Second, 18 * time.Second, func(at time.Duration) run.Decision {
			if at >= 3*time.Second {
				return run.Fail
			}
			return run.Pass
		}, 3 * time.Second, "canary rejected"},
		{"not enough requests, then pass after the pause", 3 * time.Second, 9 * time.Second, func(at time.Duration) run.Decision {
			if at >= 5*time.Second {
				return run.Pass
			}
			return run.Wait
		}, 5 * time.Second, ""},
		{"never enough requests: no verdict at max wait", 3 * time.Second, 5 * time.Second, func(time.Duration) run.Decision { return run.Wait }, 5 * time.Second, "no verdict after 5s"},
		{"a pause of 2.5 s: its end is a tick", 2500 * time.Millisecond, 2500 * time.Millisecond, func(time.Duration) run.Decision { return run.Pass }, 2500 * time.Millisecond, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// One host: every tick is an SSH round trip, and the timing is the point here.
			rig := newAnalyzeRig(t, tc.pause, tc.maxWait, func(at time.Duration, _ map[string][]string) run.Verdict { return v(tc.decide(at)) }, "shop-1")
			err := rig.exec()
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("err %v, want %q", err, tc.wantErr)
			}
			if got := rig.clock.at(); got != tc.wantAt {
				t.Errorf("verdict at %s, want %s", got, tc.wantAt)
			}
		})
	}
}

// TestAnalyzeReadsOnlyNewLines: each tick hands the judgement exactly the
// complete lines written since the last one — nothing from before the stage,
// no line twice, a half-written line once it is complete.
func TestAnalyzeReadsOnlyNewLines(t *testing.T) {
	var rig *analyzeRig
	rig = newAnalyzeRig(t, 4*time.Second, 4*time.Second, func(time.Duration, map[string][]string) run.Verdict {
		return run.Verdict{Decision: run.Pass, Reason: "ok"}
	})
	rig.clock.onSleep = func(at time.Duration) {
		for _, h := range rig.hosts {
			switch at {
			case time.Second:
				rig.appendLog(t, h, "req 1\nreq 2 (half")
			case 2 * time.Second:
				rig.appendLog(t, h, " done)\n")
			case 3 * time.Second:
				rig.appendLog(t, h, "req 3\n")
			}
		}
	}
	if err := rig.exec(); err != nil {
		t.Fatal(err)
	}
	want := "req 1|req 2 (half done)|req 3"
	for _, h := range rig.hosts {
		if got := strings.Join(rig.j.lines[h], "|"); got != want {
			t.Errorf("%s: judged %q, want %q", h, got, want)
		}
	}
}

// TestAnalyzeCanaryCrash: a canary unit that crashes mid-stage fails the
// stage at the next tick — long before the pause ends — naming the host,
// carrying the unit's log and systemd's exit time.
func TestAnalyzeCanaryCrash(t *testing.T) {
	tests := []struct{ name, state, want string }{
		{"waiting for its automatic restart", "ActiveState=activating\nSubState=auto-restart\nNRestarts=1\n", "exited and waits for its automatic restart"},
		{"restarted between two ticks", "ActiveState=active\nSubState=running\nNRestarts=2\n", "restarted 1 time(s) (NRestarts 1 -> 2)"},
		{"gave up", "ActiveState=failed\nSubState=failed\nNRestarts=9\n", "is failed (failed)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var rig *analyzeRig
			rig = newAnalyzeRig(t, 15*time.Second, 45*time.Second, func(time.Duration, map[string][]string) run.Verdict {
				return run.Verdict{Decision: run.Pass, Reason: "ok"}
			})
			rig.clock.onSleep = func(at time.Duration) {
				if at == 2*time.Second {
					rig.write(t, "shop-2", "unit-state", tc.state)
				}
			}
			err := rig.exec()
			var se *run.StepError
			if !errors.As(err, &se) || len(se.ByHost) != 1 || se.ByHost["shop-2"] == nil {
				t.Fatalf("want the step failing on shop-2, got %v", err)
			}
			if got := rig.clock.at(); got != 2*time.Second {
				t.Errorf("crash seen at %s, want at the tick that followed it (2s)", got)
			}
			for _, want := range []string{tc.want, "canary crashed at 10% on shop-2", "panic: out of memory", "journalctl -u belay-canary@shop.service -n 30"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error lacks %q: %v", want, err)
				}
			}
			ce := run.FirstCanaryError(err)
			if ce == nil || ce.Host != "shop-2" || !ce.FirstBad.Equal(t0.Add(3250*time.Millisecond)) || !ce.Detected.Equal(t0.Add(2*time.Second)) {
				t.Errorf("canary error on %s first bad %s detected %s, want shop-2 exited at 03:00:03.25 (the fake systemd's), seen at 03:00:02", ce.Host, ce.FirstBad, ce.Detected)
			}
		})
	}
	t.Run("already crashed when the stage begins", func(t *testing.T) {
		rig := newAnalyzeRig(t, 15*time.Second, 45*time.Second, func(time.Duration, map[string][]string) run.Verdict {
			return run.Verdict{Decision: run.Pass, Reason: "ok"}
		})
		rig.write(t, "shop-1", "unit-state", "ActiveState=failed\nSubState=failed\nNRestarts=3\n")
		if err := rig.exec(); err == nil || !strings.Contains(err.Error(), "on shop-1") || rig.clock.at() != 0 {
			t.Errorf("got %v at %s, want a failure on shop-1 before any wait", err, rig.clock.at())
		}
	})
}

// TestFirstCanaryError picks the earliest known start among several hosts.
func TestFirstCanaryError(t *testing.T) {
	a := &run.CanaryError{Host: "shop-1", FirstBad: t0.Add(2 * time.Second)}
	b := &run.CanaryError{Host: "shop-2", FirstBad: t0.Add(time.Second)}
	c := &run.CanaryError{Host: "shop-3"}
	err := fmt.Errorf("deploy: %w", &run.StepError{ByHost: map[string]error{"shop-1": a, "shop-2": b, "shop-3": c}})
	if got := run.FirstCanaryError(err); got != b {
		t.Errorf("got %+v, want shop-2's", got)
	}
	if run.FirstCanaryError(errors.New("other")) != nil {
		t.Error("found a canary error in a plain error")
	}
}
