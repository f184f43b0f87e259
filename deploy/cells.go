package deploy

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"

	"github.com/belay-sh/belay/deploy/run"
	"github.com/belay-sh/belay/inventory"
)

// A cell of an app is deployed by the same pipeline as an app without cells:
// the pipeline reads the app's hosts, standby server and VIP from the
// inventory, so each cell gets an inventory whose app entry IS the cell (its
// hosts, its standby server, its floating IP). Its releases, journal and
// lease live under /srv/APP on the cell's own servers, like any app's.

// CellInventory returns inv as the per-app pipeline must see cell of app: the
// app entry's hosts, standby and VIP are the cell's, and it has no cells or
// router. inv itself is not changed.
func CellInventory(inv *inventory.Inventory, app, cell string) (*inventory.Inventory, error) {
	a := inv.App(app)
	if a == nil {
		return nil, fmt.Errorf("app %q: not in the inventory", app)
	}
	c := a.Cell(cell)
	if c == nil {
		return nil, fmt.Errorf("app %s: no cell %q (cells: %s)", app, cell, strings.Join(cellNames(a), ", "))
	}
	if len(c.Hosts) == 0 {
		return nil, fmt.Errorf("app %s cell %s: the inventory lists no hosts", app, cell)
	}
	out := *inv
	out.Apps = make([]inventory.App, len(inv.Apps))
	copy(out.Apps, inv.Apps)
	for i := range out.Apps {
		if out.Apps[i].Name != app {
			continue
		}
		x := &out.Apps[i]
		x.Hosts = append([]string(nil), c.Hosts...)
		x.Standby, x.VIP = c.Standby, c.VIP
		x.Cells, x.Router = nil, nil
		// The router tier terminates HTTPS; a cell serves plain HTTP.
		x.TLS = ""
	}
	return &out, nil
}

func cellNames(a *inventory.App) []string {
	var out []string
	for _, c := range a.Cells {
		out = append(out, c.Name)
	}
	return out
}

// ForCell returns a Deployer for one cell of d's app: the same settings, the
// cell's inventory view, and its own Runner (cells of one wave run at once)
// whose progress lines are prefixed with the cell's name.
func (d *Deployer) ForCell(cell string) (*Deployer, error) {
	inv, err := CellInventory(d.Inv, d.App, cell)
	if err != nil {
		return nil, err
	}
	cd := *d
	cd.Inv, cd.held, cd.Cell = inv, nil, cell
	if d.Runner != nil {
		r := d.Runner
		cd.Runner = &run.Runner{Pool: r.Pool, Layout: r.Layout, Artifact: r.Artifact, Env: r.Env, OnVerdict: r.OnVerdict,
			Progress: r.Progress, Parallel: r.Parallel, Judge: r.Judge, Now: r.Now, Sleep: r.Sleep}
		if r.Progress != nil {
			if d.progressMu == nil {
				d.progressMu = &sync.Mutex{}
			}
			cd.Runner.Progress = &prefixWriter{w: r.Progress, prefix: "cell " + cell + ": ", mu: d.progressMu}
		}
	}
	return &cd, nil
}

// prefixWriter prefixes every line with the cell's name. The runners of
// several cells share one terminal: each Write (one progress line) goes out
// whole under the parent Deployer's lock, shared by every cell's writer.
type prefixWriter struct {
	w      io.Writer
	prefix string
	mu     *sync.Mutex
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	lines := strings.SplitAfter(string(b), "\n")
	var sb strings.Builder
	for _, l := range lines {
		if l != "" {
			sb.WriteString(p.prefix + l)
		}
	}
	if _, err := io.WriteString(p.w, sb.String()); err != nil {
		return 0, err
	}
	return len(b), nil
}

// CellsOptions choose the cells of a deploy and their order.
type CellsOptions struct {
	// Cells limits the deploy to these cells (--cells); empty: every cell.
	Cells []string
	// CanaryCell goes first (--canary-cell); "": the first of Cells, or the
	// app's first cell.
	CanaryCell string
	// WaveSize is how many cells after the canary cell roll out at once
	// (--wave-size, default 1).
	WaveSize int
}

// Waves orders an app's cells for a deploy: the canary cell alone, then the
// others WaveSize at a time (in --cells order, else the inventory's). Bad
// input is an error naming the flag.
func Waves(a *inventory.App, o CellsOptions) ([][]string, error) {
	if len(a.Cells) == 0 {
		if len(o.Cells) > 0 {
			return nil, fmt.Errorf("--cells: app %s has no cells", a.Name)
		}
		if o.CanaryCell != "" {
			return nil, fmt.Errorf("--canary-cell: app %s has no cells", a.Name)
		}
		return nil, fmt.Errorf("app %s has no cells", a.Name)
	}
	if o.WaveSize < 0 {
		return nil, fmt.Errorf("--wave-size %d: expected 1 or more cells per wave", o.WaveSize)
	}
	size := o.WaveSize
	if size == 0 {
		size = 1
	}
	known := cellNames(a)
	chosen := known
	if len(o.Cells) > 0 {
		seen := map[string]bool{}
		chosen = nil
		for _, c := range o.Cells {
			c = strings.TrimSpace(c)
			switch {
			case c == "":
				return nil, fmt.Errorf("--cells: empty cell name, expected a comma-separated list of %s", strings.Join(known, ", "))
			case a.Cell(c) == nil:
				return nil, fmt.Errorf("--cells: app %s has no cell %q (cells: %s)", a.Name, c, strings.Join(known, ", "))
			case seen[c]:
				return nil, fmt.Errorf("--cells: cell %q named twice", c)
			}
			seen[c] = true
			chosen = append(chosen, c)
		}
	}
	canary := chosen[0]
	if o.CanaryCell != "" {
		if a.Cell(o.CanaryCell) == nil {
			return nil, fmt.Errorf("--canary-cell: app %s has no cell %q (cells: %s)", a.Name, o.CanaryCell, strings.Join(known, ", "))
		}
		found := false
		for _, c := range chosen {
			found = found || c == o.CanaryCell
		}
		if !found {
			return nil, fmt.Errorf("--canary-cell %s: not among --cells %s", o.CanaryCell, strings.Join(chosen, ","))
		}
		canary = o.CanaryCell
	}
	waves := [][]string{{canary}}
	var wave []string
	for _, c := range chosen {
		if c == canary {
			continue
		}
		wave = append(wave, c)
		if len(wave) == size {
			waves = append(waves, wave)
			wave = nil
		}
	}
	if len(wave) > 0 {
		waves = append(waves, wave)
	}
	return waves, nil
}

// flatten lists the cells of waves in name order (the order leases are taken in).
func flatten(waves [][]string) []string {
	var out []string
	for _, w := range waves {
		out = append(out, w...)
	}
	sort.Strings(out)
	return out
}
