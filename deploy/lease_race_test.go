package deploy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/belay-sh/belay/deploy/lease"
	"github.com/belay-sh/belay/deploy/plan"
	"github.com/belay-sh/belay/deploy/run"
	"github.com/belay-sh/belay/deploy/sshx"
	"github.com/belay-sh/belay/deploy/sshx/sshdtest"
	"github.com/belay-sh/belay/hostrelease/journal"
)

// sshHosts are real sshd servers (inetd mode) for shop-1 and shop-2, each
// with its own root ($BELAY_ROOT) standing for the host's filesystem.
type sshHosts struct {
	servers map[string]*sshdtest.Server
	roots   map[string]string
}

func newSSHHosts(t *testing.T) *sshHosts {
	t.Helper()
	sh := &sshHosts{servers: map[string]*sshdtest.Server{}, roots: map[string]string{}}
	for _, n := range []string{"shop-1", "shop-2"} {
		root := filepath.Join(t.TempDir(), n)
		os.MkdirAll(root, 0o755)
		sh.roots[n] = root
		sh.servers[n] = sshdtest.New(t, "SetEnv BELAY_ROOT="+root)
	}
	return sh
}

// deployer is one deployer (its own connections, like another machine).
func (sh *sshHosts) deployer(t *testing.T, who string) *Deployer {
	t.Helper()
	pool := sshx.NewPool(func(ctx context.Context, host string) (*sshx.Client, error) {
		s := sh.servers[host]
		cfg := sshx.Config{Auth: []ssh.AuthMethod{ssh.PublicKeys(s.ClientSigner)}, KeepaliveInterval: -1}
		return sshx.NewClientConn(ctx, cfg, sshx.Target{Name: host, Addr: host + ":22", User: s.User, HostKeys: []ssh.PublicKey{s.HostKey}}, s.Conn())
	})
	t.Cleanup(pool.Close)
	d := testDeployer(t)
	d.Pool, d.Base, d.SkipStandby = pool, "$BELAY_ROOT", true
	d.Actor = Actor{Who: who, From: "same-hostname", PID: 1}
	d.Runner = &run.Runner{Pool: pool, Layout: d.Layout()}
	return d
}

// tracedPlan is n steps on hosts; each appends "<who> <step> start|end <unix ns>"
// to the host's trace, taking the time on the host.
func tracedPlan(who string, n int, hosts ...string) *plan.Plan {
	p := &plan.Plan{}
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("%02d-%s", i, who)
		line := func(what string) string {
			return "echo \"" + who + " " + id + " " + what + " $(date +%s%N)\" >> $BELAY_ROOT/trace"
		}
		p.Steps = append(p.Steps, plan.Step{ID: id, Title: id, Hosts: hosts, Timeout: plan.Duration(time.Minute),
			Command: line("start") + "; sleep 0.1; " + line("end")})
	}
	return p
}

type traceLine struct {
	who, step, what string
	at              int64
}

func readTrace(t *testing.T, root string) []traceLine {
	t.Helper()
	f, err := os.Open(filepath.Join(root, "trace"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []traceLine
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) != 4 {
			t.Fatalf("trace line %q", sc.Text())
		}
		at, err := strconv.ParseInt(fs[3], 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, traceLine{fs[0], fs[1], fs[2], at})
	}
	return out
}

// runHeld runs p under d's lease, as deploy and rollback do.
func runHeld(ctx context.Context, d *Deployer, p *plan.Plan) error {
	_, err := d.locked(ctx, "deploy "+p.Steps[0].ID, func(ctx context.Context) (*Outcome, error) {
		recs := d.records(p.Hosts, "id-"+d.Actor.Who, "deploy", "v", "", nil)
		return nil, d.Runner.Exec(ctx, p, recs)
	})
	return err
}

