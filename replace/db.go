package replace

import (
	"fmt"
	"slices"
	"strings"

	"github.com/belay-sh/belay/config"
	"github.com/belay-sh/belay/hostcmd"
	"github.com/belay-sh/belay/inventory"
)

// SizeKey names a dedicated cell's databaseSize in the stack config.
type SizeKey struct {
	App       string `json:"app"`
	AppIndex  int    `json:"appIndex"`
	Cell      string `json:"cell"`
	CellIndex int    `json:"cellIndex"`
}

// Path is the key's Pulumi config path.
func (k *SizeKey) Path() string {
	return fmt.Sprintf("belay:apps[%d].cells[%d].databaseSize", k.AppIndex, k.CellIndex)
}

// dbPair is the two data nodes, named by role, after the refusals.
type dbPair struct {
	monitor, primary, secondary string
}

// pgPair is a PostgreSQL pair on the stack's monitor: the stack's own
// (database.nodes, formation "default") or a dedicated cell's
// (apps[].cells[].dbNodes, its formation).
type pgPair struct {
	// What names it in messages: "the formation" or "cell shop/c2's pair (formation shop_c2)".
	What      string
	Formation string
	Nodes     []string
}

// pairOf is the pair host is a data node of. A cell's formation must be a
// lowercase identifier: it is spliced into the monitor's sudoers-listed SQL.
func pairOf(inv *inventory.Inventory, h *inventory.Host) (pgPair, error) {
	if h.Cell == "" {
		return pgPair{What: "the formation", Formation: hostcmd.DefaultFormation, Nodes: inv.Database.Nodes}, nil
	}
	a := inv.App(h.App)
	var c *inventory.Cell
	if a != nil {
		c = a.Cell(h.Cell)
	}
	if c == nil || !c.Dedicated() {
		return pgPair{}, fmt.Errorf("inventory host %s: data node of cell %s/%s, which has no data nodes (apps[].cells[].dbNodes)", h.Name, h.App, h.Cell)
	}
	if err := hostcmd.CheckFormation(c.Formation); err != nil {
		return pgPair{}, fmt.Errorf("inventory apps.%s.cells.%s: %w", h.App, h.Cell, err)
	}
	return pgPair{What: fmt.Sprintf("cell %s/%s's pair (formation %s)", h.App, h.Cell, c.Formation), Formation: c.Formation, Nodes: c.DBNodes}, nil
}

// monitorArgv is a monitor query of formation as root argv.
func monitorArgv(build func(string) (string, error), formation string) []string {
	sql, err := build(formation)
	if err != nil {
		// pairOf checked the name; the default formation's is fixed.
		panic(err)
	}
	return hostcmd.MonitorPsql(sql)
}

// checkPair refuses unless the formation is whole: exactly one primary and
// one secondary, both healthy as the monitor sees them. Replacing or resizing
// a node of a broken formation would take the last node.
func checkPair(inv *inventory.Inventory, pair pgPair, f Facts, what string) (*dbPair, error) {
	nodes := pair.Nodes
	mon := inv.Database.Monitor
	if mon == "" || inv.Host(mon) == nil {
		return nil, fmt.Errorf("inventory database.monitor %q: %s reads the formation from the pg_auto_failover monitor", mon, what)
	}
	if len(nodes) != 2 {
		return nil, refuse("%s has %d data nodes; %s handles a pair (primary and secondary)", pair.What, len(nodes), what)
	}
	if f.DBError != "" {
		return nil, refuse("cannot read the formation from the monitor %s (%s): %s needs to know which node is the primary", mon, f.DBError, what)
	}
	pr := &dbPair{monitor: mon}
	for _, n := range nodes {
		st, ok := f.DB[n]
		if !ok {
			return nil, refuse("the monitor does not list %s: the formation is not whole", n)
		}
		if !st.Settled() || !healthyDB(st.Reported) {
			return nil, refuse("%s is %s: the formation is not whole (a primary and a secondary, both settled); replacing a node now would take the last one", n, st)
		}
		if st.Reported == "primary" {
			if pr.primary != "" {
				return nil, refuse("both %s and %s report primary", pr.primary, n)
			}
			pr.primary = n
		} else {
			pr.secondary = n
		}
	}
	if pr.primary == "" || pr.secondary == "" {
		return nil, refuse("the formation has no %s: expected one primary and one secondary", map[bool]string{true: "primary", false: "secondary"}[pr.primary == ""])
	}
	return pr, nil
}

