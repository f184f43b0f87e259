package hostcmd

import (
	"fmt"
	"regexp"
	"strings"
)

// The pg_auto_failover monitor holds one formation per PostgreSQL pair: the
// stack's pair in "default", each dedicated cell's pair in its own
// (`<app>_<cell>`, inventory cells[].formation). Every query belay runs
// there names its formation, so a second pair never shows up as a third
// node of the first.

// DefaultFormation is the formation of the stack's pair (db-1, db-2).
const DefaultFormation = "default"

// formationRE is what a formation name may be: a lowercase PostgreSQL
// identifier, the inventory's rule. Nothing else reaches the SQL below (no
// quote, no space): the name is spliced into a literal of a sudoers-visible
// argv, so it must be exactly reproducible and harmless.
var formationRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// CheckFormation refuses a formation name that is not a lowercase identifier.
func CheckFormation(formation string) error {
	if !formationRE.MatchString(formation) {
		return fmt.Errorf("formation %q: expected a lowercase identifier (a-z, 0-9, _; at most 63 characters)", formation)
	}
	return nil
}

// sqlLiteral is the one way a formation name becomes SQL: checked against
// formationRE first (callers do), quoted as a standard string literal.
func sqlLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// FormationStateSQL prints "<primaries>/<secondaries>" of formation as the
// monitor sees it.
func FormationStateSQL(formation string) (string, error) {
	if err := CheckFormation(formation); err != nil {
		return "", err
	}
	return "SELECT count(*) FILTER (WHERE reportedstate = 'primary') || '/' || count(*) FILTER (WHERE reportedstate = 'secondary') FROM pgautofailover.node WHERE formationid = " + sqlLiteral(formation), nil
}

// FormationNodesSQL lists formation's nodes as "<name>|<reported
// state>|<goal state>" lines (belay replace / db resize wait on it).
func FormationNodesSQL(formation string) (string, error) {
	if err := CheckFormation(formation); err != nil {
		return "", err
	}
	return "SELECT nodename, reportedstate, goalstate FROM pgautofailover.node WHERE formationid = " + sqlLiteral(formation) + " ORDER BY nodename", nil
}

// FormationSwitchoverSQL is `pg_autoctl perform switchover` of formation
// (group 0) as the monitor's own function.
func FormationSwitchoverSQL(formation string) (string, error) {
	if err := CheckFormation(formation); err != nil {
		return "", err
	}
	return "SELECT pgautofailover.perform_failover(" + sqlLiteral(formation) + ", 0)", nil
}

// mustSQL is for the default formation's constants, whose name is fixed.
func mustSQL(sql string, err error) string {
	if err != nil {
		panic(err)
	}
	return sql
}

// FormationCommands are the monitor's root commands for one formation, in
// a fixed order: its state, its nodes, its switchover. What sudoers allows
// on the monitor is exactly these argvs for "default" and every dedicated
// cell's formation.
func FormationCommands(formation string) ([][]string, error) {
	var out [][]string
	for _, f := range []func(string) (string, error){FormationStateSQL, FormationNodesSQL, FormationSwitchoverSQL} {
		sql, err := f(formation)
		if err != nil {
			return nil, err
		}
		out = append(out, MonitorPsql(sql))
	}
	return out, nil
}
