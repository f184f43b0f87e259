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

// TestCellStatus runs `belay status` on an app with cells against real sshd
// servers (inetd mode, one root per host): cell c1's servers disagree on
// their release and both hold its VIP (127.0.0.1, on this machine: a split
// brain as status sees it); c2's agree on v3 and nobody holds its VIP. Both
// cells are unhealthy (no unit runs here): exit status 1, a row per cell,
// each host's row with its cell, the same in --json.
func TestCellStatus(t *testing.T) {
	invPath := writeCellsInventory(t)
	inv, err := inventory.Load(invPath)
	if err != nil {
		t.Fatal(err)
	}
	a := inv.App("shop")
	a.Cells = a.Cells[:2]
	a.Cells[0].VIP, a.Cells[1].VIP = "127.0.0.1", "192.0.2.250"
	current := map[string]string{"shop-c1-1": "v1", "shop-c1-2": "v2", "shop-c2-1": "v3", "shop-c2-2": "v3"}
	servers := map[string]*sshdtest.Server{}
	for h, rel := range current {
		root := filepath.Join(t.TempDir(), h)
		if err := os.MkdirAll(filepath.Join(root, "shop", "releases", rel), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("releases/"+rel, filepath.Join(root, "shop", "current")); err != nil {
			t.Fatal(err)
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
	d := &deploy.Deployer{Inv: inv, App: "shop", Pool: pool, Runner: &run.Runner{Pool: pool}, Base: "$BELAY_ROOT"}

	h := &harness{}
	o := &ListOptions{deps: h.deps()}
	err = runCellStatus(context.Background(), o, &session{d: d})
	var exit cli.ExitError
	if !errors.As(err, &exit) || exit.Code != 1 {
		t.Fatalf("unhealthy cells: %v, want exit 1", err)
	}
	text := h.out.String()
	for _, want := range []string{
		"c1    127.0.0.1    shop-c1-1,shop-c1-2  -        NO       shop-c1-1, shop-c1-2",
		"c2    192.0.2.250  -                    v3       NO       shop-c2-1, shop-c2-2",
		"cell c1 UNHEALTHY: servers disagree: v1 on shop-c1-1; v2 on shop-c1-2",
		"cell c1 UNHEALTHY: VIP 127.0.0.1 held by 2 servers (shop-c1-1, shop-c1-2)",
		"cell c2 UNHEALTHY: no server holds the VIP 192.0.2.250",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("status lacks %q:\n%s", want, text)
		}
	}
	if !strings.Contains(text, "c2    shop-c2-2  v3") {
		t.Errorf("no host row with its cell:\n%s", text)
	}

	h.out.Reset()
	o.JSON = true
	if err := runCellStatus(context.Background(), o, &session{d: d}); !errors.As(err, &exit) {
		t.Fatalf("--json: %v, want exit 1", err)
	}
	var doc struct {
		App   string
		Cells []struct {
			Cell, Release string
			VIPHolders    []string
			Healthy       bool
			States        []struct{ Host, Current string }
		}
	}
	if err := json.Unmarshal(h.out.Bytes(), &doc); err != nil || doc.App != "shop" || len(doc.Cells) != 2 || doc.Cells[1].Release != "v3" ||
		len(doc.Cells[0].VIPHolders) != 2 || doc.Cells[0].Healthy || len(doc.Cells[1].States) != 2 || doc.Cells[1].States[0].Current != "v3" {
		t.Fatalf("--json: %v %+v\n%s", err, doc, h.out.String())
	}
}
