package deploy

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/belay-sh/belay/deploy"
	"github.com/belay-sh/belay/deploy/analysis"
	"github.com/belay-sh/belay/deploy/sshx"
	"github.com/belay-sh/belay/hostrelease/journal"
	"github.com/belay-sh/belay/internal/cli"
	"github.com/belay-sh/belay/inventory"
)

const testInventory = "../../../deploy/plan/testdata/inventory.json"

type harness struct {
	out, errOut bytes.Buffer
	env         map[string]string
	connected   int
	connectErr  error
}

func (h *harness) deps() deps {
	return deps{
		IO:        cli.IO{In: strings.NewReader(""), Out: &h.out, ErrOut: &h.errOut},
		Inventory: inventory.Load,
		Getenv:    func(k string) string { return h.env[k] },
		Connect: func(context.Context, *inventory.Inventory, string, SSHOptions, func(string) string) (*sshx.Pool, func(), error) {
			h.connected++
			if h.connectErr != nil {
				return nil, nil, h.connectErr
			}
			return nil, nil, errors.New("test harness: no hosts")
		},
	}
}

func writeArtifact(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "shop")
	if err := os.WriteFile(p, []byte("#!/bin/sh\nexec sleep 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func deployOpts(h *harness, art string) *DeployOptions {
	return &DeployOptions{deps: h.deps(), Common: Common{ConnFlags: ConnFlags{InventoryRef: testInventory}}, Artifact: art, Release: "v42",
		Steps: "10,50", Sticky: "ip", Keep: 5, HealthTimeout: 30 * time.Second, Thresholds: analysis.DefaultThresholds(),
		MaxEntries: 200_000, MaxUnpackedSize: "4GiB", MaxRatio: 100}
}

// writeTarball writes a tar of start plus n empty files.
func writeTarball(t *testing.T, n int) string {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "start", Mode: 0o755, Size: 9, Typeflag: tar.TypeReg})
	tw.Write([]byte("#!/bin/sh"))
	for i := 0; i < n; i++ {
		tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("f%d", i), Mode: 0o644, Typeflag: tar.TypeReg})
	}
	tw.Close()
	p := filepath.Join(t.TempDir(), "shop.tar")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDryRunTouchesNoHost(t *testing.T) {
	h := &harness{}
	o := deployOpts(h, writeArtifact(t))
	o.DryRun = true
	o.WhitelistShops = []string{"alpha.example.com"}
	if err := runDeploy(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if h.connected != 0 {
		t.Fatal("dry run connected to hosts")
	}
	for _, want := range []string{"Plan: deploy shop v42 on shop-1, shop-2", "whitelist -> 10% -> 50% -> 100%", "route whitelist", "current -> v42"} {
		if !strings.Contains(h.out.String(), want) {
			t.Errorf("dry run lacks %q", want)
		}
	}
	h.out.Reset()
	o.JSON = true
	if err := runDeploy(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	var p struct {
		App   string
		Steps []struct{ ID string }
	}
	if err := json.Unmarshal(h.out.Bytes(), &p); err != nil || p.App != "shop" || len(p.Steps) == 0 {
		t.Fatalf("--json plan: %v %s", err, h.out.String())
	}
}

func TestBadInputChangesNothing(t *testing.T) {
	art := writeArtifact(t)
	junk := filepath.Join(t.TempDir(), "junk")
	os.WriteFile(junk, []byte("not an artifact"), 0o644)
	tests := []struct {
		name string
		mod  func(o *DeployOptions)
		want string
	}{
		{"no artifact", func(o *DeployOptions) { o.Artifact = "" }, "--artifact: required"},
		{"no release", func(o *DeployOptions) { o.Release = "" }, "--release: required"},
		{"bad release", func(o *DeployOptions) { o.Release = "v1;rm" }, "--release"},
		{"bad steps", func(o *DeployOptions) { o.Steps = "10,abc" }, `--steps "10,abc"`},
		{"descending steps", func(o *DeployOptions) { o.Steps = "50,10" }, "steps"},
		{"bad sticky", func(o *DeployOptions) { o.Sticky = "cookie" }, "--sticky"},
		{"bad header", func(o *DeployOptions) { o.WhitelistHeaders = []string{"X-Beta"} }, "--whitelist-headers"},
		{"keep 1", func(o *DeployOptions) { o.Keep = 1 }, "--keep"},
		{"unknown app", func(o *DeployOptions) { o.App = "blog" }, `--app "blog"`},
		{"junk artifact", func(o *DeployOptions) { o.Artifact = junk }, "neither a tar archive"},
		{"max entries 0", func(o *DeployOptions) { o.MaxEntries = 0 }, "--max-entries 0"},
		{"bad max unpacked size", func(o *DeployOptions) { o.MaxUnpackedSize = "lots" }, "--max-unpacked-size"},
		{"max ratio 0", func(o *DeployOptions) { o.MaxRatio = 0 }, "--max-ratio 0"},
		{"too many entries", func(o *DeployOptions) { o.Artifact, o.MaxEntries = writeTarball(t, 3), 3 }, "raise --max-entries"},
		{"too many bytes", func(o *DeployOptions) { o.Artifact, o.MaxUnpackedSize = writeTarball(t, 0), "8" }, "raise --max-unpacked-size"},
		{"bad whitelist ip", func(o *DeployOptions) { o.WhitelistIPs = []string{"10.0.0.300"} }, "10.0.0.300"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := &harness{}
			o := deployOpts(h, art)
			tc.mod(o)
			err := runDeploy(context.Background(), o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want error containing %q, got %v", tc.want, err)
			}
			if h.connected != 0 {
				t.Fatal("connected to hosts despite bad input")
			}
		})
	}
}

func TestGitHubActionsAnnotationAndSummary(t *testing.T) {
	summaryPath := filepath.Join(t.TempDir(), "summary.md")
	h := &harness{env: map[string]string{"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": summaryPath}, connectErr: errors.New("host shop-2: host key refused\nsecond line")}
	err := early(h.deps(), "deploy", "shop", "v42", runDeploy(context.Background(), deployOpts(h, writeArtifact(t))))
	var exit cli.ExitError
	if !errors.As(err, &exit) || exit.Code != 1 {
		t.Fatalf("want exit 1, got %v", err)
	}
	// On stderr: stdout may carry the --json document.
	if want := "::error title=belay deploy::host shop-2: host key refused%0Asecond line\n"; !strings.HasPrefix(h.errOut.String(), want) || h.out.Len() != 0 {
		t.Errorf("annotation: stderr %q stdout %q, want %q on stderr", h.errOut.String(), h.out.String(), want)
	}
	h.errOut.Reset()
	os.Remove(summaryPath)
	out := &deploy.Outcome{App: "shop", Action: "deploy", Release: "v42", Previous: "v41", Result: "rolled-back", Hosts: []string{"shop-1", "shop-2"},
		DeployID: "d1", Duration: "12s", Rollback: "640ms", Error: "step 04-canary-health failed"}
	h.out.Reset()
	if err := report(h.deps(), false, "deploy", out, nil); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(summaryPath)
	if !strings.Contains(h.out.String(), "rolled-back (previous v41) in 12s (the rollback of every host took 640ms)") {
		t.Errorf("text outcome lacks the rollback time:\n%s", h.out.String())
	}
	for _, want := range []string{"belay deploy `shop` v42: rolled-back", "| previous | v41 |", "| rollback took | 640ms |", "step 04-canary-health failed"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("summary lacks %q:\n%s", want, b)
		}
	}
	// Outside Actions: no annotation, no summary.
	h2 := &harness{connectErr: errors.New("boom")}
	runDeploy(context.Background(), deployOpts(h2, writeArtifact(t)))
	if strings.Contains(h2.out.String(), "::error") {
		t.Error("annotation printed outside GitHub Actions")
	}
}

