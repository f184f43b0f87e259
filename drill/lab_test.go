//go:build lab

package drill_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/belay-sh/belay/drill"
	"github.com/belay-sh/belay/hostcmd"
	"github.com/belay-sh/belay/internal/cli"
	"github.com/belay-sh/belay/internal/opsenv"
	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/remote"
)

// labEnv opens the running lab. Without BELAY_LAB a missing lab skips the
// test; with BELAY_LAB=1 (.ci/run) it fails it.
func labEnv(t *testing.T) *drill.Env {
	t.Helper()
	inv, err := inventory.Load(cli.DefaultInventory)
	if err != nil {
		if os.Getenv("BELAY_LAB") == "" {
			t.Skipf("no lab (run `belay lab up`, or set BELAY_LAB=1 to make this a failure): %v", err)
		}
		t.Fatalf("BELAY_LAB is set but the lab inventory is unreadable: %v", err)
	}
	if !opsenv.IsLab(inv) {
		t.Fatalf("%s is not a lab inventory", cli.DefaultInventory)
	}
	tg, err := opsenv.Open(inv, opsenv.Flags{}, os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tg.Close)
	seed, err := tg.Seed()
	if err != nil {
		t.Fatal(err)
	}
	var progress bytes.Buffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("drill progress:\n%s", progress.String())
		}
		// Whatever happened, leave no fault behind for the next test.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if err := tg.Faults.Heal(ctx); err != nil {
			t.Errorf("heal: %v", err)
		}
	})
	return &drill.Env{Inv: inv, Hosts: tg.Hosts, Faults: tg.Faults, Lab: true, Progress: &progress, Seed: seed}
}

func runDrill(t *testing.T, env *drill.Env, k drill.Kind, variant string) *drill.Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	rep, err := drill.Execute(ctx, env, drill.Options{Kind: k, Variant: variant, Repeat: 1})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Summary.Failed != 0 {
		t.Fatalf("%s/%s failed: %s (notes: %v)", k, variant, rep.Runs[0].Error, rep.Runs[0].Notes)
	}
	return rep
}

// The VIP moves to the other app server when its holder dies, is cut off, or
// its nginx stops; exactly one holder remains after healing (the drill checks).
// The report carries the figures a client felt, and they are sane.
func TestLabVIPFailover(t *testing.T) {
	env := labEnv(t)
	for _, v := range drill.Variants[drill.AppNode] {
		t.Run(v, func(t *testing.T) {
			rep := runDrill(t, env, drill.AppNode, v)
			if !strings.Contains(strings.Join(rep.Runs[0].Notes, " "), "after heal:") {
				t.Errorf("no single holder recorded after healing: %v", rep.Runs[0].Notes)
			}
			checkVIPFigures(t, rep)
		})
	}
}

// checkVIPFigures checks an app-node report's client figures: present, in
// order, from enough probes, and the same in markdown and JSON.
func checkVIPFigures(t *testing.T, rep *drill.Report) {
	t.Helper()
	for i, r := range rep.Runs {
		f := r.VIP
		if f == nil {
			t.Fatalf("run %d: no VIP figures", i+1)
		}
		t.Logf("run %d: %s", i+1, f)
		if !f.Answered || !f.SustainedOK {
			t.Errorf("run %d: answered %v, sustained %v", i+1, f.Answered, f.SustainedOK)
		}
		// A killed, cut or stopped holder is always felt, and the VIP moves in seconds.
		if f.FirstAnswer <= 0 || f.FirstAnswer != r.Recovery || f.Sustained < f.FirstAnswer || f.Sustained > 10*time.Second {
			t.Errorf("run %d: first answer %s (recovery %s), sustained %s: want 0 < first answer = recovery <= sustained <= 10s", i+1, f.FirstAnswer, r.Recovery, f.Sustained)
		}
		// 2 s of baseline and >= 4 s after the first answer, a probe every 20 ms.
		if f.Before.Probes < 50 || f.After.Probes < 150 || f.Before.Answered*100 < f.Before.Probes*99 {
			t.Errorf("run %d: %+v before, %+v after: want >= 50 probes, 99 %% answered, before and >= 150 after", i+1, f.Before, f.After)
		}
		if f.Before.P50 <= 0 || f.Before.P50 > f.Before.P99 || f.After.P50 <= 0 || f.After.P50 > f.After.P99 || f.After.P99 > drill.ProbeTimeout {
			t.Errorf("run %d: latency before %+v, after %+v: want 0 < p50 <= p99 <= the probe timeout", i+1, f.Before, f.After)
		}
		if f.AddedP99 != f.After.P99-f.Before.P99 || f.SlowAfter > f.After.Answered {
			t.Errorf("run %d: added p99 %s, %d slow of %d answered", i+1, f.AddedP99, f.SlowAfter, f.After.Answered)
		}
	}
	v := rep.Summary.VIP
	if v == nil || v.FirstAnswer.Max != rep.Summary.RecoveryMax || v.Sustained.P50 < v.FirstAnswer.P50 {
		t.Errorf("summary VIP %+v (recovery max %s)", v, rep.Summary.RecoveryMax)
	}
	var md, js bytes.Buffer
	if err := rep.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"## VIP as clients felt it", "| sustainably back |", "| requests over 300ms after the failover |"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("markdown lacks %q", want)
		}
	}
	if !strings.Contains(js.String(), `"sustainedNs"`) {
		t.Error("JSON lacks the VIP figures")
	}
}

