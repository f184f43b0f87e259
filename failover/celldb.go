package failover

import (
	"fmt"
	"time"

	"github.com/belay-sh/belay/hostcmd"
	"github.com/belay-sh/belay/inventory"
)

// A dedicated cell (cells[].database: dedicated) has its own PostgreSQL
// pair in its own pg_auto_failover formation on the stack's monitor, backed
// up in its own pgBackRest stanza, and its own standby-site database
// restoring that stanza (docs/cells.md, "Dedicated database"). A site switch
// moves it exactly like the stack's shared cluster, beside it: fenced with
// the stack's nodes, promoted before the cell's standby server starts; on the
// way back made read-only, archived and stopped with the stack's standby, its
// pair reseeded from its stanza and re-registered in its formation, and its
// standby re-restored from the full backup that covers every stanza.

// cellDB is one dedicated cell's database as the site switch sees it.
type cellDB struct {
	app, cell string
	// nodes are the primary-site pair, the first reseeded as the primary.
	nodes     []string
	formation string
	// standby is the cell's standby-site database.
	standby string
}

// label names the cell in step titles.
func (c cellDB) label() string { return c.app + "/" + c.cell }

// cellDBs lists inv's dedicated cells in app and cell order, refusing one
// whose switch could not be planned (the error names the inventory field).
func cellDBs(inv *inventory.Inventory) ([]cellDB, error) {
	var out []cellDB
	for _, a := range inv.Apps {
		for _, c := range a.Cells {
			if !c.Dedicated() {
				continue
			}
			f := fmt.Sprintf("inventory apps[%s].cells[%s]", a.Name, c.Name)
			if c.StandbyDB == "" || inv.Host(c.StandbyDB) == nil {
				return nil, fmt.Errorf("%s.standbyDB %q: the cell has its own database pair but no standby-site database (converge the stack with this belay: it provisions <app>-<cell>-standby-db)", f, c.StandbyDB)
			}
			for _, n := range c.DBNodes {
				if inv.Host(n) == nil {
					return nil, fmt.Errorf("%s.dbNodes: %q is not a host of the inventory", f, n)
				}
			}
			if err := hostcmd.CheckFormation(c.Formation); err != nil {
				return nil, fmt.Errorf("%s.formation: %w", f, err)
			}
			out = append(out, cellDB{app: a.Name, cell: c.Name, nodes: c.DBNodes, formation: c.Formation, standby: c.StandbyDB})
		}
	}
	return out, nil
}

// cellStandbyChecks are the read-only checks of every cell's standby
// database before anything is fenced (Preflight runs them too).
func cellStandbyChecks(cells []cellDB, add func(Step)) {
	for _, c := range cells {
		add(Step{ID: "check-standby-db/" + c.standby, Kind: KindRoot, Host: c.standby,
			Title: fmt.Sprintf("the standby database of cell %s answers (in recovery, or already promoted by an interrupted switch)", c.label()), Argv: hostcmd.Psql(hostcmd.InRecoverySQL)})
	}
}

// cellFenceHosts are the cells' data nodes, fenced with the stack's.
func cellFenceHosts(cells []cellDB) []string {
	var out []string
	for _, c := range cells {
		out = append(out, c.nodes...)
	}
	return out
}

// cellPromoteSteps promote each cell's standby database, as the stack's: its
// RPO edge recorded first, then pg_promote and the check that it writes.
func cellPromoteSteps(cells []cellDB, add func(Step)) {
	for _, c := range cells {
		h := c.standby
		add(Step{ID: "rpo/" + h, Kind: KindRoot, Host: h, Title: fmt.Sprintf("record the last transaction the standby database of cell %s replayed (its cross-site RPO edge)", c.label()), Argv: hostcmd.Psql(hostcmd.ReplayTimestampSQL)})
		add(Step{ID: "promote-db/" + h, Kind: KindRoot, Host: h, Title: fmt.Sprintf("promote the standby database of cell %s (pg_promote, waits until it accepts writes)", c.label()), Argv: hostcmd.Psql(hostcmd.PromoteSQL), Expect: "t"})
		add(Step{ID: "check-promoted/" + h, Kind: KindRoot, Host: h, Title: fmt.Sprintf("the standby database of cell %s accepts writes", c.label()), Argv: hostcmd.Psql(hostcmd.InRecoverySQL), Expect: "f"})
	}
}

// cellServingChecks open the way back: each cell's standby database was
// promoted (the standby site serves the cell).
func cellServingChecks(cells []cellDB, add func(Step)) {
	for _, c := range cells {
		add(Step{ID: "check-standby-serving/" + c.standby, Kind: KindRoot, Host: c.standby, Title: fmt.Sprintf("the standby database of cell %s is promoted", c.label()), Argv: hostcmd.Psql(hostcmd.InRecoverySQL), Expect: "f"})
	}
}

