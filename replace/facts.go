package replace

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/belay-sh/belay/hostcmd"
	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/remote"
)

// NodeState is one data node as the pg_auto_failover monitor sees it.
type NodeState struct {
	Reported string `json:"reported"`
	Goal     string `json:"goal"`
}

// Settled reports whether the node reached its goal state.
func (s NodeState) Settled() bool { return s.Reported == s.Goal }

func (s NodeState) String() string {
	if s.Settled() {
		return s.Reported
	}
	return s.Reported + " (going " + s.Goal + ")"
}

// Facts are what the plans depend on beyond the inventory, observed on the
// hosts just before planning (Observe) or given by a test.
type Facts struct {
	// AppHealthy: app servers whose keepalived, nginx and app health check pass.
	AppHealthy map[string]bool `json:"appHealthy,omitempty"`
	// AppWhy says why an app server is not healthy.
	AppWhy map[string]string `json:"appWhy,omitempty"`
	// StandbyServing: standby app servers whose app runs (the standby site serves).
	StandbyServing map[string]bool `json:"standbyServing,omitempty"`
	// Active: what app servers run (their current, canary and journal), read
	// on the servers a new app server's release would be copied from.
	Active map[string]Active `json:"active,omitempty"`
	// DB are the data nodes' states from the monitor; DBError why they are unknown.
	DB      map[string]NodeState `json:"db,omitempty"`
	DBError string               `json:"dbError,omitempty"`
}

func (f Facts) why(hosts []string) string {
	var out []string
	for _, h := range hosts {
		w := f.AppWhy[h]
		if w == "" {
			w = "not healthy"
		}
		out = append(out, h+": "+w)
	}
	return strings.Join(out, "; ")
}

// ParseNodeStates reads hostcmd.NodeStatesSQL's output ("name|reported|goal" lines).
func ParseNodeStates(out string) (map[string]NodeState, error) {
	m := map[string]NodeState{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		f := strings.Split(line, "|")
		if len(f) != 3 || f[0] == "" {
			return nil, fmt.Errorf("monitor node states: line %q, expected name|reported state|goal state", line)
		}
		m[f[0]] = NodeState{Reported: f[1], Goal: f[2]}
	}
	if len(m) == 0 {
		return nil, fmt.Errorf("monitor node states: empty, expected the formation's nodes")
	}
	return m, nil
}

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

// Observe gathers the facts the plan of host needs (or of a resize, host ""):
// read-only commands only.
func Observe(ctx context.Context, r remote.Runner, inv *inventory.Inventory, host string) Facts {
	f := Facts{AppHealthy: map[string]bool{}, AppWhy: map[string]string{}, StandbyServing: map[string]bool{}}
	h := inv.Host(host)
	if host == "" || (h != nil && h.Has(inventory.RoleDB)) {
		formation := hostcmd.DefaultFormation
		if h != nil && h.Cell != "" {
			// A dedicated cell's data node: its own formation's nodes.
			pair, err := pairOf(inv, h)
			if err != nil {
				f.DBError = err.Error()
				return f
			}
			formation = pair.Formation
		}
		f.DB, f.DBError = observeDB(ctx, r, inv, formation)
	}
	if h == nil {
		return f
	}
	switch {
	case h.Has(inventory.RoleApp):
		g, err := groupOf(inv, h)
		if err != nil {
			return f
		}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, x := range others(g.Hosts, host) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				_, err := r.Run(cctx, x, AppHealthCmd(g.App))
				mu.Lock()
				defer mu.Unlock()
				f.AppHealthy[x] = err == nil
				if err != nil {
					f.AppWhy[x] = err.Error()
				}
			}()
		}
		wg.Wait()
		observeActive(ctx, r, g.App.Name, others(g.Hosts, host), &f)
	case h.Has(inventory.RoleStandbyApp):
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		// An unreachable standby app server serves nothing either.
		if _, err := r.Run(cctx, host, "systemctl is-active --quiet "+"belay-app@"+h.App+".service"); err == nil {
			f.StandbyServing[host] = true
		}
		if a := inv.App(h.App); a != nil {
			srcs := standbySources(a, host)
			for _, x := range srcs {
				cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				_, err := r.Run(cctx, x, AppHealthCmd(a))
				cancel()
				f.AppHealthy[x] = err == nil
				if err != nil {
					f.AppWhy[x] = err.Error()
				}
			}
			observeActive(ctx, r, a.Name, srcs, &f)
		}
	}
	return f
}

// observeActive reads what app's servers hosts run (ActiveCmd).
func observeActive(ctx context.Context, r remote.Runner, app string, hosts []string, f *Facts) {
	if f.Active == nil {
		f.Active = map[string]Active{}
	}
	for _, x := range hosts {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		out, err := r.Run(cctx, x, ActiveCmd(app))
		cancel()
		if err != nil {
			f.Active[x] = Active{Err: err.Error()}
			continue
		}
		f.Active[x] = ParseActive(string(out))
	}
}

func observeDB(ctx context.Context, r remote.Runner, inv *inventory.Inventory, formation string) (map[string]NodeState, string) {
	mon := inv.Database.Monitor
	if mon == "" {
		return nil, "no monitor in the inventory"
	}
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	out, err := r.RunRoot(cctx, mon, monitorArgv(hostcmd.FormationNodesSQL, formation)...)
	if err != nil {
		return nil, err.Error()
	}
	m, err := ParseNodeStates(string(out))
	if err != nil {
		return nil, err.Error()
	}
	return m, ""
}

// describe lists node states for messages, sorted by name.
func describe(m map[string]NodeState) string {
	var names []string
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []string
	for _, n := range names {
		out = append(out, n+" "+m[n].String())
	}
	return strings.Join(out, ", ")
}
