//go:build lab

// Lab tests: the real `belay` binary deploys to the lab's app servers (real
// sshd, systemd, nginx, keepalived) as a user would. They need `belay lab up`
// (the inventory at /var/lib/belay/lab/inventory.json) and run in sequence:
// they share the lab's app.
package deploy_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"archive/tar"
	"compress/gzip"

	"github.com/belay-sh/belay/deploy"
	"github.com/belay-sh/belay/deploy/sshx/sshdtest"
	"github.com/belay-sh/belay/hostrelease/journal"
	"github.com/belay-sh/belay/internal/cli"
	"github.com/belay-sh/belay/internal/labtest"
	"github.com/belay-sh/belay/inventory"

	"golang.org/x/crypto/ssh"
)

var (
	belayBin string
	labInv   *inventory.Inventory
	app      inventory.App
	runID    = fmt.Sprintf("t%d", time.Now().Unix()%1000000)
	seq      atomic.Int32
)

func TestMain(m *testing.M) {
	inv, err := inventory.Load(cli.DefaultInventory)
	if err != nil {
		fmt.Fprintf(os.Stderr, "lab tests need `belay lab up` (%v)\n", err)
		os.Exit(1)
	}
	if len(inv.Apps) == 0 {
		fmt.Fprintln(os.Stderr, "lab inventory has no app")
		os.Exit(1)
	}
	labInv, app = inv, inv.Apps[0]
	// Every belay this test runs acts on the lab, named explicitly: belay
	// refuses to guess a target (the children inherit the environment).
	os.Setenv("BELAY_INVENTORY", "lab")
	dir, err := os.MkdirTemp("", "belay-deploy-lab")
	if err != nil {
		panic(err)
	}
	if belayBin, err = labtest.Build(dir, "belay", labtest.BelayPackage, ""); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// artifact builds the lab app; ldflags select its behaviour. Every call gives a
// distinct file (its release id is embedded) so each release has its own sha256.
func artifact(t *testing.T, id string, ldflags ...string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "labapp-"+id)
	if len(ldflags) == 0 {
		plainIDs.Store(id, true)
	}
	args := []string{"build", "-o", out}
	flags := append([]string{"-X main.buildID=" + id}, ldflags...)
	args = append(args, "-ldflags", strings.Join(flags, " "), "github.com/belay-sh/belay/deploy/testdata/labapp")
	cmd := exec.Command("go", args...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build lab app: %v\n%s", err, b)
	}
	return out
}

// plainIDs holds the release ids built with no behaviour switch (baseline may reuse them).
var plainIDs sync.Map

// convergedOnPlain reports the release every host runs alone, healthy, with
// nothing unfinished, when that release is a plain one — assertConverged's
// condition, without failing the test.
func convergedOnPlain(st []deploy.HostState) (string, bool) {
	if len(st) == 0 {
		return "", false
	}
	id := st[0].Current
	if _, plain := plainIDs.Load(id); !plain {
		return "", false
	}
	for _, s := range st {
		if s.Current != id || s.Journal.Unfinished() {
			return "", false
		}
		if !s.Standby && (s.Stable != "active" || s.Health != "200" || s.CanaryUnit == "active" || s.CanaryShare != "0%") {
			return "", false
		}
	}
	return id, true
}

func newID(name string) string { return fmt.Sprintf("%s-%s-%d", runID, name, seq.Add(1)) }

type result struct {
	stdout, stderr string
	err            error
}

func belay(t *testing.T, args ...string) result {
	t.Helper()
	r := labtest.Belay(t, belayBin, 5*time.Minute, args...)
	return result{r.Stdout, r.Stderr, r.Err}
}

// deployDirect is the fast path to a known state: straight to 100 %, no analysis.
func deployDirect(t *testing.T, id, art string, extra ...string) result {
	t.Helper()
	return belay(t, append([]string{"deploy", "--app", app.Name, "--artifact", art, "--release", id, "--steps", "none", "--pause", "0", "--health-timeout", "10s"}, extra...)...)
}