// TestReportDetection: a rolled-back deploy says how long after the first bad
// response the rollback started and ended, in text, JSON and the job summary.
func TestReportDetection(t *testing.T) {
	summaryPath := filepath.Join(t.TempDir(), "summary.md")
	h := &harness{env: map[string]string{"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": summaryPath}}
	out := &deploy.Outcome{App: "shop", Action: "deploy", Release: "v42", Result: "rolled-back", Duration: "20s", Rollback: "210ms",
		Detection: &deploy.Detection{FirstBad: "2026-11-22T03:00:07.000Z", What: "first canary 5xx", Detected: "2026-11-22T03:00:08.100Z",
			RollbackStarted: "2026-11-22T03:00:08.120Z", RollbackEnded: "2026-11-22T03:00:08.330Z",
			FirstBadToRollbackStart: "1.12s", FirstBadToRollbackEnd: "1.33s", DetectedToRollbackEnd: "230ms"}}
	if err := report(h.deps(), false, "deploy", out, nil); err != nil {
		t.Fatal(err)
	}
	if want := "(the rollback of every host took 210ms; first canary 5xx at 2026-11-22T03:00:07.000Z: rollback started 1.12s and ended 1.33s after it)"; !strings.Contains(h.out.String(), want) {
		t.Errorf("text lacks %q:\n%s", want, h.out.String())
	}
	b, _ := os.ReadFile(summaryPath)
	for _, want := range []string{"| first bad | first canary 5xx at 2026-11-22T03:00:07.000Z |", "| first bad to rollback start / end | 1.12s / 1.33s |", "| detected to every host back | 230ms |"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("summary lacks %q:\n%s", want, b)
		}
	}
	h.out.Reset()
	if err := report(h.deps(), true, "deploy", out, nil); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(h.out.String(), `"firstBadToRollbackEnd": "1.33s"`) {
		t.Errorf("JSON lacks the detection:\n%s", h.out.String())
	}
}

