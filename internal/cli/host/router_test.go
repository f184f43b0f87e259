package host

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/belay-sh/belay/router"
	rt "github.com/belay-sh/belay/router/routertest"
)

func TestMoveHookArgv(t *testing.T) {
	argv, err := MoveHookArgv("shop", "export", "a.test")
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(argv, " ")
	for _, want := range []string{"systemd-run", "-p User=belay-app", "-p EnvironmentFile=/etc/belay/shop.env", "/srv/shop/current/belay-move export a.test"} {
		if !strings.Contains(got, want) {
			t.Errorf("argv %q lacks %q", got, want)
		}
	}
	for _, bad := range [][3]string{{"shop", "export", "../../etc/passwd"}, {"shop", "rm", "a.test"}, {"../x", "export", "a.test"}, {"shop", "import", "-rf.test"}} {
		if _, err := MoveHookArgv(bad[0], bad[1], bad[2]); err == nil {
			t.Errorf("MoveHookArgv%q accepted", bad)
		}
	}
}

// TestShopDBHelper runs the root helper's request path against a real
// PostgreSQL: the DSN file must be root-only, requests are checked against
// cells.conf, the SSH login is appended to the actor in the audit.
func TestShopDBHelper(t *testing.T) {
	lab := rt.StartDB(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, router.CellsFile), []byte("cell c1 127.0.0.1:1\ncell c2 127.0.0.1:2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dsn := filepath.Join(dir, router.DSNFile)
	if err := os.WriteFile(dsn, []byte(lab.DSN+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	assign := []byte(`{"op":"assign","domain":"a.test","cell":"c2","actor":"ops@laptop"}`)
	if _, err := shopDB(ctx, dir, "shop", assign, "deploy"); err == nil || !strings.Contains(err.Error(), "0600") {
		t.Fatalf("world-readable DSN: %v, want a refusal naming 0600", err)
	}
	if err := os.Chmod(dsn, 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := shopDB(ctx, dir, "shop", assign, "deploy")
	if err != nil || res.Version == 0 {
		t.Fatalf("assign: %+v %v", res, err)
	}
	if _, err := shopDB(ctx, dir, "shop", []byte(`{"op":"assign","domain":"b.test","cell":"c9"}`), "deploy"); err == nil || !strings.Contains(err.Error(), `cell "c9"`) {
		t.Errorf("unknown cell: %v", err)
	}
	res, err = shopDB(ctx, dir, "shop", []byte(`{"op":"cells"}`), "deploy")
	if err != nil || len(res.Cells) != 2 || res.Cells[1].Shops != 1 || !strings.HasPrefix(res.Cells[0].Health, "down") {
		t.Errorf("cells: %+v %v", res, err)
	}
	res, err = shopDB(ctx, dir, "shop", []byte(`{"op":"audit","domain":"a.test","limit":5}`), "deploy")
	if err != nil || len(res.Audit) != 1 || res.Audit[0].Actor != "ops@laptop (ssh login deploy)" || res.Audit[0].Action != "assign" {
		t.Errorf("audit: %+v %v", res.Audit, err)
	}
}
