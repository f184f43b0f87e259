package hostroute

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/belay-sh/belay/deploy/traffic"
	"github.com/belay-sh/belay/internal/shq/shqtest"
)

// TestMaintenanceSurvivesDeployThroughRealNginx: `belay maintenance on`
// answers 503 through the real nginx; a deploy's stages (as the deployer
// sends them, without maintenance) keep it on, the watcher's re-render too;
// `off` serves the app again. The JSON travels as the deploy user sends it
// (MaintenanceCommand's here-document, decoded like `belay host route`).
func TestMaintenanceSurvivesDeployThroughRealNginx(t *testing.T) {
	n := startNginx(t, "shop")
	port := freePort(t)
	startBackend(t, fmt.Sprintf("127.0.0.1:%d", port), "stable", 0)
	startBackend(t, fmt.Sprintf("127.0.0.1:%d", port+1), "canary", 0)
	n.boot(t, spec("shop", port, traffic.Stable, []string{"127.0.0.1"}, nil))
	ctx := context.Background()
	on := MaintenanceChange{On: true, Settings: &traffic.Maintenance{Message: "back soon", RetryAfter: 300, By: "ops@box"}}
	res, err := Apply(ctx, "shop", wire(t, on), n.opts)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Maintenance || res.Stage != "stable" {
		t.Fatalf("on: %+v", res)
	}
	if code, body := get(t, n.front+"/"); code != 503 || !strings.Contains(body, "back soon") {
		t.Fatalf("maintenance on: %d %q, want 503 with the page", code, body)
	}
	for _, st := range []traffic.Kind{traffic.Full, traffic.Stable} {
		var canary []string
		if st != traffic.Stable {
			canary = []string{"127.0.0.1"}
		}
		res, err := Apply(ctx, "shop", Request{Spec: spec("shop", port, st, []string{"127.0.0.1"}, canary)}, n.opts)
		if err != nil {
			t.Fatal(err)
		}
		if !res.Maintenance {
			t.Fatalf("deploy stage %s switched maintenance off: %+v", st, res)
		}
		if code, _ := get(t, n.front+"/"); code != 503 {
			t.Fatalf("during the deploy's %s stage: %d, want 503", st, code)
		}
	}
	if res, err := Apply(ctx, "shop", Request{Current: true}, n.opts); err != nil || !res.Maintenance {
		t.Fatalf("watcher re-render: %+v %v", res, err)
	}
	prev, _ := LoadStage(filepath.Join(n.opts.Dir, "shop"))
	if prev.Maintenance == nil || prev.Maintenance.RetryAfter != 300 {
		t.Fatalf("stage.json lost the setting: %+v", prev.Maintenance)
	}
	if res, err := Apply(ctx, "shop", wire(t, MaintenanceChange{On: false}), n.opts); err != nil || res.Maintenance {
		t.Fatalf("off: %+v %v", res, err)
	}
	if code, body := get(t, n.front+"/"); code != 200 || body != "stable" {
		t.Fatalf("maintenance off: %d %q, want the app", code, body)
	}
}

// wire sends ch through MaintenanceCommand's here-document to a stand-in
// helper (cat) and decodes what arrived, as `belay host route` does.
func wire(t *testing.T, ch MaintenanceChange) Request {
	t.Helper()
	cmd, err := MaintenanceCommand("cat", "shop", ch)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("sh", "-c", "sudo() { shift; \"$@\"; }\n"+strings.Replace(cmd, "cat shop", "cat", 1)).Output()
	if err != nil {
		t.Fatal(err)
	}
	req, err := Decode(out)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// TestMaintenanceRefusals: bad changes are refused, naming the field, and
// change nothing on disk.
func TestMaintenanceRefusals(t *testing.T) {
	dir := t.TempDir()
	opts := Options{Dir: dir, RunDir: filepath.Join(dir, "run"), NginxTest: []string{"false"}, NginxReload: []string{"false"}}
	if err := os.MkdirAll(filepath.Join(dir, "shop"), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	on := &MaintenanceChange{On: true, Settings: &traffic.Maintenance{RetryAfter: 60}}
	if _, err := Apply(ctx, "shop", Request{Maintenance: on}, opts); err == nil || !strings.Contains(err.Error(), "deploy the app once") {
		t.Fatalf("no stage yet: %v", err)
	}
	s := spec("shop", 3000, traffic.Stable, []string{"10.0.0.1"}, nil)
	mustWrite(t, filepath.Join(dir, "shop", StageFile), []byte(`{"app":"shop","port":3000,"stableAddrs":["10.0.0.1"],"stage":{"kind":"stable"}}`))
	withMaint := s
	withMaint.Maintenance = on.Settings
	for _, c := range []struct {
		name string
		req  Request
		want string
	}{
		{"a deploy setting maintenance", Request{Spec: withMaint}, "spec.maintenance"},
		{"maintenance with a spec", Request{Spec: s, Maintenance: on}, "expected the maintenance field alone"},
		{"on without settings", Request{Maintenance: &MaintenanceChange{On: true}}, "maintenance.settings: empty"},
		{"off with settings", Request{Maintenance: &MaintenanceChange{Settings: on.Settings}}, "maintenance.settings: given with off"},
		{"bad retry", Request{Maintenance: &MaintenanceChange{On: true, Settings: &traffic.Maintenance{RetryAfter: -1}}}, "maintenance.retryAfter"},
	} {
		if _, err := Apply(ctx, "shop", c.req, opts); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error naming %q", c.name, err, c.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "shop", routingFile)); err == nil {
		t.Error("a refused change wrote routing.conf")
	}
}

// TestMaintenanceCommandHostile: a hostile app name stays one inert word.
func TestMaintenanceCommandHostile(t *testing.T) {
	for _, v := range shqtest.Values {
		cmd, err := MaintenanceCommand("printf '%s\\n'", v.S, MaintenanceChange{On: false})
		if err != nil {
			t.Fatal(err)
		}
		out := shqtest.Run(t, "sudo() { shift; \"$@\"; }\n"+cmd)
		if want := v.S + "\n"; !strings.HasPrefix(out, want) {
			t.Errorf("%s: got %q, want the app name %q as one word", v.Name, out, v.S)
		}
	}
}
