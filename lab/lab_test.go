//go:build lab

package lab_test

// These tests boot the default lab stack once (TestMain) and check it from the
// outside over real SSH with pinned host keys. They need root (run by .ci/run).
// BELAY_LAB_KEEP=1 keeps the lab up afterwards; a running lab is reused and kept.

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/lab"
)

var (
	paths = lab.DefaultPaths
	inv   *inventory.Inventory
	// belayBin is the binary the machines carry (built by TestMain).
	belayBin string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) (code int) {
	ctx := context.Background()
	keep := os.Getenv("BELAY_LAB_KEEP") == "1"
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "lab tests need root (.ci/run runs them as root)")
		return 1
	}
	// A lab that was already up (someone's, or another package's) is reused and
	// left up; the teardown check runs on labs these tests brought up themselves.
	if _, err := os.Stat(paths.InventoryPath()); err == nil {
		fmt.Fprintln(os.Stderr, "a lab is already up: reusing it and leaving it up")
		keep = true
	}
	// Other lab users (drills, other packages' lab tests) wait while this run
	// injects and heals faults, instead of healing them under it.
	release, err := lab.Reserve(paths, "go test ./lab")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer release()
	dir, err := os.MkdirTemp("", "belay-lab-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	// The machines carry the real belay binary, as the cloud image does.
	belayBin = filepath.Join(dir, "belay")
	bin := belayBin
	build := exec.Command("go", "build", "-o", bin, "github.com/belay-sh/belay/cmd/belay")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build belay:", err)
		return 1
	}
	code = 1
	defer func() {
		if keep {
			return
		}
		if _, err := lab.Down(ctx, paths, nil, os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, "lab down:", err)
			code = 1
		}
		// `lab down` must leave nothing behind: no interface, namespace, process, mount or cgroup.
		if left := lab.Leftovers(paths); len(left) > 0 {
			fmt.Fprintln(os.Stderr, "FAIL: lab down left:", strings.Join(left, "; "))
			code = 1
		}
	}()
	sum, upErr := lab.Up(ctx, lab.UpOptions{Paths: paths, BelayBinary: bin, Progress: os.Stderr, CloudInitTimeout: 6 * time.Minute})
	if sum == nil {
		fmt.Fprintln(os.Stderr, "lab up:", upErr)
		return 1
	}
	fmt.Fprintf(os.Stderr, "lab up: %d machines in %.1fs\n", len(sum.Machines), sum.Seconds)
	if upErr != nil {
		// Machines whose cloud-init failed are reported; the tests still run so
		// every other part of the lab is checked too. The run fails either way.
		fmt.Fprintln(os.Stderr, "FAIL: lab up:", upErr)
	}
	if inv, err = inventory.Load(paths.InventoryPath()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	code = m.Run()
	if upErr != nil {
		code = 1
	}
	return code
}

// sshTo connects to a lab host as the deploy user, accepting only its pinned key.
func sshTo(t *testing.T, name string) *ssh.Client {
	t.Helper()
	h := inv.Host(name)
	if h == nil {
		t.Fatalf("no host %s in the inventory", name)
	}
	var c *ssh.Client
	var err error
	// sshd starts with the machine; a just-healed machine may need a moment.
	for i := 0; i < 30; i++ {
		if c, err = lab.Dial(context.Background(), paths, *h); err == nil {
			t.Cleanup(func() { c.Close() })
			return c
		}
		time.Sleep(time.Second)
	}
	t.Fatalf("ssh %s: %v", name, err)
	return nil
}

func sshRun(t *testing.T, name, command string) string {
	t.Helper()
	out, err := lab.Run(sshTo(t, name), command)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return strings.TrimSpace(string(out))
}

