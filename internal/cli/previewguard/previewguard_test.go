package previewguard

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/belay-sh/belay/internal/cli"
)

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	f := &cli.Factory{IO: cli.IO{In: strings.NewReader(""), Out: &out, ErrOut: &out}}
	cmd := NewCmdPreviewGuard(f, nil)
	cmd.SetArgs(args)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.Execute()
	return out.String(), err
}

const testdata = "../../../previewguard/testdata/"

func TestPreviewGuardCommand(t *testing.T) {
	out, err := run(t, "--file", testdata+"safe-add-app.json")
	if err != nil || !strings.Contains(out, "preview-guard: ok, 5 steps") {
		t.Errorf("safe preview: err=%v out=%q", err, out)
	}

	out, err = run(t, "--file", testdata+"replace-db.json", "--allow", "db-1")
	if !errors.Is(err, ErrBlocked) {
		t.Errorf("replacing the database: err=%v, want ErrBlocked", err)
	}
	for _, want := range []string{"allowed: replace stateful server db-1", "BLOCKED: replace stateful server db-2", "because image changed", "BLOCKED: delete data volume backup-data"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	out, err = run(t, "--file", testdata+"replace-db.json", "--json")
	if !errors.Is(err, ErrBlocked) {
		t.Errorf("--json: err=%v, want ErrBlocked", err)
	}
	var v struct {
		OK       bool `json:"ok"`
		Findings []struct {
			Name string `json:"name"`
		} `json:"findings"`
	}
	if jerr := json.Unmarshal([]byte(out), &v); jerr != nil || v.OK || len(v.Findings) != 5 {
		t.Errorf("--json: %v ok=%v findings=%d, want 5 findings and ok=false:\n%s", jerr, v.OK, len(v.Findings), out)
	}

	if _, err := run(t, "--file", testdata+"safe-add-app.json", "--allow", "db-1"); err == nil || !strings.Contains(err.Error(), "--allow db-1: matches no") {
		t.Errorf("an --allow that matches nothing: err=%v, want it refused", err)
	}
	if _, err := run(t, "--file", "/nonexistent/preview.json"); err == nil || !strings.Contains(err.Error(), "--file") {
		t.Errorf("missing file: err=%v, want one naming --file", err)
	}
}

func TestPreviewGuardStdin(t *testing.T) {
	b, err := os.ReadFile(testdata + "safe-add-app.json")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	o := &Options{IO: cli.IO{In: bytes.NewReader(b), Out: &out}, File: "-"}
	if err := Run(o); err != nil || !strings.Contains(out.String(), "ok") {
		t.Errorf("stdin: err=%v out=%q", err, out.String())
	}
}

// A running cell made dedicated passes with a warning naming the copy.
func TestPreviewGuardWarnsCellMadeDedicated(t *testing.T) {
	out, err := run(t, "--file", testdata+"cell-dedicated.json")
	if err != nil || !strings.Contains(out, "WARNING: shop-c2-db: cell shop-c2 becomes dedicated") ||
		!strings.Contains(out, "belay db copy --cell shop/c2 --yes before belay converge") || !strings.Contains(out, "preview-guard: ok, 4 steps") {
		t.Errorf("err=%v out=%q", err, out)
	}
}
