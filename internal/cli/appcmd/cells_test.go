package appcmd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/belay-sh/belay/deploy/sshx"
	"github.com/belay-sh/belay/internal/cli"
	clideploy "github.com/belay-sh/belay/internal/cli/deploy"
	"github.com/belay-sh/belay/inventory"
)

// cellsInventory is the test inventory with app shop split into cells c1
// and c2 of two servers each (shop-cN-1, shop-cN-2) and a standby each.
func cellsInventory(t *testing.T) *inventory.Inventory {
	t.Helper()
	inv, err := inventory.Load("../../../deploy/plan/testdata/inventory.json")
	if err != nil {
		t.Fatal(err)
	}
	a := inv.App("shop")
	a.Hosts, a.Standby = nil, ""
	for i := 1; i <= 2; i++ {
		c := inventory.Cell{Name: fmt.Sprintf("c%d", i), Standby: fmt.Sprintf("shop-c%d-standby", i)}
		for j := 1; j <= 2; j++ {
			c.Hosts = append(c.Hosts, fmt.Sprintf("shop-c%d-%d", i, j))
		}
		a.Cells = append(a.Cells, c)
	}
	return inv
}

func TestAppHostsCells(t *testing.T) {
	inv := cellsInventory(t)
	plain, err := inventory.Load("../../../deploy/plan/testdata/inventory.json")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name         string
		inv          *inventory.Inventory
		host         string
		cells        []string
		all, primary []string
		err          string
	}{
		{"every cell", inv, "", nil, []string{"shop-c1-1", "shop-c1-2", "shop-c1-standby", "shop-c2-1", "shop-c2-2", "shop-c2-standby"},
			[]string{"shop-c1-1", "shop-c1-2", "shop-c2-1", "shop-c2-2"}, ""},
		{"one cell", inv, "", []string{"c2"}, []string{"shop-c2-1", "shop-c2-2", "shop-c2-standby"}, []string{"shop-c2-1", "shop-c2-2"}, ""},
		{"a host of a cell", inv, "shop-c2-2", nil, []string{"shop-c2-2"}, []string{"shop-c2-2"}, ""},
		{"a host outside --cell", inv, "shop-c2-2", []string{"c1"}, nil, nil, `--host "shop-c2-2": not an app server of shop cell c1`},
		{"unknown cell", inv, "", []string{"c9"}, nil, nil, `--cell: app shop has no cell "c9"`},
		{"--cell on an app without cells", plain, "", []string{"c1"}, nil, nil, "--cell: app shop has no cells"},
		{"app without cells", plain, "", nil, []string{"shop-1", "shop-2", "shop-standby"}, []string{"shop-1", "shop-2"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sv, err := appHosts(tc.inv, "shop", tc.host, tc.cells)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(sv.All, tc.all) || !reflect.DeepEqual(sv.Primary, tc.primary) {
				t.Fatalf("got %+v %v, want %v / %v", sv, err, tc.all, tc.primary)
			}
			for _, h := range sv.All {
				want := ""
				if strings.HasPrefix(h, "shop-c") {
					want = h[len("shop-") : len("shop-")+2]
				}
				if sv.Cell[h] != want {
					t.Errorf("%s: cell %q, want %q", h, sv.Cell[h], want)
				}
			}
		})
	}
	if got := Format(Line{Time: time.Unix(0, 0).UTC(), Host: "shop-c1-1", Cell: "c1", Source: "nginx", Message: "GET /"}); got != "1970-01-01T00:00:00.000Z shop-c1-1 c1 nginx | GET /" {
		t.Errorf("Format with a cell: %q", got)
	}
}

// TestCellBadInputDialsNothing: logs and exec refuse bad --cell (and exec
// an app with cells without --cell or --host) before dialling any host.
func TestCellBadInputDialsNothing(t *testing.T) {
	inv := cellsInventory(t)
	dialled := 0
	d := deps{
		IO:        cli.IO{In: strings.NewReader(""), Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}},
		Inventory: func(string) (*inventory.Inventory, error) { return inv, nil },
		Getenv:    func(string) string { return "" },
		Now:       time.Now,
		Connect: func(context.Context, *inventory.Inventory, string, clideploy.SSHOptions, func(string) string) (*sshx.Pool, func(), error) {
			dialled++
			return nil, nil, errors.New("test: no hosts")
		},
	}
	conn := clideploy.ConnFlags{App: "shop"}
	for _, tc := range []struct {
		name string
		run  func() error
		want string
	}{
		{"logs unknown cell", func() error {
			return runLogs(context.Background(), &LogsOptions{deps: d, ConnFlags: conn, Lines: 10, Cells: []string{"c3"}})
		}, `--cell: app shop has no cell "c3"`},
		{"exec without --cell", func() error {
			return runExec(context.Background(), &ExecOptions{deps: d, ConnFlags: conn, Argv: []string{"id"}})
		}, "--cell: required, app shop has cells (c1, c2)"},
		{"exec two cells", func() error {
			return runExec(context.Background(), &ExecOptions{deps: d, ConnFlags: conn, Argv: []string{"id"}, Cell: "c1,c2"})
		}, "--cell \"c1,c2\": exec runs on one server"},
		{"exec unknown cell", func() error {
			return runExec(context.Background(), &ExecOptions{deps: d, ConnFlags: conn, Argv: []string{"id"}, Cell: "c7"})
		}, `--cell: app shop has no cell "c7"`},
		{"exec host outside the cell", func() error {
			return runExec(context.Background(), &ExecOptions{deps: d, ConnFlags: conn, Argv: []string{"id"}, Cell: "c1", Host: "shop-c2-1"})
		}, `--host "shop-c2-1"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.run(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
			if dialled != 0 {
				t.Fatal("dialled hosts despite bad input")
			}
		})
	}
	// Good input gets as far as dialling.
	if err := runExec(context.Background(), &ExecOptions{deps: d, ConnFlags: conn, Argv: []string{"id"}, Cell: "c2"}); err == nil || dialled != 1 {
		t.Fatalf("exec --cell c2: %v, dialled %d", err, dialled)
	}
}
