package hostcmd

import (
	"fmt"
	"regexp"
	"strings"
)

// `belay db copy --cell APP/CELL` moves a cell's database from the stack's
// cluster onto the cell's dedicated pair (docs/cells.md). Its root side is
// one helper, `belay host cell-db VERB DATABASE`, run through `sudo -n`: the
// data nodes' sudoers list each verb with the exact database name the
// inventory gives (no wildcard), the stack's nodes the reading verbs of the
// cells that moved away, a dedicated pair's nodes every verb but dump of its own
// cell's database only — so the deploy user can never dump, restore into or
// empty another database.

// BelayBinary is where every host has the belay binary (roles.BelayBinary,
// the same path: roles checks they agree).
const BelayBinary = "/usr/local/bin/belay"

// The verbs of the cell database helper.
const (
	// CellDBTables prints the number of user tables of the database, or
	// "absent" when the database does not exist.
	CellDBTables = "tables"
	// CellDBCounts prints "<rows>\t<schema.table>" per user table (exact
	// count(*)), sorted by table.
	CellDBCounts = "counts"
	// CellDBDump writes `pg_dump -Fc` of the database on stdout.
	CellDBDump = "dump"
	// CellDBRestore restores a `pg_dump -Fc` archive from stdin into the
	// database, which must hold no user table and no copy marker.
	CellDBRestore = "restore"
	// CellDBMark compares the source's counts (JSON on stdin) with the
	// database's own and, when equal, records the copy marker.
	CellDBMark = "mark"
	// CellDBMarker prints the copy marker (JSON), or "none".
	CellDBMarker = "marker"
	// CellDBReset drops and recreates the database empty, owned by its
	// role; refused once the marker is there (a finished copy is data).
	CellDBReset = "reset"
)

// CellDBSourceVerbs are what the stack's data nodes allow for a cell that
// moved to its own pair: read and dump, nothing that writes.
var CellDBSourceVerbs = []string{CellDBTables, CellDBCounts, CellDBDump}

// CellDBPairVerbs are what a dedicated pair's data node allows for its own
// cell's database.
var CellDBPairVerbs = []string{CellDBTables, CellDBCounts, CellDBMarker, CellDBRestore, CellDBMark, CellDBReset}

// CellDBVerbs are every verb, for the helper's own check.
var CellDBVerbs = []string{CellDBTables, CellDBCounts, CellDBDump, CellDBRestore, CellDBMark, CellDBMarker, CellDBReset}

// cellDBRE is a cell database's name (config.CellDatabase: app_cell with
// '-' made '_'): a lowercase identifier, starting with a letter.
var cellDBRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

// reservedDBs are PostgreSQL's and pg_auto_failover's own databases.
var reservedDBs = map[string]bool{"postgres": true, "template0": true, "template1": true, "pg_auto_failover": true}

// CheckCellDatabase refuses a name that is not a cell database's: the
// helper runs this before anything, whatever sudoers allowed.
func CheckCellDatabase(db string) error {
	if !cellDBRE.MatchString(db) || reservedDBs[db] || strings.HasPrefix(db, "pg_") {
		return fmt.Errorf("database %q: expected a cell's database (a lowercase identifier: a-z, 0-9, _; not postgres, template*, pg_*)", db)
	}
	return nil
}

// CellDB is the helper's argv for verb on database db.
func CellDB(verb, db string) []string {
	return []string{BelayBinary, "host", "cell-db", verb, db}
}

// cellDBCommands are verbs' argvs for db; a bad name gets none (the roles
// refuse it before rendering, naming the field).
func cellDBCommands(db string, verbs []string) [][]string {
	if CheckCellDatabase(db) != nil {
		return nil
	}
	var out [][]string
	for _, v := range verbs {
		out = append(out, CellDB(v, db))
	}
	return out
}