// primaryStates are the pg_auto_failover states of a node that takes writes:
// wait_primary is a primary whose secondary is gone (the case of replacing a
// dead secondary), single a formation of one.
var primaryStates = []string{"primary", "wait_primary", "single"}

func isPrimary(st NodeState) bool {
	return slices.Contains(primaryStates, st.Reported) && slices.Contains(primaryStates, st.Goal)
}

// dbPeer refuses a data node's replacement that would take the last node:
// the other node must be a settled secondary (host is the primary: switch
// over first) or a primary (host is the secondary, or broken: replace it as
// it is). It reports whether host is the primary.
func dbPeer(inv *inventory.Inventory, pair pgPair, f Facts, host string) (mon, other string, hostIsPrimary bool, err error) {
	mon = inv.Database.Monitor
	if mon == "" || inv.Host(mon) == nil {
		return "", "", false, fmt.Errorf("inventory database.monitor %q: belay replace reads the formation from the pg_auto_failover monitor", mon)
	}
	if len(pair.Nodes) != 2 {
		return "", "", false, refuse("%s has %d data nodes; belay replace handles a pair (primary and secondary)", pair.What, len(pair.Nodes))
	}
	for _, n := range pair.Nodes {
		if n != host {
			other = n
		}
	}
	if f.DBError != "" {
		return "", "", false, refuse("cannot read the formation from the monitor %s (%s): belay replace needs to know which node is the primary", mon, f.DBError)
	}
	ost, ok := f.DB[other]
	if !ok {
		return "", "", false, refuse("the monitor does not list %s: replacing %s would take the last node", other, host)
	}
	hs, listed := f.DB[host]
	switch {
	case isPrimary(ost):
		if listed && isPrimary(hs) {
			return "", "", false, refuse("both %s and %s report a primary state (%s, %s)", host, other, hs, ost)
		}
		return mon, other, false, nil
	case listed && isPrimary(hs) && ost.Settled() && ost.Reported == "secondary":
		return mon, other, true, nil
	}
	return "", "", false, refuse("%s is %s: it could not take over from %s, so replacing %s would take the last node (%s)", other, ost, host, host, describe(f.DB))
}

// planDB: when host is the primary, switch over first (the monitor's
// perform_switchover) and wait until the other node accepts writes; stop the
// keeper cleanly; replace (the data volume is kept and re-attached); boot;
// check the same filesystem is mounted; converge; wait until the node is a
// secondary again and the primary streams to it. A broken node (not in the
// formation's primary or secondary state) is replaced the same way, as long
// as the other node is the primary.
//
// A dedicated cell's data node is replaced the same way within its own
// formation: its peer, the switchover and the rejoin are read and acted on
// with that formation's monitor queries.
func planDB(inv *inventory.Inventory, h *inventory.Host, f Facts, p *Plan) error {
	pair, err := pairOf(inv, h)
	if err != nil {
		return err
	}
	mon, other, isPrim, err := dbPeer(inv, pair, f, h.Name)
	if err != nil {
		return err
	}
	p.Apps = allApps(inv)
	if isPrim {
		p.Steps = append(p.Steps, switchover(mon, pair.Formation, h.Name, other)...)
	}
	p.Steps = append(p.Steps, rollNode(mon, pair.Formation, h.Name, other, func(s []Step) []Step {
		return append(s,
			Step{ID: "replace/" + h.Name, Kind: KindReplace, Host: h.Name, Timeout: ReplaceTimeout,
				Title: "replace the server " + h.Name + " (its data volume is kept and re-attached)"},
			bootStep(h.Name),
			Step{ID: "volume-kept/" + h.Name, Kind: KindSame, Host: h.Name, Command: VolumeUUIDCmd(PGHome), Fact: "volume/" + h.Name,
				Title: "the same filesystem is mounted at " + PGHome + " (the volume was re-attached, not reformatted)"},
			Step{ID: "converge/" + h.Name, Kind: KindConverge, Host: h.Name, Title: "bring " + h.Name + "'s files up to the stack config (belay converge)"})
	})...)
	if inv.Database.Synchronous {
		p.Notes = append(p.Notes, "synchronous replication: writes stall for a few seconds while the monitor notices the secondary is gone and the primary stops waiting for it")
	}
	return nil
}

