package labapp

import (
	"bytes"
	"errors"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type failReader struct{ n int }

func (f *failReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("connection cut")
	}
	f.n -= len(p)
	return len(p), nil
}

func TestMoveContract(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	if err := Import(src, "a.test", strings.NewReader("orders-1\n")); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	env := func(dir string) func(string) string {
		return func(k string) string {
			if k == DataDirEnv {
				return dir
			}
			return ""
		}
	}
	if code := MoveMain([]string{"export", "a.test"}, env(src), nil, &out, io.Discard); code != 0 || out.String() != "orders-1\n" {
		t.Fatalf("export: %d %q", code, out.String())
	}
	if code := MoveMain([]string{"import", "a.test"}, env(dst), &out, io.Discard, io.Discard); code != 0 {
		t.Fatalf("import: %d", code)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "a.test.data")); string(b) != "orders-1\n" {
		t.Errorf("imported %q", b)
	}
	// A failed import leaves the previous data.
	if err := Import(dst, "a.test", &failReader{n: 100}); err == nil {
		t.Fatal("import from a failing reader succeeded")
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "a.test.data")); string(b) != "orders-1\n" {
		t.Errorf("after a failed import: %q, want the previous data", b)
	}
	var errb bytes.Buffer
	for _, args := range [][]string{{"export", "../etc/passwd"}, {"export"}, {"delete", "a.test"}} {
		if code := MoveMain(args, env(src), nil, io.Discard, &errb); code == 0 {
			t.Errorf("belay-move %q: exit 0", args)
		}
	}
	// A shop without data exports nothing, successfully.
	out.Reset()
	if code := MoveMain([]string{"export", "new.test"}, env(src), nil, &out, io.Discard); code != 0 || out.Len() != 0 {
		t.Errorf("export of a shop without data: %d %q", code, out.String())
	}
}

// Without ?shop= the shop is the Host (lowercase, without port), as the
// router resolves it: one path reads each shop's own data.
func TestDataHandlerShopFromHost(t *testing.T) {
	h := dataHandler(DirStore(t.TempDir()))
	do := func(method, host, target, body string) (int, string) {
		t.Helper()
		req := httptest.NewRequest(method, target, strings.NewReader(body))
		req.Host = host
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}
	if code, body := do("PUT", "Shop-A.test:8080", "/data", "a-data"); code != 200 {
		t.Fatalf("PUT by Host: %d %s", code, body)
	}
	if code, body := do("GET", "x.test", "/data?shop=shop-a.test", ""); code != 200 || body != "a-data" {
		t.Errorf("GET by ?shop=: %d %q, want the data the Host PUT wrote", code, body)
	}
	if code, body := do("GET", "other.test", "/data", ""); code != 200 || body != "" {
		t.Errorf("GET of another Host: %d %q, want 200 and no data", code, body)
	}
	for _, host := range []string{"bad_host", "localhost", "-x.test"} {
		if code, _ := do("GET", host, "/data", ""); code != 400 {
			t.Errorf("Host %q: %d, want 400 (not a shop domain)", host, code)
		}
	}
}