// eventually polls f until it returns nil or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for {
		if err = f(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, timeout, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func tcpOpen(addr string, port int) error {
	c, err := net.DialTimeout("tcp", net.JoinHostPort(addr, strconv.Itoa(port)), 2*time.Second)
	if err != nil {
		return err
	}
	return c.Close()
}

func addr(t *testing.T, name string) string {
	t.Helper()
	h := inv.Host(name)
	if h == nil {
		t.Fatalf("no host %s", name)
	}
	return h.PrivateAddress
}

func TestUpAgainIsANoOp(t *testing.T) {
	sum, err := lab.Up(context.Background(), lab.UpOptions{Paths: paths, BelayBinary: belayBin})
	if err != nil {
		t.Fatal(err)
	}
	if !sum.AlreadyUp {
		t.Errorf("second lab up changed something: %+v", sum.Machines)
	}
	st, err := lab.GetStatus(context.Background(), paths, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Machines) != len(inv.Hosts) || st.Network != "up" {
		t.Fatalf("status: network %s, %d machines, inventory has %d", st.Network, len(st.Machines), len(inv.Hosts))
	}
	for _, m := range st.Machines {
		if m.State != "running" || m.CloudInit != "done" {
			t.Errorf("%s: state %s, cloud-init %s", m.Name, m.State, m.CloudInit)
		}
	}
}

func TestEveryMachineRunsSystemd(t *testing.T) {
	for _, h := range inv.Hosts {
		t.Run(h.Name, func(t *testing.T) {
			// "starting" means start jobs are still queued (a role may wait for a
			// peer); give them time, then show which jobs never finished.
			var state string
			deadline := time.Now().Add(5 * time.Minute)
			for {
				state = sshRun(t, h.Name, "systemctl is-system-running || true")
				if state != "starting" && state != "initializing" || time.Now().After(deadline) {
					break
				}
				time.Sleep(2 * time.Second)
			}
			switch state {
			case "running":
			case "degraded":
				t.Logf("%s is degraded; failed units:\n%s", h.Name, sshRun(t, h.Name, "systemctl --failed --no-legend --plain"))
			default:
				t.Errorf("systemctl is-system-running = %q, expected running or degraded; jobs:\n%s", state, sshRun(t, h.Name, "systemctl list-jobs --no-legend || true"))
			}
			if got := sshRun(t, h.Name, "hostname"); got != h.Name {
				t.Errorf("hostname = %q, expected %q", got, h.Name)
			}
		})
	}
}

// As root: the roles' last boot step makes cloud-init's state root-only (it
// held the user data's secrets), so the deploy user cannot read it.
func TestCloudInitFinishedWithoutErrors(t *testing.T) {
	root := func(t *testing.T, host string, argv ...string) string {
		t.Helper()
		out, err := lab.Console(context.Background(), paths, nil, host, argv...)
		if err != nil {
			t.Fatalf("%s: %v: %v\n%s", host, argv, err, out)
		}
		return string(out)
	}
	for _, h := range inv.Hosts {
		t.Run(h.Name, func(t *testing.T) {
			out := root(t, h.Name, "sh", "-c", "cloud-init status --long || true")
			if !strings.Contains(out, "status: done") {
				t.Errorf("cloud-init status:\n%s", out)
			}
			res := root(t, h.Name, "cat", "/run/cloud-init/result.json")
			if !strings.Contains(strings.Join(strings.Fields(res), ""), `"errors":[]`) {
				t.Errorf("cloud-init result has errors:\n%s", res)
			}
		})
	}
}

func TestHostKeysArePinnedStrictly(t *testing.T) {
	// Dial shop-1's address while pinning shop-2's key: the handshake must fail.
	h := *inv.Host(inv.Apps[0].Hosts[0])
	other := inv.Host(inv.Apps[0].Hosts[1])
	h.HostKey = other.HostKey
	c, err := lab.Dial(context.Background(), paths, h)
	if err == nil {
		c.Close()
		t.Fatal("connected although the pinned key is another host's")
	}
	if !strings.Contains(err.Error(), "host key mismatch") {
		t.Fatalf("error = %v, expected a host key mismatch", err)
	}
}

// deployStandIn puts a minimal release on an app server by hand (the deployer's
// job; here only so the app's health check and keepalived have an app to track).
func deployStandIn(t *testing.T, host, app string) {
	t.Helper()
	script := `#!/bin/sh
exec python3 -c '
import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"lab " + os.environ.get("BELAY_RELEASE", "").encode())
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("", int(os.environ["PORT"])), H).serve_forever()'
`
	cmd := fmt.Sprintf(`set -e; d=/srv/%[1]s/releases/labtest; mkdir -p $d; cat >$d/start <<'EOF'
%[2]sEOF
chmod 755 $d/start; ln -sfn $d /srv/%[1]s/current; sudo -n systemctl restart belay-app@%[1]s.service`, app, script)
	sshRun(t, host, cmd)
}

func vipHolders(t *testing.T, app inventory.App) []string {
	t.Helper()
	var holders []string
	for _, h := range app.Hosts {
		out := sshRun(t, h, "ip -4 -o addr show")
		if strings.Contains(out, " "+app.VIP+"/") {
			holders = append(holders, h)
		}
	}
	return holders
}

func TestAppServing(t *testing.T) {
	app := inv.Apps[0]
	for _, h := range app.Hosts {
		deployStandIn(t, h, app.Name)
	}
	t.Run("nginx answers on each app machine", func(t *testing.T) {
		for _, h := range app.Hosts {
			url := "http://" + addr(t, h) + "/"
			eventually(t, 30*time.Second, "nginx on "+h, func() error {
				req, _ := http.NewRequest("GET", url, nil)
				req.Host = app.Domains[0]
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return err
				}
				resp.Body.Close()
				if !strings.HasPrefix(resp.Header.Get("Server"), "nginx") || resp.StatusCode != 200 {
					return fmt.Errorf("GET %s: %s, Server %q", url, resp.Status, resp.Header.Get("Server"))
				}
				return nil
			})
		}
	})
	t.Run("keepalived holds the VIP on exactly one machine", func(t *testing.T) {
		eventually(t, 30*time.Second, "one VIP holder", func() error {
			if got := vipHolders(t, app); len(got) != 1 {
				return fmt.Errorf("%s held by %v", app.VIP, got)
			}
			return nil
		})
	})
}

