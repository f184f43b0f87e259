package cells

// Per-cell database health in `belay cells`. The router probes each cell's
// entry point, but it is not admitted to a dedicated cell's pair (nor should
// it learn the databases' passwords), so the database's health comes from
// the pg_auto_failover monitor: the formation that holds the cell's database
// ("default" for a cell on the stack's pair, <app>_<cell> for its own pair),
// read with the monitor's fixed, sudoers-listed query for that formation
// (hostcmd.FormationNodesSQL) over the same SSH channel, as root via `sudo -n`.
// No secret is read and nothing is written.

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/belay-sh/belay/hostcmd"
	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/remote"
	"github.com/belay-sh/belay/replace"
	"github.com/belay-sh/belay/router/admin"
)

// RootRunner runs argv as root on host and returns its standard output.
type RootRunner func(ctx context.Context, host string, argv []string) ([]byte, error)

// poolRoot runs argv through `sudo -n` over the pool's pinned SSH channel.
func (o *Options) poolRoot(ctx context.Context, host string, argv []string) ([]byte, error) {
	c, err := o.pool.Get(ctx, host)
	if err != nil {
		return nil, err
	}
	res, err := c.Run(ctx, remote.SudoCommand(argv), nil)
	if err != nil {
		return nil, err
	}
	return res.Stdout, nil
}

// cellFormation is the formation holding app's cell's database.
func cellFormation(inv *inventory.Inventory, app, cell string) (kind, formation string, err error) {
	a := inv.App(app)
	if a == nil {
		return "", "", fmt.Errorf("app %s is not in the inventory", app)
	}
	c := a.Cell(cell)
	if c == nil {
		return "", "", fmt.Errorf("cell %s is not a cell of app %s in the inventory", cell, app)
	}
	if !c.Dedicated() {
		return "shared", hostcmd.DefaultFormation, nil
	}
	return "dedicated", c.Formation, nil
}

// fillDatabases sets each cell's Database from the monitor, one query per
// formation (the shared cells share "default"). It reports whether every
// cell's database is up.
func fillDatabases(ctx context.Context, inv *inventory.Inventory, app string, cells []admin.CellInfo, run RootRunner) bool {
	mon := inv.Database.Monitor
	seen := map[string]*admin.DBHealth{}
	ok := true
	for i, c := range cells {
		kind, formation, err := cellFormation(inv, app, c.Name)
		if err != nil {
			cells[i].Database = &admin.DBHealth{Health: "unknown: " + err.Error()}
			ok = false
			continue
		}
		h, done := seen[formation]
		if !done {
			h = formationHealth(ctx, mon, formation, run)
			seen[formation] = h
		}
		x := *h
		x.Kind = kind
		cells[i].Database = &x
		ok = ok && x.Health == "up"
	}
	return ok
}

// formationHealth reads formation's nodes on the monitor and judges them.
func formationHealth(ctx context.Context, mon, formation string, run RootRunner) *admin.DBHealth {
	h := &admin.DBHealth{Formation: formation}
	sql, err := hostcmd.FormationNodesSQL(formation)
	if err != nil {
		h.Health = "unknown: inventory: " + err.Error()
		return h
	}
	if mon == "" {
		h.Health = "unknown: the inventory names no pg_auto_failover monitor (database.monitor)"
		return h
	}
	out, err := run(ctx, mon, hostcmd.MonitorPsql(sql))
	if err != nil {
		h.Health = "unknown: monitor " + mon + ": " + firstLine(err.Error())
		return h
	}
	if strings.TrimSpace(string(out)) == "" {
		h.Health = "down: the monitor lists no node in formation " + formation
		return h
	}
	states, err := replace.ParseNodeStates(string(out))
	if err != nil {
		h.Health = "unknown: " + err.Error()
		return h
	}
	h.Nodes = map[string]string{}
	for n, st := range states {
		h.Nodes[n] = st.String()
	}
	h.Health = judgeFormation(states)
	return h
}

// writableStates are the pg_auto_failover states of a node taking writes.
var writableStates = []string{"primary", "wait_primary", "single"}

// judgeFormation: up with one primary and one settled secondary; degraded
// when the primary has no failover target; down without a primary (or with
// two).
func judgeFormation(states map[string]replace.NodeState) string {
	var names []string
	for n := range states {
		names = append(names, n)
	}
	sort.Strings(names)
	var primaries, secondaries []string
	for _, n := range names {
		st := states[n]
		switch {
		case slices.Contains(writableStates, st.Reported) && slices.Contains(writableStates, st.Goal):
			primaries = append(primaries, n)
		case st.Settled() && st.Reported == "secondary":
			secondaries = append(secondaries, n)
		}
	}
	switch {
	case len(primaries) == 0:
		return "down: no primary (" + describe(names, states) + ")"
	case len(primaries) > 1:
		return "down: " + strings.Join(primaries, " and ") + " both take writes"
	case len(secondaries) == 0:
		return "degraded: " + primaries[0] + " is " + states[primaries[0]].String() + " with no secondary (" + describe(names, states) + ")"
	}
	return "up"
}

func describe(names []string, states map[string]replace.NodeState) string {
	var out []string
	for _, n := range names {
		out = append(out, n+" "+states[n].String())
	}
	return strings.Join(out, ", ")
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}