func TestResolveApp(t *testing.T) {
	inv, err := inventory.Load(testInventory)
	if err != nil {
		t.Fatal(err)
	}
	c := &Common{}
	if err := c.ResolveApp(inv); err != nil || c.App != "shop" {
		t.Fatalf("single app: %v %q", err, c.App)
	}
	inv.Apps = append(inv.Apps, inventory.App{Name: "blog"})
	c = &Common{}
	if err := c.ResolveApp(inv); err == nil || !strings.Contains(err.Error(), "several apps (shop, blog)") {
		t.Fatalf("several apps: %v", err)
	}
}

func TestReleaseMarks(t *testing.T) {
	st := &deploy.HostState{Host: "shop-1", Current: "v3", Canary: "v4", Releases: []string{"v4", "v3", "v2", "v1"}}
	st.Journal = nil
	hr := releasesOf(st)
	if len(hr.Releases) != 4 || strings.Join(hr.Releases[0].Marks, ",") != "canary" || strings.Join(hr.Releases[1].Marks, ",") != "current" {
		t.Fatalf("%+v", hr)
	}
	st.Journal = &journal.Record{Target: "v3", Previous: "v2", KnownGood: []string{"v1", "v2", "v3"}}
	hr = releasesOf(st)
	got := []string{}
	for _, r := range hr.Releases {
		got = append(got, r.ID+"="+strings.Join(r.Marks, "+"))
	}
	if want := "v4=canary v3=current+known-good v2=previous+known-good v1=known-good"; strings.Join(got, " ") != want {
		t.Fatalf("marks %s, want %s", strings.Join(got, " "), want)
	}
}

func TestLeaseBreakNeedsReason(t *testing.T) {
	h := &harness{}
	o := &LeaseBreakOptions{deps: h.deps(), Common: Common{ConnFlags: ConnFlags{InventoryRef: testInventory}}, Reason: "  "}
	if err := runLeaseBreak(context.Background(), o); err == nil || !strings.Contains(err.Error(), "--reason") {
		t.Fatalf("got %v, want --reason required", err)
	}
	if h.connected != 0 {
		t.Fatal("connected to hosts without a reason")
	}
}