func status(t *testing.T) []deploy.HostState {
	t.Helper()
	r := belay(t, "status", "--app", app.Name, "--json")
	if r.err != nil {
		t.Fatalf("status: %v", r.err)
	}
	var st []deploy.HostState
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func auditLog(t *testing.T) []journal.Entry {
	t.Helper()
	r := belay(t, "audit", "--app", app.Name, "--json", "-n", "1000")
	if r.err != nil {
		t.Fatalf("audit: %v", r.err)
	}
	var es []journal.Entry
	if err := json.Unmarshal([]byte(r.stdout), &es); err != nil {
		t.Fatal(err)
	}
	return es
}

// assertConverged checks every host runs want as stable, with no canary and all traffic on stable.
func assertConverged(t *testing.T, want string) {
	t.Helper()
	for _, s := range status(t) {
		if s.Standby {
			// The standby site holds the same release, not started until a site switch.
			if s.Current != want || s.Journal.Unfinished() {
				t.Errorf("standby %s: current=%s journal=%+v; want %s", s.Host, s.Current, s.Journal, want)
			}
			continue
		}
		if s.Current != want || s.Stable != "active" || s.Health != "200" || s.CanaryUnit == "active" || s.CanaryShare != "0%" || s.Journal.Unfinished() {
			t.Errorf("%s: current=%s stable=%s health=%s canaryUnit=%s share=%s journal=%+v; want %s live alone",
				s.Host, s.Current, s.Stable, s.Health, s.CanaryUnit, s.CanaryShare, s.Journal, want)
		}
	}
	// And what clients see through the VIP.
	body := get(t, "/")
	if !strings.Contains(body, "release="+want+" slot=stable") {
		t.Errorf("through the VIP: %q, want release %s from the stable slot", body, want)
	}
}

func get(t *testing.T, path string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+app.VIP+path, nil)
	req.Host = app.Domains[0]
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Errorf("GET %s via VIP: %v", path, err)
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// baseline puts the app on a fresh known-good release.
func baseline(t *testing.T) string {
	t.Helper()
	// A deploy costs ~20 s of lab time: when the app already runs, alone and
	// healthy on every host, a release built with no behaviour switch (as
	// the last test left it), that is the baseline. Anything else — a faulty
	// release, a canary still up, an unfinished journal — gets a fresh deploy.
	if id, ok := convergedOnPlain(status(t)); ok {
		t.Logf("baseline: reusing %s (plain, converged)", id)
		return id
	}
	id := newID("base")
	if r := deployDirect(t, id, artifact(t, id)); r.err != nil {
		t.Fatalf("baseline deploy: %v", r.err)
	}
	assertConverged(t, id)
	return id
}

func TestLabStraightToFull(t *testing.T) {
	baseline(t)
	id := newID("full")
	r := deployDirect(t, id, artifact(t, id))
	if r.err != nil {
		t.Fatal(r.err)
	}
	if !strings.Contains(r.stderr, "] upload "+id) || !strings.Contains(r.stderr, " … ok (") {
		t.Errorf("no per-host progress lines in:\n%s", r.stderr)
	}
	assertConverged(t, id)
}

// TestLabCanaryStagesToFull walks whitelist -> 50 % -> 100 % with analysis,
// under real traffic through the VIP.
func TestLabCanaryStagesToFull(t *testing.T) {
	prev := baseline(t)
	stop := traffic(t)
	defer stop()
	id := newID("canary")
	r := belay(t, "deploy", "--app", app.Name, "--artifact", artifact(t, id), "--release", id,
		"--whitelist-shops", "alpha.lab.belay.test", "--steps", "50", "--pause", "4s", "--max-wait", "20s", "--min-requests", "20")
	if r.err != nil {
		t.Fatalf("deploy: %v", r.err)
	}
	for _, want := range []string{"route whitelist … ok", "route 50% … ok", "analyze whitelist", "pass"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("progress lacks %q", want)
		}
	}
	assertConverged(t, id)
	rel := belay(t, "releases", "--app", app.Name)
	if !strings.Contains(rel.stdout, prev+"  (previous, known-good)") {
		t.Errorf("releases should mark %s previous and known-good:\n%s", prev, rel.stdout)
	}
}

// traffic sends requests through the VIP (some naming the whitelisted shop)
// until stopped, so the analysis has canary and stable samples.
func traffic(t *testing.T) func() {
	var wg sync.WaitGroup
	done := make(chan struct{})
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c := &http.Client{Timeout: 3 * time.Second}
			for n := 0; ; n++ {
				select {
				case <-done:
					return
				default:
				}
				path := "/"
				if n%2 == 0 {
					path = "/?shop=alpha.lab.belay.test"
				}
				req, _ := http.NewRequest("GET", "http://"+app.VIP+path, nil)
				req.Host = app.Domains[0]
				if resp, err := c.Do(req); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				time.Sleep(20 * time.Millisecond)
			}
		}(i)
	}
	var once sync.Once
	return func() { once.Do(func() { close(done); wg.Wait() }) }
}

