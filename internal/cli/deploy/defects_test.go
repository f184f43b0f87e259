package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/belay-sh/belay/deploy/sshx"
	"github.com/belay-sh/belay/internal/cli"
	"github.com/belay-sh/belay/inventory"
)

// unreachable is a Connector whose hosts all refuse the connection.
func unreachable(context.Context, *inventory.Inventory, string, SSHOptions, func(string) string) (*sshx.Pool, func(), error) {
	p := sshx.NewPool(func(_ context.Context, h string) (*sshx.Client, error) {
		return nil, errors.New("host " + h + ": dial: connection refused")
	})
	return p, p.Close, nil
}

func TestJSONExitStatusWhenHostsUnreachable(t *testing.T) {
	for _, name := range []string{"status", "releases"} {
		t.Run(name, func(t *testing.T) {
			h := &harness{}
			d := h.deps()
			d.Connect = unreachable
			o := &ListOptions{deps: d, Common: Common{ConnFlags: ConnFlags{InventoryRef: testInventory}, JSON: true}}
			var err error
			if name == "status" {
				err = runStatus(context.Background(), o)
			} else {
				err = runReleases(context.Background(), o)
			}
			var ee cli.ExitError
			if !errors.As(err, &ee) || ee.Code != 1 {
				t.Fatalf("err = %v, want exit 1", err)
			}
			var doc []map[string]any
			if err := json.Unmarshal(h.out.Bytes(), &doc); err != nil || len(doc) == 0 || doc[0]["error"] == nil {
				t.Fatalf("stdout is not the JSON document with errors: %v\n%s", err, h.out.String())
			}
		})
	}
}

// TestEarlyFailureInActions: a bad artifact fails before any host is touched;
// in GitHub Actions that still writes the job summary and an ::error line,
// on stderr, never on stdout (which carries --json).
func TestEarlyFailureInActions(t *testing.T) {
	sum := filepath.Join(t.TempDir(), "summary.md")
	h := &harness{env: map[string]string{"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": sum}}
	cmd := NewCmdDeploy(&cli.Factory{IO: h.deps().IO, Inventory: inventory.Load, Getenv: func(k string) string { return h.env[k] }})
	bad := filepath.Join(t.TempDir(), "bad.tar.gz")
	os.WriteFile(bad, []byte("not a tarball"), 0o644)
	cmd.SetArgs([]string{"--inventory", testInventory, "--artifact", bad, "--release", "v9", "--json"})
	err := cmd.Execute()
	var ee cli.ExitError
	if !errors.As(err, &ee) || ee.Code != 1 {
		t.Fatalf("err = %v, want exit 1", err)
	}
	if h.out.Len() != 0 {
		t.Errorf("stdout must stay empty (or JSON): %q", h.out.String())
	}
	if !strings.Contains(h.errOut.String(), "::error title=belay deploy::") {
		t.Errorf("no ::error on stderr: %q", h.errOut.String())
	}
	b, _ := os.ReadFile(sum)
	if !strings.Contains(string(b), "belay deploy") || !strings.Contains(string(b), "failed") || !strings.Contains(string(b), "none (failed before the rollout began)") {
		t.Errorf("job summary: %q", b)
	}
}

func TestThresholdFlagsRefused(t *testing.T) {
	art := writeArtifact(t)
	for _, tc := range []struct{ args, want string }{
		{"--min-requests 0", "--min-requests 0: expected at least 1"},
		{"--max-error-delta -1", "--max-error-delta -1: expected 0 or more"},
		{"--max-slow-delta -0.5", "--max-slow-delta -0.5"},
		{"--parallel -2", "--parallel -2: expected 0"},
	} {
		h := &harness{}
		cmd := NewCmdDeploy(&cli.Factory{IO: h.deps().IO, Inventory: inventory.Load, Getenv: func(string) string { return "" }})
		cmd.SetArgs(append([]string{"--inventory", testInventory, "--artifact", art, "--release", "v9", "--dry-run"}, strings.Fields(tc.args)...))
		cmd.Execute()
		if !strings.Contains(h.errOut.String(), tc.want) {
			t.Errorf("%s: stderr %q, want %q", tc.args, h.errOut.String(), tc.want)
		}
	}
}
