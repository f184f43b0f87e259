//go:build lab

// Lab tests with real apps and real clients (issue 8): an ordinary app that
// exits at once on SIGTERM (the lab app's default), apps answering 503 on
// purpose or crash-looping, under keep-alive clients through the VIP
// (bench/load/loadgen). Each path asserts the exact count of client-visible
// failures belay caused — failures the app did not answer on purpose: 0.
//
// Every test prints a line "LOAD <test>: <n> requests, <k> caused by belay";
// run with -v and total them:
//
//	go test -count=1 -p 1 -tags lab -v -run 'TestLabRealApps' ./deploy/ | grep '^LOAD '
package deploy_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/belay-sh/belay/bench/load/loadgen"
	"github.com/belay-sh/belay/deploy"
)

const whitelisted = "alpha.lab.belay.test"

// loadShops: the whitelisted shop, requests naming no shop, and twelve more
// shops, so `--sticky shop` % stages split the clients (from one lab address,
// sticky ip would put every client on one side).
var loadShops = []string{whitelisted, "", "s1.test", "s2.test", "s3.test", "s4.test", "s5.test", "s6.test",
	"s7.test", "s8.test", "s9.test", "s10.test", "s11.test", "s12.test"}

// loadOptions is the lab's client mix: 8 keep-alive clients back to back and
// 2 holding 1.5 s requests open, with a browser-like 10 s timeout (a request
// nginx retries elsewhere after a 300 ms connect timeout is slow, not lost).
func loadOptions() loadgen.Options {
	return loadgen.Options{
		Target: "http://" + app.VIP, Host: app.Domains[0],
		Clients: 8, Gap: 2 * time.Millisecond, Shops: loadShops,
		SlowClients: 2, SlowPath: "/sleep?d=1500ms",
		Timeout: 10 * time.Second, MaxDuration: 5 * time.Minute,
	}
}

// underLoad starts the load; the returned func stops it (once) and reports.
func underLoad(t *testing.T, o loadgen.Options) func() loadgen.Report {
	t.Helper()
	l, err := loadgen.Start(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	var rep *loadgen.Report
	stop := func() loadgen.Report {
		if rep == nil {
			r := l.Stop()
			rep = &r
		}
		return *rep
	}
	t.Cleanup(func() { stop() })
	// Clients are sending before belay does anything.
	for deadline := time.Now().Add(5 * time.Second); l.Sent() < 20 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
	}
	return stop
}

// noneLostToBelay prints the run's count and fails unless no client saw a
// failure the app did not answer on purpose.
func noneLostToBelay(t *testing.T, rep loadgen.Report) {
	t.Helper()
	fmt.Printf("LOAD %s: %d requests, %d caused by belay\n", t.Name(), rep.Total.Requests, rep.Total.BelayFailures())
	t.Logf("load through the VIP: %s", rep)
	if rep.Total.Requests < 100 {
		t.Errorf("only %d requests under load: the test proves nothing", rep.Total.Requests)
	}
	if n := rep.Total.BelayFailures(); n != 0 {
		t.Errorf("%d client-visible failures caused by belay (want 0); first ones:\n%v", n, rep.Failures)
	}
	if rep.Conns > rep.Total.Requests/10 {
		t.Errorf("%d connections for %d requests: the clients did not keep connections alive", rep.Conns, rep.Total.Requests)
	}
}

// killDeploy runs a deploy and SIGKILLs it once killAfter was reported ok on every app host.
func killDeploy(t *testing.T, killAfter string, args ...string) {
	t.Helper()
	cmd := exec.Command(belayBin, args...)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	sc := bufio.NewScanner(stderr)
	killed := false
	for sc.Scan() && !killed {
		line := sc.Text()
		t.Log(line)
		for _, h := range app.Hosts {
			if strings.HasPrefix(line, "["+h+"] ") && strings.Contains(line, killAfter) && strings.Contains(line, "… ok") {
				seen[h] = true
			}
		}
		if len(seen) == len(app.Hosts) {
			cmd.Process.Signal(syscall.SIGKILL)
			killed = true
		}
	}
	cmd.Wait()
	if !killed {
		t.Fatalf("deploy ended before %q on every host", killAfter)
	}
}

