package opsenv

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/belay-sh/belay/deploy"
	"github.com/belay-sh/belay/deploy/lease"
	"github.com/belay-sh/belay/hostrelease"
	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/remote/remotetest"
)

// localRunner runs deploy-user commands with sh, one root per host; hosts in
// down fail like unreachable ones.
func localRunner(t *testing.T, down map[string]bool) (*remotetest.Runner, map[string]string) {
	t.Helper()
	roots := map[string]string{}
	for _, h := range []string{"shop-1", "shop-2", "shop-standby"} {
		roots[h] = filepath.Join(t.TempDir(), h)
		os.MkdirAll(roots[h], 0o755)
	}
	return &remotetest.Runner{Handle: func(c remotetest.Call) ([]byte, error) {
		if down[c.Host] {
			return nil, errors.New("host " + c.Host + ": dial: i/o timeout")
		}
		cmd := exec.Command("sh", "-c", c.Cmd)
		cmd.Env = append(os.Environ(), "BELAY_ROOT="+roots[c.Host])
		return cmd.Output()
	}}, roots
}

func TestDrillRefusedWhileDeployHoldsLease(t *testing.T) {
	inv, err := inventory.Load("../../deploy/plan/testdata/inventory.json")
	if err != nil {
		t.Fatal(err)
	}
	r, roots := localRunner(t, nil)
	deployer := &lease.Holder{Exec: RunnerExec(r), Layout: hostrelease.Layout{App: "shop", Base: "$BELAY_ROOT"}, LeaseHost: "shop-1",
		Servers: []string{"shop-1", "shop-2", "shop-standby"}, Owner: lease.Owner{Who: "alice@laptop", Action: "deploy v42"}, TTL: time.Minute}
	if err := deployer.Take(context.Background()); err != nil {
		t.Fatal(err)
	}
	var progress bytes.Buffer
	o := LeaseOptions{Apps: SiteApps(inv), Action: "drill app-node/kill-vm", Actor: deploy.Actor{Who: "ops@box", From: "box", PID: 7},
		Progress: &progress, Base: "$BELAY_ROOT"}
	_, _, err = HoldLeases(context.Background(), r, inv, o)
	var held *lease.HeldError
	if !errors.As(err, &held) || !strings.Contains(err.Error(), "alice@laptop") || !strings.Contains(err.Error(), "deploy v42") {
		t.Fatalf("drill during a deploy: %v, want refused naming the deploy's holder", err)
	}
	_, done := deployer.Hold(context.Background())
	done()

	ctx, release, err := HoldLeases(context.Background(), r, inv, o)
	if err != nil {
		t.Fatal(err)
	}
	if ctx.Err() != nil {
		t.Fatal("held context already done")
	}
	for h, root := range roots {
		b, _ := os.ReadFile(filepath.Join(root, "shop", ".belay", "fence"))
		if len(bytes.TrimSpace(b)) == 0 {
			t.Errorf("%s: no fence written for the drill", h)
		}
	}
	deployer.Owner.Token = ""
	if err := deployer.Take(context.Background()); err == nil || !strings.Contains(err.Error(), "drill app-node/kill-vm") {
		t.Fatalf("deploy during a drill: %v, want refused naming the drill", err)
	}
	release()
	if b, _ := os.ReadFile(filepath.Join(roots["shop-1"], "shop", ".belay", "lease")); len(b) != 0 {
		t.Fatalf("lease left after release: %s", b)
	}
}

func TestSiteSwitchWithoutReachableLeaseHost(t *testing.T) {
	inv, err := inventory.Load("../../deploy/plan/testdata/inventory.json")
	if err != nil {
		t.Fatal(err)
	}
	r, _ := localRunner(t, map[string]bool{"shop-1": true})
	var progress bytes.Buffer
	o := LeaseOptions{Apps: SiteApps(inv), Action: "failover site --to standby", Progress: &progress, Base: "$BELAY_ROOT"}
	if _, _, err := HoldLeases(context.Background(), r, inv, o); err == nil {
		t.Fatal("a drill went on without the lease")
	}
	o.SkipUnreachable = true
	_, release, err := HoldLeases(context.Background(), r, inv, o)
	if err != nil {
		t.Fatalf("switch away from a dead site: %v", err)
	}
	release()
	if !strings.Contains(progress.String(), "WARNING: no lease for app shop") {
		t.Errorf("progress does not say the lease was skipped:\n%s", progress.String())
	}
}