// psql runs SQL as postgres on a DB machine through the lab console: the deploy
// user has no database superuser rights by design, so this part is not over SSH.
// psql runs sql on name's local PostgreSQL, bounded: a write on a primary
// whose synchronous standby is gone waits for ever otherwise.
func psql(name, sql string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := lab.Console(ctx, paths, nil, name, "runuser", "-u", "postgres", "--", "psql", "-h", "/var/run/postgresql", "-p", "5432", "-d", "postgres", "-AtXc", sql)
	return strings.TrimSpace(string(out)), err
}

func TestPostgresReplication(t *testing.T) {
	var primary, replica string
	eventually(t, 4*time.Minute, "a primary and a replica", func() error {
		primary, replica = "", ""
		for _, n := range inv.Database.Nodes {
			rec, err := psql(n, "select pg_is_in_recovery()")
			if err != nil {
				return fmt.Errorf("%s: %w", n, err)
			}
			switch rec {
			case "f":
				primary = n
			case "t":
				replica = n
			}
		}
		if primary == "" || replica == "" {
			return fmt.Errorf("primary %q replica %q", primary, replica)
		}
		return nil
	})
	eventually(t, 2*time.Minute, "WAL streaming to "+replica, func() error {
		out, err := psql(replica, "select status || ' ' || sender_host from pg_stat_wal_receiver")
		if err != nil {
			return err
		}
		if out != "streaming "+addr(t, primary) {
			return fmt.Errorf("pg_stat_wal_receiver on %s = %q, expected streaming from %s", replica, out, addr(t, primary))
		}
		return nil
	})
}

