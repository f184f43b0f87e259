package drill

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/belay-sh/belay/drill"
	"github.com/belay-sh/belay/internal/cli"
	"github.com/belay-sh/belay/internal/opsenv"
	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/remote/remotetest"
)

// cellsInv is the drill testdata inventory with app shop in cells c1, c2.
func cellsInv(t *testing.T, provider string) func(string) (*inventory.Inventory, error) {
	t.Helper()
	load := loadInv(t, provider)
	return func(ref string) (*inventory.Inventory, error) {
		inv, err := load(ref)
		if err != nil {
			return nil, err
		}
		a := &inv.Apps[0]
		a.Hosts, a.Standby = nil, ""
		a.Cells = []inventory.Cell{
			{Name: "c1", VIP: "10.213.0.125", Hosts: []string{"shop-c1-1", "shop-c1-2"}, Standby: "shop-c1-standby", Database: "shop_c1"},
			{Name: "c2", VIP: "10.213.0.124", Hosts: []string{"shop-c2-1", "shop-c2-2"}, Database: "shop_c2"},
		}
		a.Router = &inventory.Router{VIP: "10.213.0.100", Hosts: []string{"shop-router-1", "shop-router-2"}, UnknownShop: "404"}
		return inv, nil
	}
}

func TestCellDrillRefusesBeforeConnecting(t *testing.T) {
	tests := []struct {
		name, app, cell, kill, provider string
		duration                        time.Duration
		noCells                         bool
		want                            string
	}{
		{name: "unknown cell", app: "shop", cell: "c9", want: `--cell "c9": not a cell of shop, expected one of c1, c2`},
		{name: "unknown app", app: "blog", cell: "c1", want: `APP "blog": not in the inventory`},
		{name: "app without cells", app: "shop", cell: "c1", noCells: true, want: "has 0 cell(s)"},
		{name: "bad kill", app: "shop", cell: "c2", kill: "disk", want: `--kill "disk": expected one of app, db`},
		{name: "duration too short", app: "shop", cell: "c2", duration: time.Millisecond, want: "--duration 1ms: expected 1s to 1h"},
		{name: "db kill outside the lab", app: "shop", cell: "c2", kill: "db", provider: "hetzner", want: "drill cell --kill db outside the lab"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			load := cellsInv(t, tt.provider)
			if tt.noCells {
				load = loadInv(t, tt.provider)
			}
			if tt.duration == 0 {
				tt.duration = drill.CellDuration
			}
			o := &CellOptions{IO: cli.IO{Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}}, Inventory: load, Getenv: func(string) string { return "" },
				Open: func(*inventory.Inventory, opsenv.Flags, func(string) string) (*opsenv.Target, error) {
					t.Fatal("connected to the hosts")
					return nil, nil
				},
				App: tt.app, Cell: tt.cell, Kill: tt.kill, Duration: tt.duration, Now: time.Now}
			err := runCell(context.Background(), o)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestCellCommandFlags(t *testing.T) {
	var got *CellOptions
	f := &cli.Factory{IO: cli.IO{Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}}, Getenv: func(string) string { return "" }}
	cmd := newCmdCell(f, func(o *CellOptions) error { got = o; return nil })
	cmd.SetArgs([]string{"shop", "--cell", "c2", "--kill", "db", "--duration", "1m", "--shops", "a.shops.test,b.shops.test", "--path", "/orders", "--json"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if got.App != "shop" || got.Cell != "c2" || got.Kill != "db" || got.Duration != time.Minute || strings.Join(got.Shops, " ") != "a.shops.test b.shops.test" || got.Path != "/orders" || !got.JSON {
		t.Errorf("options %+v", got)
	}
	cmd = newCmdCell(f, func(o *CellOptions) error { got = o; return nil })
	cmd.SetArgs([]string{"shop"})
	cmd.SetOut(&bytes.Buffer{})
	cmd.SetErr(&bytes.Buffer{})
	if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), `"cell" not set`) {
		t.Errorf("without --cell: %v", err)
	}
	// The group lists it.
	grp := NewCmdDrill(f)
	if c, _, err := grp.Find([]string{"cell"}); err != nil || c.Name() != "cell" {
		t.Errorf("belay drill cell: %v", err)
	}
}

func TestCellLeases(t *testing.T) {
	inv, err := cellsInv(t, "")("")
	if err != nil {
		t.Fatal(err)
	}
	r := &remotetest.Runner{}
	_, fenced, release, err := opsenv.HoldFenced(context.Background(), r, inv, opsenv.LeaseOptions{Apps: []string{"shop"}, Action: "drill cell/app c2", LockDir: t.TempDir(), Base: "/srv"})
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	// Each cell's lease is taken on its first server.
	leaseHosts := map[string]bool{}
	for _, c := range r.Snapshot() {
		if strings.Contains(c.Cmd, "lease") {
			leaseHosts[c.Host] = true
		}
	}
	if !leaseHosts["shop-c1-1"] || !leaseHosts["shop-c2-1"] || len(leaseHosts) != 2 {
		t.Errorf("lease commands on %v, want shop-c1-1 and shop-c2-1", leaseHosts)
	}
	// A command to a cell's server now runs under that cell's fence.
	n := len(r.Snapshot())
	if _, err := fenced.Run(context.Background(), "shop-c2-2", "true"); err != nil {
		t.Fatal(err)
	}
	if calls := r.Snapshot()[n:]; len(calls) != 1 || calls[0].Cmd == "true" {
		t.Errorf("unfenced command: %v", calls)
	}
}
