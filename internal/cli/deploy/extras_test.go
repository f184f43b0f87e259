package deploy

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/belay-sh/belay/internal/cli/env"
)

func TestExtrasBadInputChangesNothing(t *testing.T) {
	art := writeArtifact(t)
	for _, tc := range []struct {
		name string
		mod  func(o *DeployOptions, h *harness)
		want string
	}{
		{"env-only with an artifact", func(o *DeployOptions, _ *harness) { o.Extras.EnvOnly = true }, "--env-only: re-deploys the running release"},
		{"absolute release command", func(o *DeployOptions, _ *harness) { o.Extras.ReleaseCommand = "/usr/bin/psql" }, "--release-command"},
		{"escaping release command", func(o *DeployOptions, _ *harness) { o.Extras.ReleaseCommand = "../x" }, "no .."},
		{"short release timeout", func(o *DeployOptions, _ *harness) { o.Extras.ReleaseTimeout = time.Millisecond }, "--release-timeout"},
		{"http webhook", func(o *DeployOptions, _ *harness) {
			o.Extras.Webhooks = []string{"http://hooks.example.com/x?token=s3cret"}
		}, "loopback host only"},
		{"bad $BELAY_WEBHOOK", func(o *DeployOptions, h *harness) { h.env = map[string]string{"BELAY_WEBHOOK": "ftp://x/?k=s3cret"} }, `scheme "ftp"`},
		{"env-only without env", func(o *DeployOptions, _ *harness) {
			o.Artifact, o.Release, o.Extras.EnvOnly, o.Extras.Env.Dir = "", "", true, t.TempDir()
		}, "has no env set"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &harness{}
			o := deployOpts(h, art)
			tc.mod(o, h)
			o.deps = h.deps()
			err := runDeploy(context.Background(), o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want error containing %q, got %v", tc.want, err)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Fatalf("error leaks a webhook secret: %v", err)
			}
			if h.connected != 0 {
				t.Fatal("connected to hosts despite bad input")
			}
		})
	}
}

// TestDryRunCarriesEnvAndHook: the plan writes the env from stdin (its values
// never in the plan) and runs the release command before the canary.
func TestDryRunCarriesEnvAndHook(t *testing.T) {
	h := &harness{env: map[string]string{"BELAY_HOST_KEY_SEED": strings.Repeat("ab", 32)}}
	dir := t.TempDir()
	eo := &env.Options{IO: h.deps().IO, Inventory: h.deps().Inventory, Getenv: h.deps().Getenv, InventoryRef: testInventory,
		Source: env.Source{Dir: dir}, App: "shop", Args: []string{"API_TOKEN=s3cret-value"}, Secret: true}
	if err := env.RunSet(eo); err != nil {
		t.Fatal(err)
	}
	o := deployOpts(h, writeArtifact(t))
	o.DryRun, o.Extras.Env.Dir, o.Extras.ReleaseCommand = true, dir, "bin/migrate --up"
	if err := runDeploy(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	out := h.out.String()
	iEnv, iHook, iCanary := strings.Index(out, "env of v42"), strings.Index(out, "release command `bin/migrate --up`"), strings.Index(out, "start canary v42")
	if iEnv < 0 || iHook < iEnv || iCanary < iHook {
		t.Fatalf("order env %d, hook %d, canary %d:\n%s", iEnv, iHook, iCanary, out)
	}
	if strings.Contains(out, "s3cret") {
		t.Fatal("the plan shows an env value")
	}
	h.out.Reset()
	o = deployOpts(h, "")
	o.Release, o.DryRun, o.Extras.EnvOnly, o.Extras.Env.Dir = "", true, true, dir
	if err := runDeploy(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if out := h.out.String(); !strings.Contains(out, "copy CURRENT as CURRENT.env1") || strings.Contains(out, "upload") {
		t.Fatalf("env-only dry run:\n%s", out)
	}
}

// TestEnvOnlyOnCellsDryRun: --env-only on an app with cells plans every
// chosen cell's running release with the env, in waves, the values hidden;
// a bad --cells is still refused before any host.
func TestEnvOnlyOnCellsDryRun(t *testing.T) {
	cellsInv := writeCellsInventory(t)
	h := &harness{env: map[string]string{"BELAY_HOST_KEY_SEED": strings.Repeat("ab", 32)}}
	dir := t.TempDir()
	eo := &env.Options{IO: h.deps().IO, Inventory: h.deps().Inventory, Getenv: h.deps().Getenv, InventoryRef: cellsInv,
		Source: env.Source{Dir: dir}, App: "shop", Args: []string{"API_TOKEN=s3cret-value"}, Secret: true}
	if err := env.RunSet(eo); err != nil {
		t.Fatal(err)
	}
	h.out.Reset()
	o := deployOpts(h, "")
	o.InventoryRef, o.Release, o.DryRun, o.Extras.EnvOnly, o.Extras.Env.Dir = cellsInv, "", true, true, dir
	o.CellFlags.Cells = []string{"c2", "c1"}
	if err := runDeploy(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	out := h.out.String()
	i2, i1 := strings.Index(out, "== cell c2 (canary cell)"), strings.Index(out, "== cell c1 (wave 1)")
	if i2 < 0 || i1 < i2 || strings.Count(out, "copy CURRENT as CURRENT.env1") != 2 || strings.Contains(out, "upload") || strings.Contains(out, "c3") {
		t.Fatalf("env-only dry run on cells c2 then c1:\n%s", out)
	}
	if strings.Contains(out, "s3cret") {
		t.Fatal("the plan shows an env value")
	}
	o = deployOpts(h, "")
	o.InventoryRef, o.Release, o.Extras.EnvOnly, o.Extras.Env.Dir = cellsInv, "", true, dir
	o.CellFlags.Cells = []string{"c9"}
	if err := runDeploy(context.Background(), o); err == nil || !strings.Contains(err.Error(), `--cells: app shop has no cell "c9"`) {
		t.Fatalf("env-only with an unknown cell: %v", err)
	}
	if h.connected != 0 {
		t.Fatal("connected to hosts")
	}
}
