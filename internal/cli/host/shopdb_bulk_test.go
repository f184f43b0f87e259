package host

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/belay-sh/belay/router"
	"github.com/belay-sh/belay/router/admin"
	rt "github.com/belay-sh/belay/router/routertest"
)

// longDomain is a distinct 253-character domain (the longest there is).
func longDomain(i int) string {
	d := fmt.Sprintf("s%05d", i) + strings.Repeat("."+strings.Repeat("a", 61), 3)
	return d + "." + strings.Repeat("b", 253-len(d)-1)
}

// TestShopDBHelperBulk: the largest bulk assignment fits the helper's stdin
// bound and runs as one request; a batch with one bad domain changes nothing.
func TestShopDBHelperBulk(t *testing.T) {
	batch := make([]string, admin.MaxBatch)
	for i := range batch {
		batch[i] = longDomain(i)
		if err := router.CheckDomain(batch[i]); err != nil || len(batch[i]) != 253 {
			t.Fatalf("test domain %d: %d chars, %v", i, len(batch[i]), err)
		}
	}
	req, err := json.Marshal(admin.Request{Op: admin.OpAssignMany, Domains: batch, Cell: "c1", Actor: strings.Repeat("x", 500)})
	if err != nil {
		t.Fatal(err)
	}
	if len(req) > MaxShopDBRequest {
		t.Fatalf("a full batch is %d bytes, over the helper's stdin bound %d", len(req), MaxShopDBRequest)
	}

	lab := rt.StartDB(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, router.CellsFile), []byte("cell c1 127.0.0.1:1\ncell c2 127.0.0.1:2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, router.DSNFile), []byte(lab.DSN+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	bad := []byte(`{"op":"assign-many","domains":["ok.test","Bad.test"],"cell":"c1"}`)
	if _, err := shopDB(ctx, dir, "shop", bad, "deploy"); err == nil || !strings.Contains(err.Error(), "domains[1]") {
		t.Fatalf("bad batch: %v, want a refusal naming domains[1]", err)
	}
	if sh, err := lab.Store.Get(ctx, "shop", "ok.test"); err != nil || sh != nil {
		t.Fatalf("ok.test after a refused batch: %+v %v", sh, err)
	}
	start := time.Now()
	res, err := shopDB(ctx, dir, "shop", req, "deploy")
	t.Logf("assign-many of %d shops (%d-byte request): %s", admin.MaxBatch, len(req), time.Since(start).Round(time.Millisecond))
	if err != nil || len(res.Assigned) != admin.MaxBatch || res.Version == 0 {
		t.Fatalf("full batch: %d assigned, version %d, %v", len(res.Assigned), res.Version, err)
	}
	m, err := lab.Store.Load(ctx, "shop")
	if err != nil || len(m.Shops) != admin.MaxBatch || m.Version != res.Version {
		t.Errorf("mapping: %d shops version %d (%v), want %d at version %d", len(m.Shops), m.Version, err, admin.MaxBatch, res.Version)
	}
	rows, err := lab.Store.Audit(ctx, "shop", batch[7], 5)
	if err != nil || len(rows) != 1 || !strings.HasSuffix(rows[0].Actor, "(ssh login deploy)") || rows[0].Detail != "batch of 10000" {
		t.Errorf("audit of one shop of the batch: %+v %v", rows, err)
	}
}