// TestTwoDeployersLeaseHandover: deployer A loses its lease mid-rollout; B
// takes it after expiry. Whatever A does, no host runs a step of A once B has
// started: A's last step ENDS before B's first step STARTS, by the hosts' own
// clocks. Two ways to lose it:
//   - asleep: A's renewals never run (a laptop lid closed); nothing on A's side
//     stops it, so only the hosts' fences do: A's next step is refused;
//   - cut from the lease host: A cannot renew and cancels its own run with the
//     margin left, before the lease expires, before B can take it.
func TestTwoDeployersLeaseHandover(t *testing.T) {
	for _, tc := range []struct {
		name    string
		hostsA  []string
		hook    func(h *lease.Holder, cut *bool, mu *sync.Mutex)
		wantErr func(err error) bool
	}{
		{"asleep", []string{"shop-1", "shop-2"}, func(h *lease.Holder, _ *bool, _ *sync.Mutex) {
			h.TTL = 4 * time.Second
			h.Sleep = func(ctx context.Context, _ time.Duration) error { <-ctx.Done(); return ctx.Err() } // renewals never come
		}, func(err error) bool { var fe *lease.FencedError; return errors.As(err, &fe) }},
		{"cut from the lease host", []string{"shop-2"}, func(h *lease.Holder, cut *bool, mu *sync.Mutex) {
			h.TTL = 5 * time.Second
			exec := h.Exec
			h.Exec = func(ctx context.Context, host, cmd string) ([]byte, int, error) {
				mu.Lock()
				c := *cut
				mu.Unlock()
				if c && host == "shop-1" {
					return nil, -1, fmt.Errorf("host %s: i/o timeout", host)
				}
				return exec(ctx, host, cmd)
			}
		}, func(err error) bool {
			return errors.Is(err, lease.ErrLost) && strings.Contains(err.Error(), "could not renew")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sh := newSSHHosts(t)
			a, b := sh.deployer(t, "alice"), sh.deployer(t, "bob")
			var mu sync.Mutex
			cut := false
			a.leaseHook = func(h *lease.Holder) { tc.hook(h, &cut, &mu) }
			b.Wait, b.WaitPoll, b.WaitTimeout = true, 100*time.Millisecond, time.Minute

			pa := tracedPlan("A", 60, tc.hostsA...) // ~6 s of steps: longer than A's lease
			pa.Hosts = tc.hostsA
			pb := tracedPlan("B", 3, "shop-1", "shop-2")
			pb.Hosts = []string{"shop-1", "shop-2"}

			var errA, errB error
			var aStopped time.Time
			var wg sync.WaitGroup
			wg.Add(1)
			doneA := make(chan struct{})
			go func() {
				defer wg.Done()
				defer close(doneA)
				errA = runHeld(context.Background(), a, pa)
				aStopped = time.Now()
			}()
			// B starts once A is under way (its lease taken, steps running).
			for i := 0; ; i++ {
				if b, _ := os.ReadFile(filepath.Join(sh.roots["shop-2"], "trace")); len(b) > 0 {
					break
				}
				select {
				case <-doneA:
					t.Fatalf("A ended before its first step: %v", errA)
				default:
				}
				if i > 3000 {
					out, _ := exec.Command("sh", "-c", "find "+sh.roots["shop-2"]+" "+sh.roots["shop-1"]+" -type f | xargs head -5").CombinedOutput()
					t.Fatalf("A never started:\n%s", out)
				}
				time.Sleep(20 * time.Millisecond)
			}
			mu.Lock()
			cut = true
			mu.Unlock()
			errB = runHeld(context.Background(), b, pb)
			wg.Wait()

			if errB != nil {
				t.Fatalf("B: %v", errB)
			}
			if errA == nil || !tc.wantErr(errA) {
				t.Fatalf("A: %v; want it stopped by losing the lease", errA)
			}
			var lastA, firstB int64
			stepsA := 0
			for _, h := range []string{"shop-1", "shop-2"} {
				for _, l := range readTrace(t, sh.roots[h]) {
					switch {
					case l.who == "A" && l.at > lastA:
						lastA = l.at
					case l.who == "B" && l.what == "start" && (firstB == 0 || l.at < firstB):
						firstB = l.at
					}
					if l.who == "A" && l.what == "end" {
						stepsA++
					}
				}
			}
			if stepsA == 0 || stepsA >= 60*len(tc.hostsA) {
				t.Fatalf("A ran %d host steps; want it stopped mid-rollout", stepsA)
			}
			if firstB == 0 || lastA >= firstB {
				t.Fatalf("A's last step line at %d, B's first step start at %d: the runs overlapped", lastA, firstB)
			}
			t.Logf("A ran %d host steps; gap from A's last step end to B's first step start: %s (host clocks)",
				stepsA, time.Duration(firstB-lastA))
			if tc.name == "cut from the lease host" && aStopped.After(time.Unix(0, firstB)) {
				t.Errorf("A stopped at %s, after B started at %s: it should stop on its own before its lease expired", aStopped, time.Unix(0, firstB))
			}
			if j := readJournal(t, sh.roots["shop-2"]); j.By != "bob" {
				t.Errorf("shop-2 journal written last by %s, want bob", j.By)
			}
		})
	}
}

func readJournal(t *testing.T, root string) *journal.Record {
	t.Helper()
	b, _ := os.ReadFile(filepath.Join(root, "shop", ".belay", "journal.json"))
	r, err := journal.Parse(b)
	if err != nil || r == nil {
		t.Fatalf("journal: %v %v", r, err)
	}
	return r
}

// TestBreakLeaseAudited: breaking a live holder's lease needs a reason, is
// written to the audit log of every app host with the holder, and fences the
// holder out of every server.
func TestBreakLeaseAudited(t *testing.T) {
	sh := newSSHHosts(t)
	a, ops := sh.deployer(t, "alice"), sh.deployer(t, "oncall")
	app, _ := a.app()
	ha := a.holder(app, "deploy v9")
	if err := ha.Take(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := ops.BreakLease(context.Background(), ""); err == nil || !strings.Contains(err.Error(), "--reason") {
		t.Fatalf("break without a reason: %v", err)
	}
	held, err := ops.BreakLease(context.Background(), "runner 4711 was killed")
	if err != nil || held.Owner.Who != "alice" || held.Owner.Action != "deploy v9" {
		t.Fatalf("break: %+v %v", held, err)
	}
	for _, h := range []string{"shop-1", "shop-2"} {
		b, _ := os.ReadFile(filepath.Join(sh.roots[h], "shop", ".belay", "audit.log"))
		es, err := journal.ParseAudit(b)
		if err != nil || len(es) != 1 || es[0].Action != "lease-break" || es[0].Who != "oncall" ||
			!strings.Contains(es[0].Detail, "runner 4711 was killed") || !strings.Contains(es[0].Detail, "alice") {
			t.Errorf("%s audit: %+v %v", h, es, err)
		}
	}
	a.Runner.Fence = ha.Fence()
	err = a.Runner.Exec(context.Background(), tracedPlan("A", 1, "shop-2"), a.records([]string{"shop-2"}, "d", "deploy", "v9", "", nil))
	var fe *lease.FencedError
	if !errors.As(err, &fe) {
		t.Fatalf("the broken holder's step: %v, want refused by the fence", err)
	}
	if _, err := ops.BreakLease(context.Background(), "again"); err == nil || !strings.Contains(err.Error(), "free") {
		t.Fatalf("breaking a free lease: %v", err)
	}
}