// switchover moves formation's primary from old to next and waits until next accepts writes.
func switchover(mon, formation, old, next string) []Step {
	return []Step{
		{ID: "switchover/" + old, Kind: KindRoot, Host: mon, Argv: monitorArgv(hostcmd.FormationSwitchoverSQL, formation),
			Title: fmt.Sprintf("switch over: the monitor demotes %s once %s caught up and promotes %s (pg_autoctl perform switchover)", old, next, next)},
		{ID: "promoted/" + next, Kind: KindWait, Host: mon, Argv: monitorArgv(hostcmd.FormationNodesSQL, formation), Want: &Want{Node: next, States: primaryStates}, Timeout: PromoteTimeout,
			Title: next + " is the primary (the monitor's reported and goal state)"},
		{ID: "writable/" + next, Kind: KindWait, Host: next, Argv: hostcmd.Psql(hostcmd.InRecoverySQL), Expect: "f", Timeout: PromoteTimeout,
			Title: next + " accepts writes (not in recovery)"},
	}
}

// rollNode takes the secondary node out cleanly, lets change act on it, and
// waits until it is a secondary of primary again.
func rollNode(mon, formation, node, primary string, change func([]Step) []Step) []Step {
	s := []Step{
		{ID: "record-volume/" + node, Kind: KindRecord, Host: node, Command: VolumeUUIDCmd(PGHome), Fact: "volume/" + node,
			Title: "record the filesystem UUID of " + node + "'s data volume at " + PGHome},
		{ID: "stop-keeper/" + node, Kind: KindFence, Host: node, Argv: hostcmd.StopUnit(hostcmd.PGAutoFailoverUnit),
			Title: "stop pg_auto_failover (and PostgreSQL, cleanly) on the secondary " + node},
	}
	s = change(s)
	return append(s,
		Step{ID: "rejoin/" + node, Kind: KindWait, Host: mon, Argv: monitorArgv(hostcmd.FormationNodesSQL, formation), Want: &Want{Node: node, States: []string{"secondary"}}, Timeout: RejoinTimeout,
			Title: node + " is a secondary again (the monitor's reported and goal state: caught up)"},
		Step{ID: "streaming/" + primary, Kind: KindWait, Host: primary, Argv: hostcmd.Psql(hostcmd.StreamingReplicasSQL), Expect: "1", Timeout: 5 * 60e9,
			Title: "the primary " + primary + " streams to its replica"})
}

// PlanResize returns the rolling resize of the data nodes to size: the
// secondary first (targeted up of that server alone), a switchover, then the
// old primary. size is recorded in the stack config first, so later plain
// `pulumi up` runs see no difference.
func PlanResize(inv *inventory.Inventory, size string, f Facts) (*Plan, error) {
	pair := pgPair{What: "the formation", Formation: hostcmd.DefaultFormation, Nodes: inv.Database.Nodes}
	return planResize(inv, pair, nil, size, f)
}

