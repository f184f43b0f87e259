package host

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/belay-sh/belay/internal/cli"
	"github.com/belay-sh/belay/router"
	"github.com/belay-sh/belay/router/admin"
	rt "github.com/belay-sh/belay/router/routertest"
)

// TestShopDBRefusesHostileInput: the deploy user runs `sudo belay host
// shop-db --app APP` with any stdin. Every hostile request is refused before
// the database is written (the mapping and the audit stay empty against a
// real PostgreSQL), and the command refuses oversized input, extra words
// and other apps before reading any file.
func TestShopDBRefusesHostileInput(t *testing.T) {
	run := func(stdin string, args ...string) (admin.Response, error) {
		var out bytes.Buffer
		f := cli.New()
		f.IO = cli.IO{In: strings.NewReader(stdin), Out: &out, ErrOut: &out}
		f.Getenv = func(string) string { return "" }
		cmd := NewCmdShopDB(f)
		cmd.SetArgs(args)
		cmd.SetOut(&out)
		cmd.SetErr(&out)
		cmd.SilenceUsage, cmd.SilenceErrors = true, true
		err := cmd.Execute()
		var res admin.Response
		if err == nil {
			_ = json.Unmarshal(out.Bytes(), &res)
		}
		return res, err
	}
	get := `{"op":"get","domain":"a.test"}`
	for name, c := range map[string]struct {
		stdin string
		args  []string
		want  string
	}{
		"huge input":      {strings.Repeat(" ", MaxShopDBRequest+1) + get, []string{"--app", "shop"}, "at most"},
		"extra word":      {get, []string{"--app", "shop", "x"}, "unknown command"},
		"no app":          {get, nil, "app"},
		"path app":        {get, []string{"--app", "../../tmp/x"}, "--app"},
		"shell app":       {get, []string{"--app", "shop;id"}, "--app"},
		"uppercase app":   {get, []string{"--app", "Shop"}, "--app"},
		"not this router": {get, []string{"--app", "belay-hostile-none"}, "is this a router of"},
	} {
		res, err := run(c.stdin, c.args...)
		msg := res.Error
		if err != nil {
			msg = err.Error()
		}
		if msg == "" || !strings.Contains(msg, c.want) {
			t.Errorf("%s: %q (err %v), want a refusal containing %q", name, msg, err, c.want)
		}
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
	hostile := []string{
		`{"op":"assign","domain":"a.test'; DROP TABLE belay_router.shops; --","cell":"c1"}`,
		`{"op":"assign","domain":"$(reboot).test","cell":"c1"}`,
		"{\"op\":\"assign\",\"domain\":\"a.test\\nb.test c2\",\"cell\":\"c1\"}",
		`{"op":"assign","domain":"a.test","cell":"c1'--"}`,
		`{"op":"assign","domain":"a.test","cell":"_frozen"}`,
		`{"op":"assign","domain":"a.test","cell":"c1","app":"other"}`,
		`{"op":"assign","domain":"a.test","cell":"c1"}{"op":"assign","domain":"b.test","cell":"c1"}`,
		`{"op":"assign","domain":"a.test","cell":"c1","actor":"\u001b[2Kalice@laptop"}`,
		`{"op":"assign-many","domains":["a.test","b.test","*.test"],"cell":"c1"}`,
		`{"op":"assign-many","domains":["a.test","a.test"],"cell":"c1"}`,
		`{"op":"move-begin","domain":"a.test","cell":"c9"}`,
		`{"op":"move-step","domain":"a.test","cell":"c2","step":"freezing"}`,
		`{"op":"wait","version":1,"timeoutMillis":99999999}`,
		`{"op":"audit","limit":1000000}`,
		`{"op":"sql","domain":"a.test"}`,
		`{"op":"assign","domain":"` + strings.Repeat("a", 250) + `.test","cell":"c1"}`,
		`{"op":"assign","domain":"xn--80ak6aa92e.test","cell":"c1","reason":"` + strings.Repeat("r", 501) + `"}`,
		`not json`,
	}
	for _, in := range hostile {
		if res, err := shopDB(ctx, dir, "shop", []byte(in), "deploy"); err == nil {
			t.Errorf("shop-db %q: %+v, want refused", in, res)
		}
	}
	m, err := lab.Store.Load(ctx, "shop")
	if err != nil || len(m.Shops) != 0 {
		t.Errorf("mapping after the hostile requests: %+v %v, want empty", m.Shops, err)
	}
	if rows, err := lab.Store.Audit(ctx, "shop", "", 10); err != nil || len(rows) != 0 {
		t.Errorf("audit after the hostile requests: %+v %v, want empty", rows, err)
	}
	// The same helper does write a valid request: the refusals mean something.
	if _, err := shopDB(ctx, dir, "shop", []byte(`{"op":"assign","domain":"a.test","cell":"c1"}`), "deploy"); err != nil {
		t.Fatalf("valid assign: %v", err)
	}
	t.Logf("%d hostile requests refused before any write", len(hostile))
}
