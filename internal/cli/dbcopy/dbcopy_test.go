package dbcopy

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/belay-sh/belay/celldb"
	"github.com/belay-sh/belay/internal/cli"
	"github.com/belay-sh/belay/internal/opsenv"
	"github.com/belay-sh/belay/inventory"
)

func testInventory() *inventory.Inventory {
	return &inventory.Inventory{
		Stack:    "prod",
		Database: inventory.Database{Nodes: []string{"db-1", "db-2"}, Monitor: "db-monitor"},
		Apps: []inventory.App{{Name: "shop", Domains: []string{"shop.example.com"}, Cells: []inventory.Cell{
			{Name: "c2", VIP: "10.0.2.10", Hosts: []string{"shop-c2-1", "shop-c2-2"}, Database: "shop_c2",
				DBNodes: []string{"shop-c2-db-1", "shop-c2-db-2"}, Formation: "shop_c2"},
		}}},
	}
}

// fakeCell is the stack with state: the pair's database fills on restore
// and is marked on mark.
type fakeCell struct {
	mu       sync.Mutex
	restored bool
	marker   string
	held     int
	calls    []string
}

func (f *fakeCell) Runner() celldb.Runner { return f }
func (f *fakeCell) Pipe() celldb.Piper    { return f }
func (f *fakeCell) Close()                {}
func (f *fakeCell) Hold(ctx context.Context, app, cell, _ string, _ io.Writer) (context.Context, func(), error) {
	if app != "shop" || cell != "c2" {
		return nil, nil, errors.New("wrong lease " + app + "/" + cell)
	}
	f.held++
	return ctx, func() {}, nil
}

func (f *fakeCell) Run(_ context.Context, host, cmd string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, host+" "+cmd)
	return nil, nil
}

func (f *fakeCell) RunRoot(_ context.Context, host string, argv ...string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	line := strings.Join(argv, " ")
	f.calls = append(f.calls, host+" "+line)
	pair := strings.HasPrefix(host, "shop-c2-db")
	switch {
	case strings.Contains(line, "pg_is_in_recovery"):
		if host == "db-1" || host == "shop-c2-db-2" {
			return []byte("f\n"), nil
		}
		return []byte("t\n"), nil
	case strings.Contains(line, "formationid = 'shop_c2'"):
		return []byte("1/1\n"), nil
	case strings.HasSuffix(line, "marker shop_c2"):
		if f.marker == "" {
			return []byte("none\n"), nil
		}
		return []byte(f.marker), nil
	case strings.HasSuffix(line, "tables shop_c2") && pair && !f.restored:
		return []byte("0\n"), nil
	case strings.HasSuffix(line, "tables shop_c2"):
		return []byte("2\n"), nil
	case strings.HasSuffix(line, "counts shop_c2"):
		return []byte("7\tpublic.a\n3\tpublic.b\n"), nil
	}
	return nil, nil
}

func (f *fakeCell) Stream(_ context.Context, host, cmd string, stdout, _ io.Writer) error {
	_, err := io.WriteString(stdout, "PGDMP")
	return err
}

func (f *fakeCell) RunInput(_ context.Context, host, cmd string, stdin io.Reader) ([]byte, error) {
	data, _ := io.ReadAll(stdin)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, host+" "+cmd)
	switch {
	case strings.HasSuffix(cmd, "restore shop_c2"):
		f.restored = true
	case strings.HasSuffix(cmd, "mark shop_c2"):
		var req celldb.MarkRequest
		if err := json.Unmarshal(data, &req); err != nil {
			return nil, err
		}
		m, _ := json.Marshal(celldb.Marker{Source: req.Source, Database: "shop_c2", Tables: 2, Rows: 10, At: time.Date(2026, 12, 6, 18, 0, 0, 0, time.UTC)})
		f.marker = string(m) + "\n"
	}
	return nil, nil
}

func runCopy(t *testing.T, fc *fakeCell, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut strings.Builder
	f := &cli.Factory{IO: cli.IO{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}, Getenv: func(string) string { return "" }}
	cmd := NewCmdCopy(f, func(ctx context.Context, o *Options) error {
		o.Inventory = func(string) (*inventory.Inventory, error) { return testInventory(), nil }
		o.Connect = func(*inventory.Inventory, opsenv.Flags, func(string) string) (Conn, error) { return fc, nil }
		o.Converge = func(*Options, *inventory.Inventory) func(context.Context, string) error {
			return func(_ context.Context, host string) error { fc.calls = append(fc.calls, host+" converge"); return nil }
		}
		o.HTTPGet = func(context.Context, string, string) (int, error) { return 200, nil }
		return Run(ctx, o)
	})
	cmd.SetArgs(args)
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	err := cmd.Execute()
	return out.String(), errOut.String(), err
}

func TestCopyCommand(t *testing.T) {
	fc := &fakeCell{}
	out, errOut, err := runCopy(t, fc, "--cell", "shop/c2")
	if err != nil || !strings.Contains(out, "db-1 (stack's primary) -> shop-c2-db-2") || !strings.Contains(errOut, "nothing changed: add --yes") || fc.held != 0 || fc.restored {
		t.Fatalf("plan only: %v\n%s\n%s", err, out, errOut)
	}
	out, _, err = runCopy(t, fc, "--cell", "shop/c2", "--yes", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var res celldb.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if res.Tables != 2 || res.Rows != 10 || res.Bytes != 5 || res.Source != "db-1" || res.Target != "shop-c2-db-2" || fc.held != 1 {
		t.Errorf("result %+v, leases %d", res, fc.held)
	}
	audited := 0
	for _, c := range fc.calls {
		if strings.Contains(c, "audit.log") && strings.Contains(c, `"action":"db copy"`) && strings.Contains(c, `"result":"ok"`) {
			audited++
		}
	}
	if audited != 2 {
		t.Errorf("audit lines on the cell's servers: %d, want 2", audited)
	}
	// Again: copied already, only the switch, which says so.
	fc.calls = nil
	out, _, err = runCopy(t, fc, "--cell", "shop/c2", "--yes")
	if err != nil || !strings.Contains(out, "copied already") {
		t.Errorf("second run: %v %s", err, out)
	}
	for _, c := range fc.calls {
		if strings.Contains(c, "dump") || strings.Contains(c, "restore") || strings.Contains(c, "stop") {
			t.Errorf("second run ran %s", c)
		}
	}
	for _, bad := range [][]string{{"--cell", "shop"}, {"--cell", "shop/c2/x"}, {"--cell", "shop/c9"}, {}} {
		if _, _, err := runCopy(t, &fakeCell{}, bad...); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