func TestLabFailureRollsBackEveryHost(t *testing.T) {
	tests := []struct {
		name   string
		health string
		// after is a progress line the failure comes after.
		after string
	}{
		{"canary unhealthy, before current switched", "fail", "health canary"},
		// Stable unhealthy after current switched: the swap back is
		// TestLabRealAppsNoDrainLosesNothing's "swap-back rollback", under load.
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			prev := baseline(t)
			before := len(auditLog(t))
			id := newID("bad")
			r := deployDirect(t, id, artifact(t, id, "-X main.health="+tc.health), "--health-timeout", "3s")
			if r.err == nil {
				t.Fatal("a release failing its health check deployed")
			}
			if !strings.Contains(r.stderr, tc.after) || !strings.Contains(r.stderr, "rolling back every host") {
				t.Errorf("expected the failure after %q and a rollback of every host:\n%s", tc.after, r.stderr)
			}
			assertConverged(t, prev)
			es := auditLog(t)
			if len(es) <= before || es[len(es)-1].Result != "rolled-back" || es[len(es)-1].Release != id {
				t.Errorf("audit should end with %s rolled-back, got %+v", id, es[len(es)-1])
			}
		})
	}
}

// A healthy release answering 500 to real requests, rejected by the whitelist
// analysis with every host rolled back: TestLabRealAppsNoDrainLosesNothing's
// "abort at whitelist", under load.

// `belay rollback` after a deploy: TestLabRealAppsNoDrainLosesNothing's
// "belay rollback", under load.

// A deploy SIGKILLed before or after it switched `current` is recovered by
// the next deploy (rolled back, rolled forward): TestLabRealAppsNoDrainLosesNothing's
// "recovery after SIGKILL" cases, under load through the VIP.

func TestLabConcurrentDeploys(t *testing.T) {
	baseline(t)
	slow := newID("slow")
	cmd := exec.Command(belayBin, "deploy", "--app", app.Name, "--artifact", artifact(t, slow, "-X main.startDelay=6s"), "--release", slow, "--steps", "none", "--pause", "0")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		if strings.Contains(sc.Text(), "] upload ") {
			break // the first deploy holds the lease
		}
	}
	go io.Copy(io.Discard, stderr)
	other := newID("other")
	art := artifact(t, other)
	r := deployDirect(t, other, art)
	if r.err == nil || !strings.Contains(r.stderr, "is locked by") || !strings.Contains(r.stderr, "until") {
		t.Fatalf("second deploy should fail naming the lease owner and expiry: %v\n%s", r.err, r.stderr)
	}
	r = deployDirect(t, other, art, "--wait")
	if r.err != nil {
		t.Fatalf("--wait: %v", r.err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("first deploy: %v", err)
	}
	assertConverged(t, other)
}

func TestLabHostKeyMismatchRefusedBeforeAnyCommand(t *testing.T) {
	cur := baseline(t)
	before := len(auditLog(t))
	bad := *labInv
	bad.Hosts = append([]inventory.Host(nil), labInv.Hosts...)
	signer, _ := sshdtest.NewKey(t)
	for i := range bad.Hosts {
		if bad.Hosts[i].Name == app.Hosts[len(app.Hosts)-1] {
			bad.Hosts[i].HostKey = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey())))
		}
	}
	b, _ := bad.Marshal()
	dir := t.TempDir()
	invPath := filepath.Join(dir, "inventory.json")
	os.WriteFile(invPath, b, 0o600)
	id := newID("mitm")
	key := filepath.Join(filepath.Dir(cli.DefaultInventory), "id_ed25519")
	r := belay(t, "deploy", "--inventory", invPath, "--ssh-key", key, "--app", app.Name, "--artifact", artifact(t, id), "--release", id, "--steps", "none", "--pause", "0")
	if r.err == nil || !strings.Contains(r.stderr, "host key refused") || !strings.Contains(r.stderr, "CHANGED") || !strings.Contains(r.stderr, "nothing was run anywhere") {
		t.Fatalf("want a refused host key before any command: %v\n%s", r.err, r.stderr)
	}
	if n := len(auditLog(t)); n != before {
		t.Errorf("audit log grew from %d to %d: something ran", before, n)
	}
	for _, s := range status(t) {
		for _, rel := range s.Releases {
			if rel == id {
				t.Errorf("%s: release %s arrived despite the refused key", s.Host, id)
			}
		}
		if s.Lease != nil {
			t.Errorf("%s: lease left behind: %s", s.Host, s.Lease)
		}
	}
	assertConverged(t, cur)
}

