package components

import (
	"fmt"
	"sort"

	"github.com/belay-sh/belay/config"
	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/topology"
)

// vrrpGroup is one HA group with its own floating IP: an app without cells,
// or an app's router tier or one of its cells.
type vrrpGroup struct {
	name  string
	hosts []string
}

// vrrpGroups lists app a's groups in registration order. The order only
// decides the order resources are registered in; their names (the group
// names) are what Pulumi tracks, so adding a cell adds a group and changes
// none.
func vrrpGroups(a config.App, t *topology.Topology) []vrrpGroup {
	if !a.HasCells() {
		return []vrrpGroup{{a.Name, t.AppHosts[a.Name]}}
	}
	rt := t.Routers[a.Name]
	out := []vrrpGroup{{rt.Group, rt.Hosts}}
	for _, c := range t.Cells[a.Name] {
		out = append(out, vrrpGroup{c.Group, c.Hosts})
	}
	return out
}

// entryGroup is the group the app's domains point at.
func entryGroup(a config.App) string { return topology.EntryGroup(a) }

// allGroups lists every group of the stack.
func allGroups(cfg *config.Config, t *topology.Topology) []string {
	var out []string
	for _, a := range cfg.Apps {
		for _, g := range vrrpGroups(a, t) {
			out = append(out, g.name)
		}
	}
	return out
}

// standbyHostsInOrder lists the standby site's app-side servers in the order
// they are created: apps' and cells' servers first, then the standby routers,
// whose user data names the standby cells' addresses.
func standbyHostsInOrder(cfg *config.Config, t *topology.Topology) []string {
	var out, routers []string
	for _, a := range cfg.Apps {
		if n, ok := t.StandbyApp[a.Name]; ok {
			out = append(out, n)
		}
		for _, c := range t.Cells[a.Name] {
			out = append(out, c.Standby)
		}
		if rt := t.Routers[a.Name]; rt != nil {
			routers = append(routers, rt.Standby)
		}
	}
	return append(out, routers...)
}

// checkCellGroups checks the provider tags/labels app i's router tier and
// cells derive, and the Hetzner spread group limit per group.
func checkCellGroups(cfg *config.Config, stack string, i int) []error {
	a := cfg.Apps[i]
	if !a.HasCells() {
		return nil
	}
	key := fmt.Sprintf("%s[%d]", config.KeyApps, i)
	var errs []error
	if err := checkGroupName(appGroup(stack, topology.RouterGroup(a.Name)), key+".name"); err != nil {
		errs = append(errs, err)
	}
	for j, c := range a.Cells {
		if err := checkGroupName(appGroup(stack, topology.CellGroup(a.Name, c.Name)), fmt.Sprintf("%s.cells[%d].name", key, j)); err != nil {
			errs = append(errs, err)
		}
	}
	if a.Router != nil && cfg.Sites.Primary.Provider == config.Hetzner && a.Router.Replicas > maxSpread {
		errs = append(errs, fmt.Errorf("%s.router.replicas: %d, a Hetzner spread placement group holds at most %d servers", key, a.Router.Replicas, maxSpread))
	}
	return errs
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// inventoryApp is app a's inventory entry from the resolved values ("vip/<group>").
func inventoryApp(a config.App, t *topology.Topology, r map[string]string) inventory.App {
	return t.InventoryApp(a, func(group string) string { return r["vip/"+group] })
}