func canaryArgs(id, art string, extra ...string) []string {
	return append([]string{"deploy", "--app", app.Name, "--artifact", art, "--release", id,
		"--whitelist-shops", whitelisted, "--sticky", "shop", "--pause", "3s", "--max-wait", "20s", "--min-requests", "20"}, extra...)
}

// TestLabRealAppsNoDrainLosesNothing: every deploy path, with the ordinary app
// that exits at once on SIGTERM, under keep-alive load through the VIP.
func TestLabRealAppsNoDrainLosesNothing(t *testing.T) {
	tests := []struct {
		name string
		// run takes the app from the baseline prev to the release it returns.
		run func(t *testing.T, prev string) string
	}{
		{"promote through whitelist and 50%", func(t *testing.T, prev string) string {
			id := newID("promote")
			r := belay(t, canaryArgs(id, artifact(t, id), "--steps", "50")...)
			if r.err != nil || !strings.Contains(r.stderr, "route 50% … ok") {
				t.Fatalf("deploy: %v", r.err)
			}
			return id
		}},
		{"three direct deploys", func(t *testing.T, prev string) string {
			var id string
			for i := 0; i < 3; i++ {
				id = newID("direct")
				if r := deployDirect(t, id, artifact(t, id)); r.err != nil {
					t.Fatalf("deploy %d: %v", i+1, r.err)
				}
			}
			return id
		}},
		{"abort at whitelist", func(t *testing.T, prev string) string {
			id := newID("abort-wl")
			r := belay(t, canaryArgs(id, artifact(t, id, "-X main.canaryErrors=yes"), "--steps", "50")...)
			if r.err == nil || !strings.Contains(r.stderr, "canary rejected at whitelist") || !strings.Contains(r.stderr, "rolling back every host") {
				t.Fatalf("want the whitelist verdict to abort: %v", r.err)
			}
			return prev
		}},
		{"abort at 50%", func(t *testing.T, prev string) string {
			id := newID("abort-50")
			// Passes the whitelist (the whitelisted shop is spared), fails every other shop.
			art := artifact(t, id, "-X main.canaryErrors=yes", "-X main.canaryErrorsSpare="+whitelisted)
			r := belay(t, canaryArgs(id, art, "--steps", "50")...)
			if r.err == nil || !strings.Contains(r.stderr, "canary rejected at 50%") || !strings.Contains(r.stderr, "rolling back every host") {
				t.Fatalf("want the 50%% verdict to abort: %v", r.err)
			}
			return prev
		}},
		{"swap-back rollback", func(t *testing.T, prev string) string {
			id := newID("swap")
			before := len(auditLog(t))
			r := deployDirect(t, id, artifact(t, id, "-X main.health=fail-stable"), "--health-timeout", "3s")
			if r.err == nil || !strings.Contains(r.stderr, "current -> ") || !strings.Contains(r.stderr, "rolling back every host") {
				t.Fatalf("want a failure after current switched and a swap back: %v", r.err)
			}
			if es := auditLog(t); len(es) <= before || es[len(es)-1].Result != "rolled-back" || es[len(es)-1].Release != id {
				t.Errorf("audit should end with %s rolled-back, got %+v", id, es[len(es)-1])
			}
			return prev
		}},
		{"belay rollback", func(t *testing.T, prev string) string {
			id := newID("next")
			if r := deployDirect(t, id, artifact(t, id)); r.err != nil {
				t.Fatal(r.err)
			}
			if r := belay(t, "rollback", "--app", app.Name); r.err != nil {
				t.Fatal(r.err)
			}
			return prev
		}},
		{"recovery after SIGKILL before current switched", func(t *testing.T, prev string) string {
			return killThenRecover(t, "route full", "rolled back")
		}},
		{"recovery after SIGKILL after current switched", func(t *testing.T, prev string) string {
			return killThenRecover(t, "current -> ", "rolled forward")
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			prev := baseline(t)
			stop := underLoad(t, loadOptions())
			want := tc.run(t, prev)
			// Requests keep flowing a moment after the last step: a process
			// stopped late (after belay returned) would show here.
			time.Sleep(2 * time.Second)
			rep := stop()
			assertConverged(t, want)
			noneLostToBelay(t, rep)
			// Every path routes clients to a canary at some point: the load spanned it.
			if c := loadgen.Get(rep.ByPool, "canary"); c.Requests == 0 {
				t.Errorf("no request answered by the canary pool: the load did not span the route changes")
			}
		})
	}
}