func TestLabTarSlipRefusedNothingChanged(t *testing.T) {
	cur := baseline(t)
	beforeStatus := status(t)
	before := len(auditLog(t))
	p := filepath.Join(t.TempDir(), "slip.tar.gz")
	f, _ := os.Create(p)
	zw := gzip.NewWriter(f)
	tw := tar.NewWriter(zw)
	for _, h := range []*tar.Header{
		{Name: "start", Mode: 0o755, Size: 10, Typeflag: tar.TypeReg},
		{Name: "../../../../etc/cron.d/evil", Mode: 0o644, Size: 10, Typeflag: tar.TypeReg},
	} {
		tw.WriteHeader(h)
		tw.Write([]byte("#!/bin/sh\n"))
	}
	tw.Close()
	zw.Close()
	f.Close()
	id := newID("slip")
	r := belay(t, "deploy", "--app", app.Name, "--artifact", p, "--release", id)
	if r.err == nil || !strings.Contains(r.stderr, "refused") || !strings.Contains(r.stderr, "nothing was sent") {
		t.Fatalf("want the archive refused locally: %v\n%s", r.err, r.stderr)
	}
	if n := len(auditLog(t)); n != before {
		t.Errorf("audit log grew: something ran")
	}
	after := status(t)
	for i := range after {
		if strings.Join(after[i].Releases, ",") != strings.Join(beforeStatus[i].Releases, ",") || after[i].Current != beforeStatus[i].Current {
			t.Errorf("%s changed: %+v -> %+v", after[i].Host, beforeStatus[i], after[i])
		}
	}
	assertConverged(t, cur)
}

// TestLabPauseForApprovalThenResume is the CI flow: stop after the whitelist
// stage (the approval gate), then a second deploy of the same release continues.
func TestLabPauseForApprovalThenResume(t *testing.T) {
	baseline(t)
	stop := traffic(t)
	defer stop()
	id := newID("gated")
	art := artifact(t, id)
	r := belay(t, "deploy", "--app", app.Name, "--artifact", art, "--release", id,
		"--whitelist-shops", "alpha.lab.belay.test", "--stop-after", "whitelist", "--pause", "4s", "--max-wait", "20s", "--min-requests", "20")
	if r.err != nil || !strings.Contains(r.stdout, "paused after the whitelist stage") {
		t.Fatalf("gated deploy: %v\n%s", r.err, r.stdout)
	}
	for _, s := range status(t) {
		if s.Standby {
			continue
		}
		if s.CanaryShare != "whitelist" || s.CanaryUnit != "active" || s.Journal == nil || s.Journal.Status != journal.Paused {
			t.Errorf("%s: share=%s canaryUnit=%s journal=%+v; want the whitelist canary held", s.Host, s.CanaryShare, s.CanaryUnit, s.Journal)
		}
	}
	if body := get(t, "/?shop=alpha.lab.belay.test"); !strings.Contains(body, "release="+id+" slot=canary") {
		t.Errorf("whitelisted shop gets %q, want the canary", body)
	}
	r = belay(t, "deploy", "--app", app.Name, "--artifact", art, "--release", id, "--steps", "50", "--pause", "4s", "--max-wait", "20s", "--min-requests", "20")
	if r.err != nil || !strings.Contains(r.stderr, "resuming the rollout") || !strings.Contains(r.stderr, "start canary "+id+" … already done") {
		t.Fatalf("resume: %v\n%s", r.err, r.stderr)
	}
	assertConverged(t, id)
}

// A release whose start exits at once, then a good deploy right after it:
// TestLabRealAppsGoodDeployAfterCrashLoop, under load through the VIP.

// A canary that crashes mid-stage after passing its health check, rolled back
// during the stage: TestLabRealAppsCanaryCrashAfterHealth, under load.
