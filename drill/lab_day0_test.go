//go:build lab

package drill_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/belay-sh/belay/drill"
	"github.com/belay-sh/belay/hostcmd"
	"github.com/belay-sh/belay/internal/cli"
	"github.com/belay-sh/belay/internal/cli/backup"
	"github.com/belay-sh/belay/internal/opsenv"
	"github.com/belay-sh/belay/inventory"
)

// Day-0 protection, measured on a fresh lab: run it right after `belay lab up`
// (the inventory file's mtime is taken as the end of `lab up`). The first full
// backup must exist within 2 minutes of it and the standby be usable within 5
// (`belay backup status`'s judgement), `belay backup now` must work through
// sudo over SSH, and then `belay drill site` runs with no manual step.
func TestLabDay0Protection(t *testing.T) {
	env := labEnv(t)
	inv := env.Inv
	fi, err := os.Stat(cli.DefaultInventory)
	if err != nil {
		t.Fatal(err)
	}
	labUp := fi.ModTime()
	// Only a test started within 5 minutes of `lab up` measures the first
	// minutes; later, "first seen" is now, not when the standby became usable.
	fresh := time.Since(labUp) <= 5*time.Minute
	if since := time.Since(labUp); !fresh {
		t.Logf("warning: the lab came up %s ago; the timings below are only checked, not measured (run this test right after `belay lab up`)", since.Round(time.Second))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	o := &backup.StatusOptions{Now: time.Now, MaxRPO: 5 * time.Minute, MaxVerifyAge: 26 * time.Hour, MaxFullAge: 8 * 24 * time.Hour, MaxStandbyLag: 5 * time.Minute}

	// 1. The first full backup: its stop time from the repository itself.
	var firstFull time.Time
	for deadline := labUp.Add(2 * time.Minute); ; {
		out, err := env.Hosts.RunRoot(ctx, inv.Backup.Host, hostcmd.PgBackRestInfo(inv.Backup.Stanza)...)
		if err != nil {
			t.Fatal(err)
		}
		if bi, err := drill.ParseBackupInfo(out, inv.Backup.Stanza); err == nil {
			for _, b := range bi.Backup {
				if b.Type == "full" {
					firstFull = time.Unix(b.Timestamp.Stop, 0)
					break
				}
			}
		}
		if !firstFull.IsZero() || time.Now().After(deadline.Add(30*time.Second)) {
			break
		}
		time.Sleep(2 * time.Second)
	}
	if firstFull.IsZero() {
		st, _ := backup.Collect(ctx, env.Hosts, inv, o)
		t.Fatalf("no full backup %s after lab up (status: %+v)", time.Since(labUp).Round(time.Second), st)
	}
	t.Logf("first full backup finished %s after lab up", firstFull.Sub(labUp).Round(time.Second))
	if d := firstFull.Sub(labUp); d > 2*time.Minute {
		t.Errorf("first full backup finished %s after lab up, want <= 2m", d.Round(time.Second))
	}

	// 2. The standby usable, as `belay backup status` judges it.
	var usableAt time.Time
	var st *backup.Status
	for deadline := labUp.Add(5 * time.Minute); ; {
		st, err = backup.Collect(ctx, env.Hosts, inv, o)
		if err != nil {
			t.Fatal(err)
		}
		if st.Standby != nil && st.Standby.Usable {
			usableAt = time.Now()
			break
		}
		if time.Now().After(deadline.Add(time.Minute)) {
			t.Fatalf("standby not usable %s after lab up: %+v", time.Since(labUp).Round(time.Second), st.Standby)
		}
		time.Sleep(5 * time.Second)
	}
	var lag time.Duration
	var behind int64
	if st.Standby.Lag != nil {
		lag = *st.Standby.Lag
	}
	if st.Standby.SegmentsBehind != nil {
		behind = *st.Standby.SegmentsBehind
	}
	t.Logf("standby usable %s after lab up (at most: first seen then); lag %s, %d segments behind", usableAt.Sub(labUp).Round(time.Second), lag, behind)
	if d := usableAt.Sub(labUp); d > 5*time.Minute && fresh {
		t.Errorf("standby usable %s after lab up, want <= 5m", d.Round(time.Second))
	}

	// 3. `belay backup now --diff` through the sudoers line over SSH.
	tg, err := opsenv.Open(inv, opsenv.Flags{}, os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tg.Close)
	tg.Hosts.Root = nil
	var out bytes.Buffer
	res, err := backup.TakeBackup(ctx, tg.Hosts, inv, "diff", &out, time.Now)
	if err != nil || !res.OK {
		t.Fatalf("backup now --diff: %+v %v\n%s", res, err, out.Bytes())
	}
	t.Logf("backup now --diff: %s (%s) in %.1f s", res.Label, res.Type, res.Seconds)

	// 4. The site drill, with no manual step but the user's own first deploy
	// (a stack with no release has nothing to switch to the standby site).
	deployFirstRelease(t, inv)
	env.Switch = tg.SiteSwitch(opsenv.DNSFlags{}, filepath.Join(t.TempDir(), "failover.json"))
	// Through `sudo -n` over SSH as the deploy user, exactly as on a cloud
	// stack: the rendered sudoers must allow every root step of both plans.
	rep := runDrill(t, env, drill.Site, "partition")
	r := rep.Runs[0]
	if r.Acked == 0 {
		t.Fatal("the write load acknowledged nothing")
	}
	notes := strings.Join(r.Notes, "\n")
	if !strings.Contains(notes, "cross-site RPO") || !strings.Contains(notes, "writes the standby site held are on the primary site again") {
		t.Fatalf("notes: %s", notes)
	}
	t.Logf("site drill right after lab up: switch %s, RPO %s; %s", r.Recovery, r.RPO, notes)
}

// deployFirstRelease ships the lab app to every app (standby servers included)
// with belay deploy itself, straight to 100 %, as a user's first deploy.
func deployFirstRelease(t *testing.T, inv *inventory.Inventory) {
	t.Helper()
	dir := t.TempDir()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	build := func(out, pkg string) {
		cmd := exec.Command("go", "build", "-o", out, pkg)
		cmd.Dir = root
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, b)
		}
	}
	app, bin := filepath.Join(dir, "app"), filepath.Join(dir, "belay")
	build(app, "./deploy/testdata/labapp")
	build(bin, "./cmd/belay")
	for _, a := range inv.Apps {
		out, err := exec.Command(bin, "deploy", "--app", a.Name, "--artifact", app, "--release", fmt.Sprintf("day0-%d", time.Now().Unix()),
			"--steps", "none", "--pause", "0").CombinedOutput()
		if err != nil {
			t.Fatalf("first deploy of %s: %v\n%s", a.Name, err, out)
		}
	}
}
