package deploy

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
)

// CellState is one cell of an app as `belay status` shows it.
type CellState struct {
	Cell string `json:"cell"`
	VIP  string `json:"vip,omitempty"`
	// VIPHolders are the cell's servers that hold its floating IP: one when
	// healthy, none when keepalived lost it, two in a split brain.
	VIPHolders []string `json:"vipHolders"`
	Hosts      []string `json:"hosts"`
	// Release is what the cell's app servers run ("" while they disagree).
	Release string `json:"release"`
	Healthy bool   `json:"healthy"`
	// Problems say why a cell is not healthy.
	Problems []string     `json:"problems,omitempty"`
	States   []*HostState `json:"states"`
}

// VIPProbeCommand lists a host's IPv4 addresses (the deploy user may read them).
const VIPProbeCommand = "ip -o -4 addr show"

// holdsVIP reports whether `ip -o -4 addr show` output lists vip.
func holdsVIP(out, vip string) bool {
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "inet" && (f[i+1] == vip || strings.HasPrefix(f[i+1], vip+"/")) {
				return true
			}
		}
	}
	return false
}

// CellStates reads every cell of d's app: each host's state (as States),
// which server holds the cell's VIP, and whether the cell is healthy.
func (d *Deployer) CellStates(ctx context.Context) ([]CellState, error) {
	app := d.Inv.App(d.App)
	if app == nil {
		return nil, fmt.Errorf("app %q: not in the inventory", d.App)
	}
	if len(app.Cells) == 0 {
		return nil, fmt.Errorf("app %s has no cells", d.App)
	}
	out := make([]CellState, len(app.Cells))
	var wg sync.WaitGroup
	errs := make([]error, len(app.Cells))
	for i, c := range app.Cells {
		cd, err := d.ForCell(c.Name)
		if err != nil {
			return nil, err
		}
		out[i] = CellState{Cell: c.Name, VIP: c.VIP, Hosts: append([]string(nil), c.Hosts...), VIPHolders: []string{}}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cs := &out[i]
			cs.States, errs[i] = cd.States(ctx)
			if c.VIP != "" {
				cs.VIPHolders = d.vipHolders(ctx, c.Hosts, c.VIP)
			}
			judgeCell(cs)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("cell %s: %w", out[i].Cell, err)
		}
	}
	return out, nil
}

// vipHolders asks each host whether it holds vip; an unreachable host
// counts as not holding it (its state row says why).
func (d *Deployer) vipHolders(ctx context.Context, hosts []string, vip string) []string {
	var mu sync.Mutex
	var wg sync.WaitGroup
	held := []string{}
	for _, h := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			c, err := d.Pool.Get(ctx, h)
			if err != nil {
				return
			}
			res, err := c.Run(ctx, VIPProbeCommand, nil)
			if err != nil || !holdsVIP(string(res.Stdout), vip) {
				return
			}
			mu.Lock()
			held = append(held, h)
			mu.Unlock()
		}()
	}
	wg.Wait()
	sort.Strings(held)
	return held
}

// judgeCell sets Release, Healthy and Problems from the hosts' states: every
// server readable, the app servers agreeing on one release with the stable
// unit active and answering its health path, and exactly one VIP holder.
func judgeCell(cs *CellState) {
	var probs []string
	rels := map[string][]string{}
	for _, s := range cs.States {
		if s.Error != "" {
			probs = append(probs, fmt.Sprintf("%s unreadable: %s", s.Host, s.Error))
			continue
		}
		if s.Standby {
			continue // the standby site's server serves nothing until a site switch
		}
		rels[s.Current] = append(rels[s.Current], s.Host)
		if s.Stable != "active" {
			probs = append(probs, fmt.Sprintf("%s: stable unit %s", s.Host, orNone(s.Stable)))
		}
		if !strings.HasPrefix(s.Health, "2") && !strings.HasPrefix(s.Health, "3") {
			probs = append(probs, fmt.Sprintf("%s: health check answered %s", s.Host, orNone(s.Health)))
		}
	}
	switch len(rels) {
	case 0:
	case 1:
		for r := range rels {
			cs.Release = r
		}
		if cs.Release == "" {
			probs = append(probs, "no release deployed")
		}
	default:
		var parts []string
		for _, r := range sortedKeys(rels) {
			parts = append(parts, fmt.Sprintf("%s on %s", orNone(r), strings.Join(rels[r], ", ")))
		}
		probs = append(probs, "servers disagree: "+strings.Join(parts, "; "))
	}
	if cs.VIP != "" {
		switch len(cs.VIPHolders) {
		case 1:
		case 0:
			probs = append(probs, "no server holds the VIP "+cs.VIP)
		default:
			probs = append(probs, fmt.Sprintf("VIP %s held by %d servers (%s)", cs.VIP, len(cs.VIPHolders), strings.Join(cs.VIPHolders, ", ")))
		}
	}
	cs.Problems, cs.Healthy = probs, len(probs) == 0
}