// killThenRecover SIGKILLs a direct deploy after killAfter, then deploys a
// good release, which must first recover (how) and then converge. The kill
// follows the deploy's progress lines, so on a loaded machine it can land a
// step late: for "rolled back" (the kill must land before `current` points at
// the killed release on every host) a run where belay found it so and rolled
// forward — which it must then — is tried again, at most 3 times.
func killThenRecover(t *testing.T, killAfter, how string) string {
	t.Helper()
	const late = "recovery: rolled forward to "
	for attempt := 1; ; attempt++ {
		id := newID("killed")
		killDeploy(t, killAfter, "deploy", "--app", app.Name, "--artifact", artifact(t, id), "--release", id, "--steps", "none", "--pause", "0")
		next := newID("after-kill")
		r := deployDirect(t, next, artifact(t, next))
		if r.err != nil {
			t.Fatalf("re-run: %v", r.err)
		}
		if !strings.Contains(r.stderr, "found an unfinished deploy of "+id) {
			t.Fatalf("the re-run did not find the killed deploy's journal:\n%s", r.stderr)
		}
		if how == "rolled back" && strings.Contains(r.stderr, late+id+" (already current on every host)") {
			if attempt == 3 {
				t.Fatalf("the kill after %q landed after current switched on every host in 3 attempts: the path to roll back was not reached", killAfter)
			}
			t.Logf("attempt %d: the kill landed after current switched on every host (a loaded machine): rolled forward, as it must; again", attempt)
			continue
		}
		if !strings.Contains(r.stderr, "recovery: "+how) {
			t.Errorf("want recovery %q in:\n%s", how, r.stderr)
		}
		return next
	}
}

