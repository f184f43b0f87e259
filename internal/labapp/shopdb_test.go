package labapp

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/belay-sh/belay/internal/pgtest"
)

// cellDBs starts PostgreSQL with one database per cell, each owned by its
// own unprivileged role the way roles/dbtenants.go creates them (no CREATEDB,
// PUBLIC revoked), and returns each cell's DATABASE_URL.
func cellDBs(t *testing.T, cells ...string) map[string]string {
	t.Helper()
	pg := pgtest.Start(t)
	ctx := context.Background()
	c, err := pgx.Connect(ctx, pg.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	out := map[string]string{}
	for _, cell := range cells {
		for _, q := range []string{
			"CREATE ROLE " + cell + " LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS",
			"CREATE DATABASE " + cell + " OWNER " + cell,
			"REVOKE ALL ON DATABASE " + cell + " FROM PUBLIC",
		} {
			if _, err := c.Exec(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		out[cell] = fmt.Sprintf("postgres://%[1]s@127.0.0.1:%[2]d/%[1]s?sslmode=disable&connect_timeout=5", cell, pg.Port)
	}
	return out
}

func envWith(dsn string) func(string) string {
	return func(k string) string {
		if k == "DATABASE_URL" {
			return dsn
		}
		return ""
	}
}

func serveOne(t *testing.T, h http.Handler, method, url, body string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, url, strings.NewReader(body)))
	return rec.Code, rec.Body.String()
}

// TestPGStoreSharedByTheCellsServers: the two servers of a cell see the same
// data (a PUT through the VIP lands on either), and the hook on a third
// process exports it.
func TestPGStoreSharedByTheCellsServers(t *testing.T) {
	dsn := cellDBs(t, "c1")["c1"]
	var apps []http.Handler
	for i := 0; i < 2; i++ {
		st, closeFn, err := OpenStore(envWith(dsn))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(closeFn)
		if _, ok := st.(*PGStore); !ok {
			t.Fatalf("DATABASE_URL set: store %T, want *PGStore", st)
		}
		apps = append(apps, New(Config{Release: "r"}, func(string) {}).WithStore(st).Handler())
	}
	if code, body := serveOne(t, apps[0], "PUT", "/data?shop=a.test", "order-1\n"); code != 200 {
		t.Fatalf("PUT: %d %s", code, body)
	}
	if code, body := serveOne(t, apps[1], "POST", "/data?shop=a.test", "order-2\n"); code != 200 {
		t.Fatalf("POST: %d %s", code, body)
	}
	if code, body := serveOne(t, apps[0], "GET", "/data?shop=a.test", ""); code != 200 || body != "order-1\norder-2\n" {
		t.Errorf("GET on the other server: %d %q", code, body)
	}
	if code, body := serveOne(t, apps[1], "PUT", "/data?shop=a.test", "replaced\n"); code != 200 {
		t.Fatalf("PUT: %d %s", code, body)
	}
	var out bytes.Buffer
	if code := MoveMain([]string{"export", "a.test"}, envWith(dsn), nil, &out, io.Discard); code != 0 || out.String() != "replaced\n" {
		t.Errorf("export: %d %q", code, out.String())
	}
	if code, body := serveOne(t, apps[1], "GET", "/data?shop=none.test", ""); code != 200 || body != "" {
		t.Errorf("GET of a shop without data: %d %q", code, body)
	}
	for _, shop := range []string{"../etc/passwd", "x';DROP TABLE labapp_shop_data;--", "a_b.test", strings.Repeat("a", 250) + ".test"} {
		if code, _ := serveOne(t, apps[0], "PUT", "/data?shop="+url.QueryEscape(shop), "x"); code != http.StatusBadRequest {
			t.Errorf("PUT shop %q: %d, want 400", shop, code)
		}
		var errb bytes.Buffer
		if code := MoveMain([]string{"import", shop}, envWith(dsn), strings.NewReader("x"), io.Discard, &errb); code == 0 {
			t.Errorf("belay-move import %q: exit 0", shop)
		}
	}
}

// TestPGMoveBetweenCellDatabases: 10 MB exported from one cell's database
// and imported into another's through belay-move; a cut import leaves the
// previous data.
func TestPGMoveBetweenCellDatabases(t *testing.T) {
	dsns := cellDBs(t, "c1", "c2")
	data := make([]byte, 10<<20)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	if code := MoveMain([]string{"import", "big.test"}, envWith(dsns["c1"]), bytes.NewReader(data), io.Discard, io.Discard); code != 0 {
		t.Fatal("seeding c1 failed")
	}
	if code := MoveMain([]string{"import", "big.test"}, envWith(dsns["c2"]), strings.NewReader("old\n"), io.Discard, io.Discard); code != 0 {
		t.Fatal("seeding c2 failed")
	}
	var spool bytes.Buffer
	var errb bytes.Buffer
	if code := MoveMain([]string{"export", "big.test"}, envWith(dsns["c1"]), nil, &spool, &errb); code != 0 {
		t.Fatalf("export: %s", errb.String())
	}
	if code := MoveMain([]string{"import", "big.test"}, envWith(dsns["c2"]), &spool, io.Discard, &errb); code != 0 {
		t.Fatalf("import: %s", errb.String())
	}
	st, err := NewPGStore(dsns["c2"])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	var got bytes.Buffer
	if err := st.Export(context.Background(), "big.test", &got); err != nil || !bytes.Equal(got.Bytes(), data) {
		t.Fatalf("c2 has %d bytes (%v), want the 10 MB of c1", got.Len(), err)
	}
	// A cut stream: the import fails and c2 keeps the 10 MB.
	if err := st.Import(context.Background(), "big.test", &failReader{n: 1 << 20}); err == nil {
		t.Fatal("import from a failing reader succeeded")
	}
	got.Reset()
	if err := st.Export(context.Background(), "big.test", &got); err != nil || !bytes.Equal(got.Bytes(), data) {
		t.Errorf("after a failed import c2 has %d bytes (%v), want the previous 10 MB", got.Len(), err)
	}
}

func TestNewPGStoreHidesTheDSN(t *testing.T) {
	_, err := NewPGStore("postgres://u:s3cret@[bad/x")
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error %v: want one that does not repeat the password", err)
	}
	st, closeFn, err := OpenStore(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	closeFn()
	if _, ok := st.(DirStore); !ok {
		t.Errorf("without DATABASE_URL: %T, want DirStore", st)
	}
}