func TestDatabasePortOnlyForAllowedSources(t *testing.T) {
	db := addr(t, inv.Database.Nodes[0])
	probe := fmt.Sprintf("timeout 3 bash -c '</dev/tcp/%s/5432' && echo open || echo closed", db)
	// Positive control: an app server (an allowed source) reaches it, so "closed"
	// below means filtered, not merely down.
	eventually(t, 4*time.Minute, "5432 from "+inv.Apps[0].Hosts[0], func() error {
		if got := sshRun(t, inv.Apps[0].Hosts[0], probe); got != "open" {
			return fmt.Errorf("5432 on %s from %s: %s", db, inv.Apps[0].Hosts[0], got)
		}
		return nil
	})
	if got := sshRun(t, inv.Apps[0].Standby, probe); got != "closed" {
		t.Errorf("5432 on %s from the standby app %s: %s, expected closed", db, inv.Apps[0].Standby, got)
	}
	if err := tcpOpen(db, 5432); err == nil {
		t.Errorf("5432 on %s is reachable from the host's lab leg", db)
	}
}

func TestFaults(t *testing.T) {
	ctx := context.Background()
	inject := func(t *testing.T, f lab.Fault) {
		t.Helper()
		if err := lab.Inject(ctx, paths, nil, f); err != nil {
			t.Fatalf("inject %s: %v", f, err)
		}
		t.Cleanup(func() { _, _ = lab.Heal(ctx, paths, nil, nil) })
	}
	heal := func(t *testing.T) {
		t.Helper()
		healed, err := lab.Heal(ctx, paths, nil, nil)
		if err != nil || len(healed) != 1 {
			t.Fatalf("heal: %v (healed %v)", err, healed)
		}
	}
	app := inv.Apps[0]
	primaryApp, standbyApp, backup := app.Hosts[0], app.Standby, inv.Backup.Host

	t.Run("partition", func(t *testing.T) {
		probe := fmt.Sprintf("timeout 2 bash -c '</dev/tcp/%s/22' && echo open || echo closed", addr(t, backup))
		if got := sshRun(t, primaryApp, probe); got != "open" {
			t.Fatalf("before: %s -> %s:22 %s", primaryApp, backup, got)
		}
		inject(t, lab.Fault{Kind: lab.FaultPartition})
		if got := sshRun(t, primaryApp, probe); got != "closed" {
			t.Errorf("partitioned: %s -> %s:22 %s, expected closed", primaryApp, backup, got)
		}
		heal(t)
		if got := sshRun(t, primaryApp, probe); got != "open" {
			t.Errorf("healed: %s -> %s:22 %s", primaryApp, backup, got)
		}
	})

	t.Run("cut-link", func(t *testing.T) {
		target := app.Hosts[1]
		inject(t, lab.Fault{Kind: lab.FaultCutLink, Machine: target})
		if err := tcpOpen(addr(t, target), 22); err == nil {
			t.Errorf("link of %s cut but its sshd answers", target)
		}
		heal(t)
		eventually(t, 10*time.Second, "link back", func() error { return tcpOpen(addr(t, target), 22) })
	})

	t.Run("netem loss", func(t *testing.T) {
		target := addr(t, standbyApp)
		inject(t, lab.Fault{Kind: lab.FaultNetem, Machine: standbyApp, Netem: []string{"loss", "100%"}})
		if err := tcpOpen(target, 22); err == nil {
			t.Errorf("%s answers through 100%% loss", standbyApp)
		}
		heal(t)
		eventually(t, 10*time.Second, "no more loss", func() error { return tcpOpen(target, 22) })
	})

	t.Run("netem delay", func(t *testing.T) {
		target := addr(t, standbyApp)
		connect := func() time.Duration {
			t0 := time.Now()
			if err := tcpOpen(target, 22); err != nil {
				t.Fatalf("connect %s: %v", target, err)
			}
			return time.Since(t0)
		}
		err := lab.Inject(ctx, paths, nil, lab.Fault{Kind: lab.FaultNetem, Machine: standbyApp, Netem: []string{"delay", "800ms"}})
		if err != nil && strings.Contains(err.Error(), "no netem qdisc") {
			t.Skipf("kernel limitation: %v", err)
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _, _ = lab.Heal(ctx, paths, nil, nil) })
		// A TCP connect needs the SYN delivered through the delayed link: never faster than the delay.
		if d := connect(); d < 800*time.Millisecond {
			t.Errorf("connect through netem delay 800ms took %s", d)
		}
		heal(t)
		if d := connect(); d >= 800*time.Millisecond {
			t.Errorf("connect after heal took %s, the delay is still there", d)
		}
	})

	t.Run("stop-service", func(t *testing.T) {
		target := addr(t, primaryApp)
		inject(t, lab.Fault{Kind: lab.FaultStopService, Machine: primaryApp, Service: "nginx"})
		if err := tcpOpen(target, 80); err == nil {
			t.Errorf("nginx stopped on %s but port 80 answers", primaryApp)
		}
		heal(t)
		eventually(t, 10*time.Second, "nginx back on "+primaryApp, func() error { return tcpOpen(target, 80) })
	})

	t.Run("fill-disk", func(t *testing.T) {
		avail := func() int64 {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimPrefix(sshRun(t, backup, "df --output=avail -B1 / | tail -1"), "Avail")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
		before := avail()
		inject(t, lab.Fault{Kind: lab.FaultFillDisk, Machine: backup})
		if got := avail(); got > 16<<20 {
			t.Errorf("disk of %s has %d bytes free after fill-disk (was %d)", backup, got, before)
		}
		if _, err := lab.Run(sshTo(t, backup), "dd if=/dev/zero of=$HOME/fill-probe bs=1M count=32 2>&1; rc=$?; rm -f $HOME/fill-probe; exit $rc"); err == nil {
			t.Errorf("writing 32 MB on a full %s succeeded", backup)
		}
		heal(t)
		if got := avail(); got < before/2 {
			t.Errorf("after heal %s has %d bytes free (was %d)", backup, got, before)
		}
	})

	t.Run("kill", func(t *testing.T) {
		holders := vipHolders(t, app)
		if len(holders) != 1 {
			t.Fatalf("VIP %s held by %v before the kill", app.VIP, holders)
		}
		victim := holders[0]
		var survivor string
		for _, h := range app.Hosts {
			if h != victim {
				survivor = h
			}
		}
		inject(t, lab.Fault{Kind: lab.FaultKill, Machine: victim})
		if err := tcpOpen(addr(t, victim), 22); err == nil {
			t.Errorf("%s was killed but its sshd answers", victim)
		}
		// Observed from the other side: the survivor's keepalived takes the VIP.
		eventually(t, 10*time.Second, "VIP moves to "+survivor, func() error {
			if got := vipHolders(t, inventory.App{VIP: app.VIP, Hosts: []string{survivor}}); len(got) != 1 {
				return fmt.Errorf("%s does not hold %s", survivor, app.VIP)
			}
			return nil
		})
		heal(t)
		if got := sshRun(t, victim, "systemctl is-system-running || true"); got != "running" && got != "degraded" {
			t.Errorf("%s after heal: %s", victim, got)
		}
		// nopreempt: the VIP stays where it moved. The holders are sampled one
		// host after the other over SSH, so a sample can straddle a VRRP
		// transition (a loaded box delays adverts and checks): settle on a
		// stable answer for up to 10 s before judging it.
		var got []string
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(500 * time.Millisecond) {
			got = vipHolders(t, app)
			if (len(got) == 1 && got[0] == survivor) || time.Now().After(deadline) {
				break
			}
		}
		if len(got) != 1 || got[0] != survivor {
			t.Errorf("VIP %s held by %v after the victim came back, expected %s only", app.VIP, got, survivor)
		}
	})
}