// cellStandbyStopSteps end each cell's standby database's writes, as the
// stack's: read-only, a restore point after its last write with everything
// archived to the cell's stanza, stopped. The cell's standby server stopped
// before (stop-standby-app): nothing writes any more.
func cellStandbyStopSteps(cells []cellDB, add func(Step)) {
	for _, c := range cells {
		h := c.standby
		add(Step{ID: "readonly-standby-db/" + h, Kind: KindRoot, Host: h, Title: fmt.Sprintf("make the standby database of cell %s refuse writes (default_transaction_read_only)", c.label()), Argv: hostcmd.ReadOnly()})
		add(Step{ID: "archive-standby-db/" + h, Kind: KindRoot, Host: h, Timeout: 10 * time.Minute, Title: fmt.Sprintf("end the sessions of cell %s's standby database, mark its last write with a restore point, push its timeline's history file and wait until its stanza has all of it", c.label()), Argv: hostcmd.FinalArchive()})
		add(Step{ID: "stop-standby-db/" + h, Kind: KindRoot, Host: h, Title: fmt.Sprintf("stop the standby database of cell %s", c.label()), Argv: hostcmd.StopUnit(hostcmd.StandbyDBUnit)})
	}
}

// cellReseedSteps re-create each cell's pair around the data its standby
// database wrote. They need the monitor reseeded (reseed-monitor, earlier)
// and nothing of the stack's pair: belay-db-setup re-creates the cell's
// formation on the empty monitor before registering (ensure_formation runs
// whenever the node is not registered, which the reseed forgets), and the
// formation, its nodes and its stanza are the cell's own. They follow the
// stack's check-formation only because the steps run one at a time: the
// stack's pair holds the mapping every router needs and the shared cells'
// data, so a failure there stops the way back before hours of a cell's
// restore. Each cell's formation is checked before any app server starts.
func cellReseedSteps(cells []cellDB, mon string, add func(Step)) error {
	for _, c := range cells {
		add(Step{ID: "reseed-primary/" + c.nodes[0], Kind: KindRoot, Host: c.nodes[0], Timeout: 3 * time.Hour,
			Title: fmt.Sprintf("restore %s from the repository (stanza %s) up to the restore point of cell %s's standby database and register it as the new primary of formation %s", c.nodes[0], c.formation, c.label(), c.formation), Argv: hostcmd.Reseed(hostcmd.ReseedPrimary)})
		for _, n := range c.nodes[1:] {
			add(Step{ID: "reseed-replica/" + n, Kind: KindRoot, Host: n, Timeout: 3 * time.Hour, Title: "empty " + n + " and re-clone it from " + c.nodes[0] + " as the secondary of formation " + c.formation, Argv: hostcmd.Reseed(hostcmd.ReseedReplica)})
		}
		sql, err := hostcmd.FormationStateSQL(c.formation)
		if err != nil {
			return fmt.Errorf("inventory apps[%s].cells[%s].formation: %w", c.app, c.cell, err)
		}
		add(Step{ID: "check-formation/" + c.formation, Kind: KindRoot, Host: mon, Retry: true, Timeout: 10 * time.Minute,
			Title: fmt.Sprintf("the monitor reports one primary and %d secondar%s in formation %s (cell %s)", len(c.nodes)-1, map[bool]string{true: "y", false: "ies"}[len(c.nodes) == 2], c.formation, c.label()),
			Argv:  hostcmd.MonitorPsql(sql), Expect: fmt.Sprintf("1/%d", len(c.nodes)-1)})
	}
	return nil
}

// cellResyncSteps make each cell's standby database a standby again, from
// the full backup the backup-full step took (belay-backup full backs up
// every stanza in turn).
func cellResyncSteps(cells []cellDB, add func(Step)) {
	for _, c := range cells {
		h := c.standby
		add(Step{ID: "reseed-standby-db/" + h, Kind: KindRoot, Host: h, Timeout: 3 * time.Hour, Title: fmt.Sprintf("re-restore the standby database of cell %s from that backup (delta) as a standby replaying its stanza's archive", c.label()), Argv: hostcmd.Resync()})
		add(Step{ID: "check-standby-db/" + h, Kind: KindRoot, Host: h, Retry: true, Timeout: 5 * time.Minute, Title: fmt.Sprintf("the standby database of cell %s is in recovery again", c.label()), Argv: hostcmd.Psql(hostcmd.InRecoverySQL), Expect: "t"})
	}
}
