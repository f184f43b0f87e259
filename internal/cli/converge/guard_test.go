package converge

import (
	"context"
	"encoding/json"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/belay-sh/belay/celldb"
	"github.com/belay-sh/belay/internal/cli"
	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/remote"
)

// dedicatedSource is the lab stack's source with its first two app servers
// made the servers of dedicated cell shop/c2 in the inventory.
func dedicatedSource(t *testing.T) (*Source, []string) {
	src := sourceFor(t, addKey)
	var cellHosts []string
	for _, n := range src.Order {
		if src.Specs[n].App != nil && len(cellHosts) < 2 {
			cellHosts = append(cellHosts, n)
		}
	}
	if len(cellHosts) != 2 {
		t.Fatalf("no two app servers in %v", src.Order)
	}
	src.Inv.Database = inventory.Database{Nodes: []string{"db-1", "db-2"}, Monitor: "db-monitor"}
	src.Inv.Apps = []inventory.App{{Name: "shop", Cells: []inventory.Cell{{Name: "c2", Hosts: cellHosts, Database: "shop_c2",
		DBNodes: []string{"shop-c2-db-1", "shop-c2-db-2"}, Formation: "shop_c2"}}}}
	return src, cellHosts
}

func runGuardedConverge(t *testing.T, src *Source, fl *fleet, guard GuardFunc) (*Report, error, string) {
	t.Helper()
	var out, errOut strings.Builder
	f := &cli.Factory{IO: cli.IO{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}, Getenv: func(string) string { return "" }}
	cmd := NewCmdConverge(f, func(ctx context.Context, o *Options) error {
		o.Source = func(context.Context, *Options) (*Source, error) { return src, nil }
		o.Connect = func(*inventory.Inventory) (Runner, func(), error) { return fl, func() {}, nil }
		o.Hold = NoLease
		o.Now = time.Now
		o.Guard = guard
		return Run(ctx, o)
	})
	cmd.SetArgs([]string{"--json"})
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	err := cmd.Execute()
	var rep Report
	if jerr := json.Unmarshal([]byte(out.String()), &rep); jerr != nil {
		t.Fatalf("%v: %s", jerr, out.String())
	}
	return &rep, err, errOut.String()
}

// TestConvergeGuardRefusesUncopiedCell: the guard's refusal keeps the
// dedicated cell's servers as they are (named, with the command to run),
// after every other host converged; exit 1. Allowed, they converge too.
func TestConvergeGuardRefusesUncopiedCell(t *testing.T) {
	src, cellHosts := dedicatedSource(t)
	fl := newFleet(t, sourceFor(t, nil))
	var asked []string
	refuse := func(_ context.Context, _ remote.Runner, inv *inventory.Inventory, hosts []string) []celldb.Refusal {
		asked = hosts
		return []celldb.Refusal{{App: "shop", Cell: "c2", Hosts: hosts, Reason: "cell shop/c2 is dedicated but ...: run belay db copy --cell shop/c2 --yes"}}
	}
	rep, err, progress := runGuardedConverge(t, src, fl, refuse)
	if err == nil || rep.OK {
		t.Fatalf("converge with a refused cell: err %v ok %v", err, rep.OK)
	}
	if !slices.Equal(asked, cellHosts) {
		t.Errorf("guard asked about %q, want %q", asked, cellHosts)
	}
	for i, h := range rep.Hosts {
		want := StatusChanged
		if slices.Contains(cellHosts, h.Host) {
			want = StatusRefused
			if i < len(rep.Hosts)-2 {
				t.Errorf("%s reported before other hosts: the guarded ones go last", h.Host)
			}
			if !strings.Contains(h.Error, "belay db copy --cell shop/c2") {
				t.Errorf("%s: error %q lacks the command", h.Host, h.Error)
			}
			if strings.Contains(fl.read(t, h.Host, "/home/deploy/.ssh/authorized_keys"), "AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl") {
				t.Errorf("%s was converged despite the refusal", h.Host)
			}
		}
		if h.Status != want {
			t.Errorf("%s: %s, want %s", h.Host, h.Status, want)
		}
	}
	if !strings.Contains(progress, "refused: cell shop/c2") {
		t.Errorf("progress lacks the refusal:\n%s", progress)
	}
	// The real guard, with data nodes it cannot read (this fleet runs no
	// root command): refused too, fail-safe.
	rep, _, _ = runGuardedConverge(t, src, fl, nil)
	for _, h := range rep.Hosts {
		if slices.Contains(cellHosts, h.Host) && (h.Status != StatusRefused || !strings.Contains(h.Error, "cannot be read")) {
			t.Errorf("real guard, unreadable nodes: %s %s %s", h.Host, h.Status, h.Error)
		}
	}
	// Allowed (copied, or a new cell): they converge like the others.
	rep, err, _ = runGuardedConverge(t, src, fl, func(context.Context, remote.Runner, *inventory.Inventory, []string) []celldb.Refusal { return nil })
	if err != nil || !rep.OK {
		t.Fatalf("allowed: %v %+v", err, rep)
	}
	for _, h := range cellHosts {
		if !strings.Contains(fl.read(t, h, "/home/deploy/.ssh/authorized_keys"), "AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl") {
			t.Errorf("%s not converged once allowed", h)
		}
	}
}
