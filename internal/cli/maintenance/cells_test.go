package maintenance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/belay-sh/belay/internal/cli"
	"github.com/belay-sh/belay/internal/opsenv"
	"github.com/belay-sh/belay/inventory"
)

func loadInv(t *testing.T, cells bool) *inventory.Inventory {
	t.Helper()
	inv, err := inventory.Load("../../../deploy/plan/testdata/inventory.json")
	if err != nil {
		t.Fatal(err)
	}
	if cells {
		a := inv.App("shop")
		a.Hosts, a.Standby = nil, ""
		for i := 1; i <= 2; i++ {
			a.Cells = append(a.Cells, inventory.Cell{Name: fmt.Sprintf("c%d", i), Hosts: []string{fmt.Sprintf("shop-c%d-1", i), fmt.Sprintf("shop-c%d-2", i)},
				Standby: fmt.Sprintf("shop-c%d-standby", i)})
		}
	}
	return inv
}

func hostsOf(svs []Server) string {
	var out []string
	for _, s := range svs {
		out = append(out, s.Host+"/"+s.Cell)
	}
	return strings.Join(out, " ")
}

func TestServersCells(t *testing.T) {
	cells, plain := loadInv(t, true).App("shop"), loadInv(t, false).App("shop")
	for _, tc := range []struct {
		name  string
		app   *inventory.App
		cells []string
		want  string
		err   string
	}{
		{"every cell", cells, nil, "shop-c1-1/c1 shop-c1-2/c1 shop-c1-standby/c1 shop-c2-1/c2 shop-c2-2/c2 shop-c2-standby/c2", ""},
		{"one cell", cells, []string{"c2"}, "shop-c2-1/c2 shop-c2-2/c2 shop-c2-standby/c2", ""},
		{"app without cells", plain, nil, "shop-1/ shop-2/ shop-standby/", ""},
		{"unknown cell", cells, []string{"c3"}, "", `--cell: app shop has no cell "c3"`},
		{"--cell without cells", plain, []string{"c1"}, "", "--cell: app shop has no cells"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Servers(tc.app, tc.cells)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || hostsOf(got) != tc.want {
				t.Fatalf("got %q %v, want %q", hostsOf(got), err, tc.want)
			}
		})
	}
	// Each cell's audit log gets its own cell's servers, on its primaries.
	svs, _ := Servers(cells, nil)
	gs := auditGroups(cells, svs)
	if len(gs) != 2 || gs[1].cell != "c2" || !reflect.DeepEqual(gs[1].logHosts, []string{"shop-c2-1", "shop-c2-2"}) || len(gs[1].servers) != 3 {
		t.Errorf("audit groups %+v", gs)
	}
	svs, _ = Servers(plain, nil)
	if gs := auditGroups(plain, svs); len(gs) != 1 || gs[0].cell != "" || len(gs[0].servers) != 3 || !reflect.DeepEqual(gs[0].logHosts, []string{"shop-1", "shop-2"}) {
		t.Errorf("audit groups without cells %+v", gs)
	}
}

// TestBadCellOpensNothing: a bad --cell is refused before any host is dialled.
func TestBadCellOpensNothing(t *testing.T) {
	opened := 0
	for _, tc := range []struct {
		cells bool
		sel   []string
		want  string
	}{
		{true, []string{"c9"}, `--cell: app shop has no cell "c9"`},
		{false, []string{"c1"}, "--cell: app shop has no cells"},
	} {
		inv := loadInv(t, tc.cells)
		o := &Options{IO: cli.IO{Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}}, Getenv: func(string) string { return "" }, Now: time.Now,
			Inventory: func(string) (*inventory.Inventory, error) { return inv, nil },
			Open: func(*inventory.Inventory, opsenv.Flags, func(string) string) (*opsenv.Target, error) {
				opened++
				return nil, errors.New("test: no hosts")
			},
			App: "shop", Cells: tc.sel}
		if err := Run(context.Background(), o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.sel, err, tc.want)
		}
	}
	if opened != 0 {
		t.Fatal("dialled hosts despite a bad --cell")
	}
}
