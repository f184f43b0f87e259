package drill

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/belay-sh/belay/drill"
	"github.com/belay-sh/belay/internal/cli"
	"github.com/belay-sh/belay/internal/opsenv"
	"github.com/belay-sh/belay/inventory"
)

func loadInv(t *testing.T, provider string) func(string) (*inventory.Inventory, error) {
	t.Helper()
	return func(string) (*inventory.Inventory, error) {
		inv, err := inventory.Load("../../../drill/testdata/inventory.json")
		if err != nil {
			return nil, err
		}
		if provider != "" {
			for k, s := range inv.Sites {
				s.Provider = provider
				inv.Sites[k] = s
			}
		}
		return inv, nil
	}
}

func TestDrillRefusesBeforeConnecting(t *testing.T) {
	tests := []struct {
		name     string
		kind     drill.Kind
		variant  string
		repeat   int
		app      string
		provider string
		wantErr  string
	}{
		{"repeat 0", drill.AppNode, "", 0, "", "", "--repeat 0"},
		{"bad variant", drill.AppNode, "meteor", 1, "", "", "--variant"},
		{"unknown app", drill.AppNode, "", 1, "blog", "", `--app "blog"`},
		{"cloud app-node", drill.AppNode, "", 1, "", "hetzner", "provider power-off"},
		{"cloud site", drill.Site, "", 1, "", "digitalocean", "only available in the lab"},
		{"cloud corrupt", drill.Restore, "corrupt", 1, "", "hetzner", "only available in the lab"},
		{"--app on a stack-wide drill", drill.Restore, "", 1, "shop", "", "applies to the app-node drill only"},
		{"--app on the site drill", drill.Site, "", 1, "shop", "", "applies to the app-node drill only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			o := &Options{IO: cli.IO{Out: &out, ErrOut: &errb}, Inventory: loadInv(t, tt.provider), Getenv: func(string) string { return "" },
				Open: func(*inventory.Inventory, opsenv.Flags, func(string) string) (*opsenv.Target, error) {
					t.Fatal("connected to the hosts")
					return nil, nil
				},
				Kind: tt.kind, Variant: tt.variant, Repeat: tt.repeat, App: tt.app, Now: time.Now}
			err := runDrill(context.Background(), o)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestWriteReportFiles(t *testing.T) {
	rep := &drill.Report{Drill: "app-node/cut-link", Target: "lab", Runs: []drill.Run{{OK: true, Recovery: 400 * time.Millisecond}}}
	rep.Summarize()
	dir := filepath.Join(t.TempDir(), "r")
	md, js, err := WriteReportFiles(rep, dir, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(md) != "app-node-cut-link-lab-20260102T030405Z.md" || !strings.HasSuffix(js, ".json") {
		t.Errorf("names %s %s", md, js)
	}
	b, err := os.ReadFile(md)
	if err != nil || !strings.Contains(string(b), "| recovery p50 | 400ms |") {
		t.Errorf("markdown: %v\n%s", err, b)
	}
	// A report dir that is a file is a clear error.
	if _, _, err := WriteReportFiles(rep, md, time.Now()); err == nil || !strings.Contains(err.Error(), "--report-dir") {
		t.Errorf("err = %v", err)
	}
}

func TestRunbookCommand(t *testing.T) {
	var out bytes.Buffer
	o := &RunbookOptions{IO: cli.IO{Out: &out}, Inventory: loadInv(t, "")}
	if err := runRunbook(o); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "# Runbook: stack lab") || !strings.Contains(out.String(), "promote-db") {
		t.Errorf("runbook:\n%s", out.String()[:200])
	}
}