// TestLabRealAppsErrorShareUnchanged: an app answering 503 to 1 request in 25
// shows 4 % ± 1 pt to its clients — deployed to 100 %, and as a whitelist
// canary to the whitelisted shop — and nothing else fails.
func TestLabRealAppsErrorShareUnchanged(t *testing.T) {
	check := func(t *testing.T, rep loadgen.Report, pool string) {
		t.Helper()
		noneLostToBelay(t, rep)
		c := loadgen.Get(rep.ByPool, pool)
		share := c.Share(c.Deliberate)
		fmt.Printf("LOAD %s: pool %s: %.2f %% deliberate 503s of %d\n", t.Name(), pool, share, c.Requests)
		if c.Requests < 1000 || share < 3 || share > 5 || c.Deliberate != c.Status[503] {
			t.Errorf("pool %s: %s; want 4 %% ± 1 pt of at least 1000 requests, all the app's own 503s", pool, c)
		}
	}
	t.Run("deployed to 100%", func(t *testing.T) {
		baseline(t)
		id := newID("share")
		if r := deployDirect(t, id, artifact(t, id, "-X main.errorsOneIn=25")); r.err != nil {
			t.Fatal(r.err)
		}
		o := loadOptions()
		o.MaxRequests = 5000
		rep, err := loadgen.Run(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		check(t, rep, "stable")
	})
	t.Run("whitelist canary", func(t *testing.T) {
		prev := baseline(t)
		id := newID("share-canary")
		r := belay(t, "deploy", "--app", app.Name, "--artifact", artifact(t, id, "-X main.errorsOneIn=25"), "--release", id,
			"--whitelist-shops", whitelisted, "--stop-after", "whitelist", "--pause", "0")
		if r.err != nil || !strings.Contains(r.stdout, "paused after the whitelist stage") {
			t.Fatalf("gated deploy: %v\n%s", r.err, r.stdout)
		}
		o := loadOptions()
		o.Shops, o.SlowClients, o.MaxRequests = []string{whitelisted}, 0, 3000
		rep, err := loadgen.Run(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		check(t, rep, "canary")
		if r := belay(t, "rollback", "--app", app.Name, "--abandon"); r.err != nil {
			t.Fatal(r.err)
		}
		assertConverged(t, prev)
	})
}

// TestLabRealAppsGoodDeployAfterCrashLoop: a release whose start exits at
// once fails and rolls back; a good release deployed right after succeeds
// (the crash-looping unit's failed state must not block it), and clients lose
// nothing throughout.
func TestLabRealAppsGoodDeployAfterCrashLoop(t *testing.T) {
	prev := baseline(t)
	stop := underLoad(t, loadOptions())
	bad := newID("crashloop")
	start := time.Now()
	r := deployDirect(t, bad, artifact(t, bad, "-X main.crashLoop=yes"), "--health-timeout", "20s")
	if r.err == nil {
		t.Fatal("a crash-looping release deployed")
	}
	t.Logf("crash-looping release rejected after %s", time.Since(start).Round(time.Millisecond))
	if !strings.Contains(r.stderr, "health check") || !strings.Contains(r.stderr, "on purpose") || !strings.Contains(r.stderr, "rolling back every host") {
		t.Errorf("want a crash-aware health failure with the unit's log, then a rollback of every host:\n%s", r.stderr)
	}
	// The check must stop at the crash (its last line, "health check
	// failed: UNIT exited ..."), not poll out its 20 s budget ("failed for
	// 20s"). Asserted on what the check said, not on the wall time, which
	// includes uploads on a busy box.
	if !strings.Contains(r.stderr, "health check failed: ") || strings.Contains(r.stderr, "failed for 20s") {
		t.Errorf("want the health check stopped at the crash, not at its 20s budget:\n%s", r.stderr)
	}
	assertConverged(t, prev)
	// Right away: systemd may be rate-limiting the crash-looping canary unit.
	good := newID("after-crashloop")
	if r := deployDirect(t, good, artifact(t, good)); r.err != nil {
		t.Fatalf("the good release right after the crash-looping one: %v", r.err)
	}
	rep := stop()
	assertConverged(t, good)
	noneLostToBelay(t, rep)
}

// TestLabRealAppsCanaryCrashAfterHealth: a whitelist canary that crashes 3 s
// after passing its health check is rolled back; the whitelisted shop's
// failures are the app's, every other client loses nothing.
func TestLabRealAppsCanaryCrashAfterHealth(t *testing.T) {
	prev := baseline(t)
	stop := underLoad(t, loadOptions())
	id := newID("crash-after")
	start := time.Now()
	r := belay(t, "deploy", "--app", app.Name, "--artifact", artifact(t, id, "-X main.crashAfter=3s", "-X main.faultSlot=canary"), "--release", id,
		"--whitelist-shops", whitelisted, "--steps", "none", "--pause", "15s", "--max-wait", "30s", "--min-requests", "20", "--json")
	took := time.Since(start)
	rep := stop()
	if r.err == nil {
		t.Fatal("a canary crashing after its health check was promoted")
	}
	if !strings.Contains(r.stderr, "canary crashed at whitelist") || !strings.Contains(r.stderr, "crashAfter=") || !strings.Contains(r.stderr, "rolling back every host") {
		t.Errorf("want the crash named with the unit's log, then a rollback of every host:\n%s", r.stderr)
	}
	var out deploy.Outcome
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("outcome: %v\n%s", err, r.stdout)
	}
	if out.Detection == nil || out.Detection.FirstBad == "" {
		t.Fatalf("outcome lacks the crash time: %+v", out.Detection)
	}
	// The figure (target <= 3 s) is reported, not asserted: timings belong in
	// benchmarks. What must hold is that the rollback began during the stage,
	// long before its 15 s pause would have ended (the crash is 3 s in).
	d, err := time.ParseDuration(out.Detection.FirstBadToRollbackStart)
	if err != nil || d > 10*time.Second {
		t.Errorf("crash to rollback start %q: the rollback waited for the end of the stage", out.Detection.FirstBadToRollbackStart)
	}
	fmt.Printf("CRASH %s: crash to rollback start %s, end %s (target <= 3s)\n", t.Name(), out.Detection.FirstBadToRollbackStart, out.Detection.FirstBadToRollbackEnd)
	assertConverged(t, prev)
	w := loadgen.Get(rep.ByShop, whitelisted)
	fmt.Printf("LOAD %s: %d requests; whitelisted %d failed of %d (the app's crash); deploy ended after %s\n",
		t.Name(), rep.Total.Requests, w.Failed(), w.Requests, took.Round(time.Millisecond))
	t.Logf("load: %s", rep)
	for shop, c := range rep.ByShop {
		if shop != whitelisted && c.BelayFailures() != 0 {
			t.Errorf("shop %q (never on the canary): %s", shop, c)
		}
	}
}
