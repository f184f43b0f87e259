package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/belay-sh/belay/deploy"
	"github.com/belay-sh/belay/deploy/sshx"
	"github.com/belay-sh/belay/inventory"
)

// writeCellsInventory writes the test inventory with app shop split into
// three cells of two servers and a router tier (validated by Load).
func writeCellsInventory(t *testing.T) string {
	t.Helper()
	inv, err := inventory.Load(testInventory)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := *inv.Host("shop-1")
	var hosts []inventory.Host
	for _, h := range inv.Hosts {
		if h.App != "shop" {
			hosts = append(hosts, h)
		}
	}
	a := inv.App("shop")
	a.Hosts, a.Standby = nil, ""
	for i := 1; i <= 3; i++ {
		c := inventory.Cell{Name: fmt.Sprintf("c%d", i), VIP: fmt.Sprintf("10.213.0.%d", 126-i), Database: fmt.Sprintf("shop_c%d", i)}
		for j := 1; j <= 2; j++ {
			h := tmpl
			h.Name, h.Cell = fmt.Sprintf("shop-c%d-%d", i, j), c.Name
			h.PrivateAddress = fmt.Sprintf("10.213.0.%d", 20+10*i+j)
			h.SSHAddress = h.PrivateAddress
			hosts = append(hosts, h)
			c.Hosts = append(c.Hosts, h.Name)
		}
		a.Cells = append(a.Cells, c)
	}
	a.Router = &inventory.Router{VIP: "10.213.0.100", UnknownShop: "404"}
	inv.Hosts = hosts
	if err := inv.Validate(); err != nil {
		t.Fatal(err)
	}
	b, err := inv.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "inventory.json")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCellsDryRun(t *testing.T) {
	h := &harness{}
	o := deployOpts(h, writeArtifact(t))
	o.InventoryRef = writeCellsInventory(t)
	o.DryRun, o.WhitelistShops, o.CanaryCell, o.WaveSize = true, []string{"alpha.example.com"}, "c2", 2
	if err := runDeploy(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if h.connected != 0 {
		t.Fatal("dry run connected to hosts")
	}
	text := h.out.String()
	for _, want := range []string{"Cells: c2 (canary cell), then c1 c3", "== cell c2 (canary cell)", "Plan: deploy shop v42 on shop-c2-1, shop-c2-2",
		"== cell c1 (wave 1)", "Plan: deploy shop v42 on shop-c1-1, shop-c1-2", "whitelist -> 10% -> 50% -> 100%"} {
		if !strings.Contains(text, want) {
			t.Errorf("dry run lacks %q:\n%s", want, text)
		}
	}
	if strings.Index(text, "cell c2") > strings.Index(text, "cell c1") {
		t.Error("the canary cell's plan is not first")
	}
	h.out.Reset()
	o.JSON = true
	if err := runDeploy(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Waves [][]string
		Cells []struct {
			Cell string
			Wave int
			Plan struct{ Hosts []string }
		}
	}
	if err := json.Unmarshal(h.out.Bytes(), &doc); err != nil || len(doc.Cells) != 3 || doc.Cells[0].Cell != "c2" || doc.Cells[2].Wave != 1 ||
		strings.Join(doc.Cells[0].Plan.Hosts, ",") != "shop-c2-1,shop-c2-2" {
		t.Fatalf("--json plan: %v %+v\n%s", err, doc, h.out.String())
	}
}

// TestCellsBadInput: bad cell flags are refused naming the flag, before any host.
func TestCellsBadInput(t *testing.T) {
	cellsInv := writeCellsInventory(t)
	tests := []struct {
		name string
		inv  string
		mod  func(o *DeployOptions)
		want string
	}{
		{"unknown cell", cellsInv, func(o *DeployOptions) { o.CellFlags.Cells = []string{"c1", "c9"} }, `--cells: app shop has no cell "c9" (cells: c1, c2, c3)`},
		{"duplicate", cellsInv, func(o *DeployOptions) { o.CellFlags.Cells = []string{"c1", "c1"} }, `--cells: cell "c1" named twice`},
		{"unknown canary cell", cellsInv, func(o *DeployOptions) { o.CanaryCell = "c0" }, `--canary-cell: app shop has no cell "c0"`},
		{"wave size 0", cellsInv, func(o *DeployOptions) { o.WaveSize, o.changed = 0, func(f string) bool { return f == "wave-size" } }, "--wave-size 0"},
		{"stop-after over cells", cellsInv, func(o *DeployOptions) { o.StopAfter = "whitelist" }, "--stop-after: a cells deploy pauses one cell at a time"},
		{"--cells without cells", testInventory, func(o *DeployOptions) { o.CellFlags.Cells = []string{"c1"} }, "--cells: app shop has no cells"},
		{"--canary-cell without cells", testInventory, func(o *DeployOptions) { o.CanaryCell = "c1" }, "--canary-cell: app shop has no cells"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := &harness{}
			o := deployOpts(h, writeArtifact(t))
			o.InventoryRef = tc.inv
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
	// Good cells input goes on to connect (and the harness has no hosts).
	h := &harness{}
	o := deployOpts(h, writeArtifact(t))
	o.InventoryRef, o.CellFlags.Cells = cellsInv, []string{"c3"}
	if err := runDeploy(context.Background(), o); err == nil || h.connected != 1 {
		t.Fatalf("connect: %v, connected %d", err, h.connected)
	}
}

// TestCellsReport: the text names each cell's state and the three lists;
// --json carries them per cell; the job summary has a row per cell.
func TestCellsReport(t *testing.T) {
	summaryPath := filepath.Join(t.TempDir(), "summary.md")
	h := &harness{env: map[string]string{"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": summaryPath}}
	out := &deploy.CellsOutcome{App: "shop", Action: "deploy", Release: "v42", Result: "rolled-back", CanaryCell: "c1", Duration: "3m",
		Waves: [][]string{{"c1"}, {"c2"}, {"c3"}},
		Cells: []deploy.CellOutcome{
			{Cell: "c1", Wave: 0, Hosts: []string{"shop-c1-1", "shop-c1-2"}, State: deploy.CellRolledBack, Previous: "v41",
				Deploy:   &deploy.Outcome{Result: "ok", Previous: "v41"},
				Rollback: &deploy.Outcome{Result: "ok", Release: "v41", Duration: "4s"}},
			{Cell: "c2", Wave: 1, Hosts: []string{"shop-c2-1", "shop-c2-2"}, State: deploy.CellRolledBack, Previous: "v40",
				Deploy: &deploy.Outcome{Result: "rolled-back", Previous: "v40", Rollback: "300ms"}, Error: "canary verdict at whitelist: 5xx"},
			{Cell: "c3", Wave: 2, Hosts: []string{"shop-c3-1", "shop-c3-2"}, State: deploy.CellUntouched},
		},
		Touched: []string{"c1", "c2"}, RolledBack: []string{"c1", "c2"}, Untouched: []string{"c3"}}
	err := reportCells(h.deps(), false, out, errors.New("cell c2: canary verdict"))
	if err == nil {
		t.Fatal("a rolled-back deploy exits 0")
	}
	text := h.out.String()
	for _, want := range []string{"deploy shop v42 to cells: rolled-back in 3m",
		"cell c1 (canary cell; shop-c1-1, shop-c1-2): rolled-back (its rollout: ok, previous v41), then rolled back to v41 in 4s",
		"cell c2 (wave 1; shop-c2-1, shop-c2-2): rolled-back (its rollout: rolled-back, previous v40, its rollback took 300ms): canary verdict at whitelist: 5xx",
		"cell c3 (wave 2; shop-c3-1, shop-c3-2): untouched",
		"touched: c1, c2; rolled back: c1, c2; never touched: c3"} {
		if !strings.Contains(text, want) {
			t.Errorf("text lacks %q:\n%s", want, text)
		}
	}
	b, _ := os.ReadFile(summaryPath)
	if !strings.Contains(string(b), "| c3 | 2 | untouched |") || !strings.Contains(string(b), "to cells: rolled-back") {
		t.Errorf("summary:\n%s", b)
	}
	h.out.Reset()
	reportCells(h.deps(), true, out, nil)
	var doc struct {
		Cells     []struct{ Cell, State string }
		Untouched []string
	}
	if err := json.Unmarshal(h.out.Bytes(), &doc); err != nil || len(doc.Cells) != 3 || doc.Cells[2].State != "untouched" || doc.Untouched[0] != "c3" {
		t.Fatalf("--json: %v %+v", err, doc)
	}
}

func TestLeaseBreakCell(t *testing.T) {
	cellsInv := writeCellsInventory(t)
	for _, tc := range []struct{ cell, inv, want string }{
		{"", cellsInv, "--cell: required, app shop has cells"},
		{"c9", cellsInv, `--cell: app shop: no cell "c9"`},
		{"c1", testInventory, `--cell: app shop: no cell "c1"`},
	} {
		// The harness connects to nothing: the pool is nil, so reaching a host would panic.
		h := &harness{}
		o := &LeaseBreakOptions{deps: h.deps(), Common: Common{ConnFlags: ConnFlags{InventoryRef: tc.inv}}, Reason: "gone", Cell: tc.cell}
		o.deps.Connect = func(context.Context, *inventory.Inventory, string, SSHOptions, func(string) string) (*sshx.Pool, func(), error) {
			return nil, func() {}, nil
		}
		if err := runLeaseBreak(context.Background(), o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("--cell %q: got %v, want %q", tc.cell, err, tc.want)
		}
	}
}