// PlanResizeCell is PlanResize for the dedicated pair of app's cell, within
// its formation; the size is recorded as that cell's databaseSize.
func PlanResizeCell(inv *inventory.Inventory, app, cell, size string, f Facts) (*Plan, error) {
	ai := slices.IndexFunc(inv.Apps, func(a inventory.App) bool { return a.Name == app })
	if ai < 0 {
		return nil, fmt.Errorf("--cell %s/%s: no app %s in the inventory", app, cell, app)
	}
	ci := slices.IndexFunc(inv.Apps[ai].Cells, func(c inventory.Cell) bool { return c.Name == cell })
	if ci < 0 {
		return nil, fmt.Errorf("--cell %s/%s: app %s has no cell %s", app, cell, app, cell)
	}
	c := inv.Apps[ai].Cells[ci]
	if !c.Dedicated() {
		return nil, refuse("cell %s/%s has no PostgreSQL pair of its own (its database is on the stack's pair: belay db resize without --cell)", app, cell)
	}
	pair, err := pairOf(inv, inv.Host(c.DBNodes[0]))
	if err != nil {
		return nil, err
	}
	return planResize(inv, pair, &SizeKey{App: app, AppIndex: ai, Cell: cell, CellIndex: ci}, size, f)
}

func planResize(inv *inventory.Inventory, pair pgPair, key *SizeKey, size string, f Facts) (*Plan, error) {
	site, ok := inv.Sites[inventory.Primary]
	if !ok {
		return nil, fmt.Errorf("inventory sites.primary: missing, expected the database's site")
	}
	prov := config.Provider(site.Provider)
	if prov == config.Lab {
		return nil, refuse("the lab's machines have no server size: db resize acts on a cloud stack")
	}
	if r := config.Deprecated(prov, size); r != "" {
		return nil, fmt.Errorf("--size: %q is deprecated at %s, use %s", size, prov, r)
	}
	if sizes := config.Sizes(prov, site.Region); !slices.Contains(sizes, size) {
		return nil, fmt.Errorf("--size: %q, expected a %s size orderable in %s: %s", size, prov, site.Region, strings.Join(sizes, ", "))
	}
	pr, err := checkPair(inv, pair, f, "belay db resize")
	if err != nil {
		return nil, err
	}
	p := &Plan{Stack: inv.Stack, Action: ActionResize, Size: size, Role: string(inventory.RoleDB), Apps: allApps(inv)}
	resize := func(node string) func([]Step) []Step {
		return func(s []Step) []Step {
			return append(s,
				Step{ID: "resize/" + node, Kind: KindResize, Host: node, Size: size, Timeout: ReplaceTimeout,
					Title: fmt.Sprintf("resize %s to %s (a targeted up of that server alone: powered off, resized, started)", node, size)},
				bootStep(node),
				Step{ID: "volume-kept/" + node, Kind: KindSame, Host: node, Command: VolumeUUIDCmd(PGHome), Fact: "volume/" + node,
					Title: "the same filesystem is mounted at " + PGHome},
				Step{ID: "start-keeper/" + node, Kind: KindRoot, Host: node, Argv: hostcmd.StartUnit(hostcmd.PGAutoFailoverUnit),
					Title: "start pg_auto_failover on " + node + " (it was stopped before the power-off)"})
		}
	}
	path := "belay:database.size"
	if key != nil {
		path = key.Path()
	}
	p.Steps = append(p.Steps, Step{ID: "set-size", Kind: KindSetSize, Size: size, SizeKey: key,
		Title: "record " + path + " = " + size + " in the stack config (later plain ups see no difference)"})
	fm := pair.Formation
	p.Steps = append(p.Steps, rollNode(pr.monitor, fm, pr.secondary, pr.primary, resize(pr.secondary))...)
	p.Steps = append(p.Steps, switchover(pr.monitor, fm, pr.primary, pr.secondary)...)
	p.Steps = append(p.Steps, rollNode(pr.monitor, fm, pr.primary, pr.secondary, resize(pr.primary))...)
	p.Notes = append(p.Notes,
		"db-standby and db-monitor keep their sizes (belay:database.standbySize, monitorSize)",
		fmt.Sprintf("%s is the primary at the end (it was the secondary): a later switchover moves it back if you care", pr.secondary))
	return p, nil
}