// The issue-8 targets over 10 kills of the VIP holder: first answer p50 <=
// 0.5 s and sustainably back p50 <= 1 s, as a browser feels it. Long (ten
// machine kills and boots): -short skips it.
func TestLabVIPFailoverTargets(t *testing.T) {
	if os.Getenv("BELAY_LAB_LONG") == "" {
		t.Skip("ten VIP failovers (10-20 min): set BELAY_LAB_LONG=1 (scripts/bench-vip.sh does)")
	}
	env := labEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	rep, err := drill.Execute(ctx, env, drill.Options{Kind: drill.AppNode, Variant: "kill", Repeat: 10})
	if err != nil {
		t.Fatal(err)
	}
	var md bytes.Buffer
	_ = rep.WriteMarkdown(&md)
	t.Logf("report:\n%s", md.String())
	if rep.Summary.Failed != 0 {
		t.Fatalf("%d of 10 runs failed", rep.Summary.Failed)
	}
	checkVIPFigures(t, rep)
	v := rep.Summary.VIP
	if v.FirstAnswer.P50 > drill.TargetFirstAnswerP50 || v.Sustained.P50 > drill.TargetSustainedP50 {
		t.Errorf("first answer p50 %s (target %s), sustainably back p50 %s (target %s)", v.FirstAnswer.P50, drill.TargetFirstAnswerP50, v.Sustained.P50, drill.TargetSustainedP50)
	}
}

// Killing the primary under synchronous replication loses no acknowledged
// write, and the old primary comes back as a replica (the drill checks both).
func TestLabDBPrimaryFailover(t *testing.T) {
	env := labEnv(t)
	rep := runDrill(t, env, drill.DBPrimary, "kill")
	r := rep.Runs[0]
	if r.Acked == 0 {
		t.Fatal("the write load acknowledged nothing")
	}
	if env.Inv.Database.Synchronous && r.Missing != 0 {
		t.Fatalf("%d acknowledged writes missing with synchronous replication", r.Missing)
	}
}

// The restore verification passes on a healthy repository and catches a
// corrupted backup; a new full backup heals it.
func TestLabRestoreVerification(t *testing.T) {
	env := labEnv(t)
	runDrill(t, env, drill.Restore, "verify")
	rep := runDrill(t, env, drill.Restore, "corrupt")
	notes := strings.Join(rep.Runs[0].Notes, "\n")
	if !strings.Contains(notes, "corruption caught") || !strings.Contains(notes, "healed:") {
		t.Fatalf("notes: %s", notes)
	}
}

// A second site drill, after TestLabDay0Protection's way back and this
// package's DB primary failover (an ordinary pg_auto_failover failover in
// the primary site, a new timeline the standby must follow from the archive):
// the standby site must protect the stack again, through the same `sudo -n`
// path as on a cloud. In one run under load (session 9) the standby had
// replayed nothing since the first way back and the drill lost every write;
// on failure the standby's replay state and log are printed.
func TestLabSiteSwitchAndBack(t *testing.T) {
	env := labEnv(t)
	inv := env.Inv
	tg, err := opsenv.Open(inv, opsenv.Flags{}, os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tg.Close)
	t.Cleanup(func() {
		if t.Failed() {
			standbyDiagnostics(t, env, inv.Database.Standby)
		}
	})
	tg.Hosts.Root = nil
	env.Switch = tg.SiteSwitch(opsenv.DNSFlags{}, filepath.Join(t.TempDir(), "failover.json"))
	rep := runDrill(t, env, drill.Site, "partition")
	r := rep.Runs[0]
	if r.Acked == 0 {
		t.Fatal("the write load acknowledged nothing")
	}
	notes := strings.Join(r.Notes, "\n")
	if !strings.Contains(notes, "cross-site RPO") || !strings.Contains(notes, "writes the standby site held are on the primary site again") {
		t.Fatalf("notes: %s", notes)
	}
	t.Logf("second switch, RPO %s; %s", r.RPO, notes)
}

// standbyDiagnostics prints the standby database's replay state and the end
// of its PostgreSQL log (as root, through the lab's console).
func standbyDiagnostics(t *testing.T, env *drill.Env, host string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := env.Hosts.RunRoot(ctx, host, "sh", "-c",
		"runuser -u postgres -- psql -AtXc 'select pg_is_in_recovery(), pg_is_wal_replay_paused(), pg_last_wal_replay_lsn(), pg_last_xact_replay_timestamp(), now()'; "+
			"f=$(ls -t /var/lib/postgresql/*/main/log/* | head -1); echo \"== $f\"; tail -n 80 \"$f\"")
	t.Logf("standby %s (err %v):\n%s", host, err, out)
}

