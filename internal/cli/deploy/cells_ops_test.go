package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/belay-sh/belay/deploy"
	"github.com/belay-sh/belay/deploy/run"
	"github.com/belay-sh/belay/deploy/sshx"
	"github.com/belay-sh/belay/deploy/sshx/sshdtest"
	"github.com/belay-sh/belay/internal/cli"
	"github.com/belay-sh/belay/inventory"
)

// cellHost is one cell server's files for a real sshd: its releases on disk
// (the first is current) and its audit log lines.
type cellHost struct {
	releases []string
	audit    []string
	journal  string // the journal's JSON, if any
}

// cellsSession serves the cells inventory's servers with real sshd (inetd
// mode, one root per host) holding the given files.
func cellsSession(t *testing.T, hosts map[string]cellHost) *session {
	t.Helper()
	inv, err := inventory.Load(writeCellsInventory(t))
	if err != nil {
		t.Fatal(err)
	}
	servers := map[string]*sshdtest.Server{}
	for h, ch := range hosts {
		root := filepath.Join(t.TempDir(), h)
		for _, rel := range ch.releases {
			if err := os.MkdirAll(filepath.Join(root, "shop", "releases", rel), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Symlink("releases/"+ch.releases[0], filepath.Join(root, "shop", "current")); err != nil {
			t.Fatal(err)
		}
		if ch.journal != "" {
			os.MkdirAll(filepath.Join(root, "shop", ".belay"), 0o755)
			if err := os.WriteFile(filepath.Join(root, "shop", ".belay", "journal.json"), []byte(ch.journal), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if len(ch.audit) > 0 {
			os.MkdirAll(filepath.Join(root, "shop", ".belay"), 0o755)
			if err := os.WriteFile(filepath.Join(root, "shop", ".belay", "audit.log"), []byte(strings.Join(ch.audit, "\n")+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		servers[h] = sshdtest.New(t, "SetEnv BELAY_ROOT="+root)
	}
	pool := sshx.NewPool(func(ctx context.Context, host string) (*sshx.Client, error) {
		s := servers[host]
		if s == nil {
			return nil, errors.New("host " + host + ": not in this test")
		}
		cfg := sshx.Config{Auth: []ssh.AuthMethod{ssh.PublicKeys(s.ClientSigner)}, KeepaliveInterval: -1}
		return sshx.NewClientConn(ctx, cfg, sshx.Target{Name: host, Addr: host + ":22", User: s.User, HostKeys: []ssh.PublicKey{s.HostKey}}, s.Conn())
	})
	t.Cleanup(pool.Close)
	return &session{d: &deploy.Deployer{Inv: inv, App: "shop", Pool: pool, Runner: &run.Runner{Pool: pool}, Base: "$BELAY_ROOT"}}
}

// TestCellsRollbackRefusesMixedStates: before any cell is touched, a
// rollback of cells on different releases (a partly rolled-out cells deploy),
// of a cell whose servers disagree, or --to a release a server lacks is
// refused, naming the cells and what to do; the check reads real sshd hosts
// and writes nothing.
func TestCellsRollbackRefusesMixedStates(t *testing.T) {
	// c3 died mid-deploy of v42 (one server switched): undone by its rollback.
	died := `{"deployId":"d9","app":"shop","kind":"deploy","target":"v42","previous":"v41","status":"running","by":"bob","startedAt":"2026-01-01T00:00:00Z","updatedAt":"2026-01-01T00:00:00Z"}`
	s := cellsSession(t, map[string]cellHost{
		"shop-c1-1": {releases: []string{"v42", "v41"}}, "shop-c1-2": {releases: []string{"v42", "v41"}},
		"shop-c2-1": {releases: []string{"v41", "v40"}}, "shop-c2-2": {releases: []string{"v41", "v40"}},
		"shop-c3-1": {releases: []string{"v42", "v41"}, journal: died}, "shop-c3-2": {releases: []string{"v41", "v42"}, journal: died},
	})
	tests := []struct {
		name  string
		cells []string
		to    string
		want  []string // "" entries: must pass
	}{
		{"cells on different releases", []string{"c1", "c2"}, "", []string{"the cells run different releases (v41 on c2; v42 on c1)", "--cell", "--to"}},
		{"a died rollout mixed with a steady cell", []string{"c1", "c3"}, "", []string{"cells c3 (died) have an unfinished rollout, which rollback undoes, while cells c1 have none"}},
		{"a died rollout alone: its servers may disagree", []string{"c3"}, "", nil},
		{"--to missing on a cell", []string{"c1", "c2"}, "v40", []string{"cell c1: release v40 is not on shop-c1-1", "cell c1: release v40 is not on shop-c1-2"}},
		{"same release everywhere", []string{"c1"}, "", nil},
		{"--to present everywhere", []string{"c1", "c2", "c3"}, "v41", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &Common{Cells: tc.cells}
			names, ds, err := cellDeployers(s, c)
			if err != nil {
				t.Fatal(err)
			}
			err = checkCellsRollback(context.Background(), names, ds, tc.to)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "no cell was touched") {
				t.Fatalf("err %v, want a refusal", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("refusal lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

// TestCellsRollbackRefusesSplitCell: a cell with no unfinished rollout whose
// servers run different releases is refused (it needs --to).
func TestCellsRollbackRefusesSplitCell(t *testing.T) {
	s := cellsSession(t, map[string]cellHost{"shop-c1-1": {releases: []string{"v42", "v41"}}, "shop-c1-2": {releases: []string{"v41", "v42"}}})
	names, ds, err := cellDeployers(s, &Common{Cells: []string{"c1"}})
	if err != nil {
		t.Fatal(err)
	}
	err = checkCellsRollback(context.Background(), names, ds, "")
	if want := "cell c1: its servers run different releases (v41 on shop-c1-2; v42 on shop-c1-1); converge it with --cell c1 --to RELEASE"; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("err %v, want %q", err, want)
	}
	if err := checkCellsRollback(context.Background(), names, ds, "v41"); err != nil {
		t.Fatalf("--to v41: %v", err)
	}
}

// TestCellsReleasesAndAudit: `belay releases` and `belay audit` on an app
// with cells read each chosen cell's servers (real sshd); rows and --json
// entries carry the cell; the audit logs merge by time.
func TestCellsReleasesAndAudit(t *testing.T) {
	entry := func(at, rel string) string {
		return `{"time":"` + at + `","who":"alice","from":"laptop","action":"deploy","app":"shop","release":"` + rel + `","result":"ok"}`
	}
	s := cellsSession(t, map[string]cellHost{
		"shop-c1-1": {releases: []string{"v42", "v41"}, audit: []string{entry("2026-01-01T10:00:00Z", "v41"), entry("2026-01-03T10:00:00Z", "v42")}},
		"shop-c1-2": {releases: []string{"v42", "v41"}},
		"shop-c2-1": {releases: []string{"v41"}, audit: []string{entry("2026-01-02T10:00:00Z", "v41")}},
		"shop-c2-2": {releases: []string{"v41"}},
	})
	h := &harness{}
	o := &ListOptions{deps: h.deps(), Common: Common{Cells: []string{"c1", "c2"}, JSON: true}, Lines: 50}
	names, ds, err := cellDeployers(s, &o.Common)
	if err != nil {
		t.Fatal(err)
	}
	if err := runReleasesCells(context.Background(), o, names, ds); err != nil {
		t.Fatal(err)
	}
	var rels []HostReleases
	if err := json.Unmarshal(h.out.Bytes(), &rels); err != nil || len(rels) != 4 {
		t.Fatalf("releases --json: %v\n%s", err, h.out.String())
	}
	for _, hr := range rels {
		current := false
		for _, r := range hr.Releases {
			current = current || contains(r.Marks, "current")
		}
		if want := "c" + hr.Host[len("shop-c"):len("shop-c")+1]; hr.Cell != want || !current {
			t.Errorf("releases row %+v: want cell %s and the current release marked", hr, want)
		}
	}
	h.out.Reset()
	o.JSON = false
	if err := runReleasesCells(context.Background(), o, names, ds); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(h.out.String(), "shop-c2-2 (cell c2):\n  v41  (current)") {
		t.Errorf("releases text:\n%s", h.out.String())
	}

	h.out.Reset()
	o.JSON = true
	if err := runAuditCells(context.Background(), o, names, ds); err != nil {
		t.Fatal(err)
	}
	var es []CellAuditEntry
	if err := json.Unmarshal(h.out.Bytes(), &es); err != nil || len(es) != 3 {
		t.Fatalf("audit --json: %v\n%s", err, h.out.String())
	}
	if es[0].Cell != "c1" || es[0].Release != "v41" || es[1].Cell != "c2" || es[2].Cell != "c1" || es[2].Release != "v42" {
		t.Errorf("audit not merged by time with cells: %+v", es)
	}
	h.out.Reset()
	o.JSON, o.Lines = false, 1
	if err := runAuditCells(context.Background(), o, names, ds); err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSpace(h.out.String()), "\n"); len(lines) != 2 || !strings.Contains(lines[1], "c1    alice") || !strings.Contains(lines[1], "v42") {
		t.Errorf("audit -n 1 text:\n%s", h.out.String())
	}
}

// TestCellFlagBadInput: --cell naming an unknown cell, or given for an app
// without cells, is refused naming the flag before any host is dialled.
func TestCellFlagBadInput(t *testing.T) {
	cellsInv := writeCellsInventory(t)
	for _, tc := range []struct {
		name, inv string
		cells     []string
		want      string
	}{
		{"unknown cell", cellsInv, []string{"c9"}, `--cell: app shop has no cell "c9"`},
		{"empty cell", cellsInv, []string{""}, "--cell: empty cell name"},
		{"twice", cellsInv, []string{"c1", "c1"}, `--cell: cell "c1" named twice`},
		{"app without cells", testInventory, []string{"c1"}, "--cell: app shop has no cells"},
	} {
		for _, cmd := range []string{"rollback", "releases", "audit"} {
			t.Run(tc.name+"/"+cmd, func(t *testing.T) {
				h := &harness{}
				c := Common{ConnFlags: ConnFlags{InventoryRef: tc.inv, App: "shop"}, Cells: tc.cells}
				var err error
				switch cmd {
				case "rollback":
					err = runRollback(context.Background(), &RollbackOptions{deps: h.deps(), Common: c})
				case "releases":
					err = runReleases(context.Background(), &ListOptions{deps: h.deps(), Common: c})
				case "audit":
					err = runAudit(context.Background(), &ListOptions{deps: h.deps(), Common: c, Lines: 5})
				}
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("err %v, want %q", err, tc.want)
				}
				if h.connected != 0 {
					t.Fatal("dialled hosts despite bad --cell")
				}
			})
		}
	}
}

// TestRollCells: every chosen cell rolls back at once, each to its own
// release; one failing cell fails the command (exit 1, after the report)
// without stopping the others; --json has a row per cell.
func TestRollCells(t *testing.T) {
	h := &harness{}
	o := &RollbackOptions{deps: h.deps()}
	started := make(chan string, 3)
	gate := make(chan struct{})
	roll := func(ctx context.Context, c string) (*deploy.Outcome, error) {
		started <- c
		<-gate // every cell is under way before any finishes: they run at once
		switch c {
		case "c2":
			return &deploy.Outcome{App: "shop", Action: "rollback", Result: "failed", Error: "shop-c2-1: unreachable"}, errors.New("shop-c2-1: unreachable")
		case "c3":
			return nil, errors.New("cell c3: lease held by bob")
		}
		return &deploy.Outcome{App: "shop", Action: "rollback", Release: "v41", Previous: "v42", Result: "ok", Duration: "3s"}, nil
	}
	go func() {
		for i := 0; i < 3; i++ {
			<-started
		}
		close(gate)
	}()
	err := rollCells(context.Background(), o, "shop", "rollback", []string{"c1", "c2", "c3"}, roll)
	var exit cli.ExitError
	if !errors.As(err, &exit) || exit.Code != 1 {
		t.Fatalf("a failed cell: %v, want exit 1", err)
	}
	text := h.out.String()
	for _, want := range []string{"cell c1: rollback v41: ok in 3s", "cell c2: rollback: failed: shop-c2-1: unreachable", "cell c3: rollback failed: cell c3: lease held by bob"} {
		if !strings.Contains(text, want) {
			t.Errorf("report lacks %q:\n%s", want, text)
		}
	}
	if !strings.Contains(h.errOut.String(), "rollback failed on cell(s) c2, c3") {
		t.Errorf("stderr: %s", h.errOut.String())
	}

	h.out.Reset()
	o.JSON = true
	ok := func(ctx context.Context, c string) (*deploy.Outcome, error) {
		return &deploy.Outcome{App: "shop", Action: "rollback", Release: "v-" + c, Result: "ok"}, nil
	}
	if err := rollCells(context.Background(), o, "shop", "rollback", []string{"c1", "c2"}, ok); err != nil {
		t.Fatal(err)
	}
	var doc CellsRollback
	if err := json.Unmarshal(h.out.Bytes(), &doc); err != nil || doc.Result != "ok" || len(doc.Cells) != 2 || doc.Cells[1].Cell != "c2" || doc.Cells[1].Outcome.Release != "v-c2" {
		t.Fatalf("--json: %v %+v\n%s", err, doc, h.out.String())
	}
}