// Every root command belay's operations run (hostcmd.ForHost) is allowed to
// the deploy user by the sudoers the roles rendered, on every lab host — and
// the escaping keeps them exact: a lookalike command is refused.
func TestLabSudoersAllowOpsCommands(t *testing.T) {
	env := labEnv(t)
	inv := env.Inv
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	checked := 0
	for _, h := range inv.Hosts {
		hc := hostcmd.Host{Roles: h.Roles, Stanza: inv.Backup.Stanza}
		for _, a := range inv.Apps {
			if slices.Contains(a.Hosts, h.Name) || a.Standby == h.Name {
				hc.Apps = append(hc.Apps, a.Name)
			}
			for _, c := range a.Cells {
				if slices.Contains(c.Hosts, h.Name) || c.Standby == h.Name {
					hc.Apps = append(hc.Apps, a.Name)
				}
			}
			if r := a.Router; r != nil && (slices.Contains(r.Hosts, h.Name) || r.Standby == h.Name) {
				hc.Routers = append(hc.Routers, a.Name)
			}
		}
		for _, argv := range hostcmd.ForHost(hc) {
			// sudo -l CMD exits 0 and prints the command's path when it is allowed.
			if out, err := env.Hosts.Run(ctx, h.Name, strings.Replace(remote.SudoCommand(argv), "sudo -n ", "sudo -n -l ", 1)); err != nil {
				t.Errorf("%s: the deploy user may not run %q as root: %v %s", h.Name, argv, err, out)
			}
			checked++
		}
	}
	if checked == 0 {
		t.Fatal("no commands checked")
	}
	db := inv.Database.Nodes[0]
	for _, argv := range [][]string{
		{"systemctl", "stop", "pgautofailover.service", "sshd.service"}, // the pattern's * is literal
		{"systemctl", "stop", "sshd.service"},
		{"runuser", "-u", "postgres", "--", "psql", "-c", "DROP DATABASE shop"},
	} {
		if out, err := env.Hosts.Run(ctx, db, strings.Replace(remote.SudoCommand(argv), "sudo -n ", "sudo -n -l ", 1)); err == nil {
			t.Errorf("%s: the deploy user may run %q as root: %s", db, argv, out)
		}
	}
	// And one really runs through sudo: the repository's newest archived WAL
	// (nothing on a lab no backup has reached yet).
	out, err := env.Hosts.Run(ctx, inv.Backup.Host, remote.SudoCommand(hostcmd.LastWAL()))
	if f := strings.Fields(string(out)); err != nil || len(f) != 0 && (len(f) != 2 || !strings.HasPrefix(f[1], "0")) {
		t.Errorf("sudo %s on %s: %q %v, want \"<mtime> <segment>\" or nothing", hostcmd.LastWALPath, inv.Backup.Host, out, err)
	}
	t.Logf("%d root commands allowed exactly on %d hosts", checked, len(inv.Hosts))
}

// The drills that run outside the lab, run here exactly as on a cloud stack:
// not a lab inventory for Supported, faults by stopping a service, and every
// root command (faults, heals, checks) through `sudo -n` over SSH.
func TestLabDrillsAsOnACloud(t *testing.T) {
	env := labEnv(t)
	tg, err := opsenv.Open(env.Inv, opsenv.Flags{}, os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tg.Close)
	tg.Hosts.Root = nil
	cloud := *env
	cloud.Lab, cloud.Hosts, cloud.Faults = false, tg.Hosts, &drill.ServiceFaults{Hosts: tg.Hosts}
	if _, err := drill.Execute(context.Background(), &cloud, drill.Options{Kind: drill.AppNode, Variant: "kill", Repeat: 1}); err == nil {
		t.Fatal("app-node/kill ran outside the lab")
	}
	rep := runDrill(t, &cloud, drill.AppNode, "stop-nginx")
	checkVIPFigures(t, rep)
	t.Logf("app-node/stop-nginx over sudo: recovery %s; %v", rep.Runs[0].Recovery, rep.Runs[0].Notes)
	rep = runDrill(t, &cloud, drill.DBPrimary, "stop-service")
	r := rep.Runs[0]
	if r.Acked == 0 {
		t.Fatal("the write load acknowledged nothing")
	}
	if env.Inv.Database.Synchronous && r.Missing != 0 {
		t.Fatalf("%d acknowledged writes missing with synchronous replication", r.Missing)
	}
	t.Logf("db-primary/stop-service over sudo: writable again after %s, %d/%d acknowledged writes missing; %v", r.Recovery, r.Missing, r.Acked, r.Notes)
}
