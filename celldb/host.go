package celldb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/belay-sh/belay/hostcmd"
)

// The root side: `belay host cell-db VERB DATABASE` on a data node, through
// `sudo -n`. It trusts nothing it is given: the verb is one of a fixed list,
// the database a cell database's name (hostcmd.CheckCellDatabase), the mark
// verb's stdin a bounded JSON document whose source is a host name; every
// SQL statement is a fixed text or splices only those checked names. It
// never drops nor overwrites data: restore refuses a database with a user
// table, reset one that holds the marker of a finished copy.

// tablesFilter selects a database's user tables (and partitioned tables):
// everything outside PostgreSQL's own schemas.
const tablesFilter = "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace " +
	"WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') " +
	"AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'"

// TablesSQL counts the user tables of the database it runs in.
const TablesSQL = "SELECT count(*) " + tablesFilter

// CountsSQL prints "<rows>\t<schema>.<table>" for every user table: an exact
// count(*) each (query_to_xml runs the per-table query inside this one fixed
// statement, so the helper never builds SQL from a table's name).
const CountsSQL = "SELECT (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.%I', n.nspname, c.relname), false, true, '')))[1]::text" +
	" || E'\\t' || quote_ident(n.nspname) || '.' || quote_ident(c.relname) " + tablesFilter + " ORDER BY n.nspname, c.relname"

// literal quotes a checked value as a standard SQL string literal.
func literal(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// ExistsSQL is 1 when database db exists (db checked by the caller).
func ExistsSQL(db string) string {
	return "SELECT count(*) FROM pg_database WHERE datname = " + literal(db)
}

// MarkerSQL prints db's comment (where the marker lives: it travels with
// the database, not in a table the app would see or a dump would carry).
func MarkerSQL(db string) string {
	return "SELECT coalesce(shobj_description(oid, 'pg_database'), '') FROM pg_database WHERE datname = " + literal(db)
}

// MarkerPrefix starts the comment of a database belay copied.
const MarkerPrefix = "belay-copy "

// Marker records a finished copy on the pair's cell database.
type Marker struct {
	// Source is the stack's data node the dump was taken on.
	Source   string           `json:"source"`
	Database string           `json:"database"`
	At       time.Time        `json:"at"`
	Tables   int              `json:"tables"`
	Rows     int64            `json:"rows"`
	Counts   map[string]int64 `json:"counts"`
}

// MarkRequest is the mark verb's stdin: what the source counted.
type MarkRequest struct {
	Source string           `json:"source"`
	Counts map[string]int64 `json:"counts"`
}

// maxMarkRequest bounds the mark verb's stdin.
const maxMarkRequest = 4 << 20

var hostRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// HostOptions are one run of the root side.
type HostOptions struct {
	Verb, Database string
	In             io.Reader
	Out            io.Writer
	// Conn are extra connection arguments for psql, pg_dump and pg_restore
	// (tests: -h 127.0.0.1 -p PORT); none on a data node (the local socket).
	Conn []string
	// Exec runs argv with stdin and stdout (os/exec in production).
	Exec func(ctx context.Context, argv []string, stdin io.Reader, stdout io.Writer) error
	Now  func() time.Time
}

// asPostgres prefixes a PostgreSQL client as the postgres OS user (peer
// authentication on the local socket: the superuser, no password).
func asPostgres(args ...string) []string {
	return append([]string{"runuser", "-u", "postgres", "--"}, args...)
}

// psqlArgv runs one statement in db, tuples only, unaligned.
func (o *HostOptions) psqlArgv(db, sql string) []string {
	a := asPostgres("psql", "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1")
	a = append(a, o.Conn...)
	return append(a, "-d", db, "-c", sql)
}

// DumpArgv is the dump: custom format (compressed, what pg_restore reads
// table by table), owners and grants left out (the pair's role owns all).
func (o *HostOptions) DumpArgv() []string {
	a := asPostgres("pg_dump", "-Fc", "--no-owner", "--no-privileges")
	a = append(a, o.Conn...)
	return append(a, "-d", o.Database)
}

// RestoreArgv restores as the cell's role (SET ROLE: it owns every object)
// in one transaction: a failure anywhere leaves the database as it was.
func (o *HostOptions) RestoreArgv() []string {
	a := asPostgres("pg_restore", "--no-owner", "--no-privileges", "--role="+o.Database, "--single-transaction", "--exit-on-error")
	a = append(a, o.Conn...)
	return append(a, "-d", o.Database)
}

func (o *HostOptions) psql(ctx context.Context, db, sql string) (string, error) {
	var out strings.Builder
	if err := o.Exec(ctx, o.psqlArgv(db, sql), nil, &out); err != nil {
		return "", err
	}
	return strings.TrimSpace(out.String()), nil
}

// RunHost runs one verb.
func RunHost(ctx context.Context, o *HostOptions) error {
	if !contains(hostcmd.CellDBVerbs, o.Verb) {
		return fmt.Errorf("verb %q: expected one of %s", o.Verb, strings.Join(hostcmd.CellDBVerbs, ", "))
	}
	if err := hostcmd.CheckCellDatabase(o.Database); err != nil {
		return err
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	db := o.Database
	n, err := o.tables(ctx)
	if err != nil {
		return err
	}
	if n < 0 && o.Verb != hostcmd.CellDBTables && o.Verb != hostcmd.CellDBReset {
		return fmt.Errorf("database %s does not exist on this node", db)
	}
	switch o.Verb {
	case hostcmd.CellDBTables:
		if n < 0 {
			_, err = fmt.Fprintln(o.Out, "absent")
		} else {
			_, err = fmt.Fprintln(o.Out, n)
		}
		return err
	case hostcmd.CellDBCounts:
		counts, err := o.counts(ctx)
		if err != nil {
			return err
		}
		_, err = io.WriteString(o.Out, FormatCounts(counts))
		return err
	case hostcmd.CellDBMarker:
		m, err := o.marker(ctx)
		if err != nil {
			return err
		}
		if m == nil {
			_, err = fmt.Fprintln(o.Out, "none")
			return err
		}
		return json.NewEncoder(o.Out).Encode(m)
	case hostcmd.CellDBDump:
		return o.Exec(ctx, o.DumpArgv(), nil, o.Out)
	case hostcmd.CellDBRestore:
		if err := o.refuseMarked(ctx); err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("database %s already holds %d user tables: restore refused, nothing overwritten", db, n)
		}
		if err := o.Exec(ctx, o.RestoreArgv(), o.In, io.Discard); err != nil {
			return fmt.Errorf("pg_restore into %s (rolled back: one transaction): %w", db, err)
		}
		_, err := fmt.Fprintf(o.Out, "restored into %s\n", db)
		return err
	case hostcmd.CellDBMark:
		return o.mark(ctx)
	case hostcmd.CellDBReset:
		if n >= 0 {
			if err := o.refuseMarked(ctx); err != nil {
				return err
			}
		}
		for _, sql := range ResetSQL(db) {
			if _, err := o.psql(ctx, "postgres", sql); err != nil {
				return fmt.Errorf("emptying %s: %w", db, err)
			}
		}
		_, err := fmt.Fprintf(o.Out, "%s is empty again, owned by %s\n", db, db)
		return err
	}
	return nil
}

// ResetSQL drops db and creates it again as the data node's setup does
// (tenantSQL / the pair's own database): owned by its role, closed to PUBLIC.
// Each statement runs alone (DROP/CREATE DATABASE refuse a transaction).
func ResetSQL(db string) []string {
	return []string{
		"DROP DATABASE IF EXISTS " + db + " WITH (FORCE)",
		"CREATE DATABASE " + db + " OWNER " + db,
		"REVOKE ALL ON DATABASE " + db + " FROM PUBLIC",
	}
}

// tables is the number of user tables, -1 when the database is absent.
func (o *HostOptions) tables(ctx context.Context) (int, error) {
	out, err := o.psql(ctx, "postgres", ExistsSQL(o.Database))
	if err != nil {
		return 0, fmt.Errorf("looking for database %s: %w", o.Database, err)
	}
	if out == "0" {
		return -1, nil
	}
	out, err = o.psql(ctx, o.Database, TablesSQL)
	if err != nil {
		return 0, fmt.Errorf("counting %s's tables: %w", o.Database, err)
	}
	n, err := strconv.Atoi(out)
	if err != nil {
		return 0, fmt.Errorf("counting %s's tables: %q, expected a number", o.Database, out)
	}
	return n, nil
}

func (o *HostOptions) counts(ctx context.Context) (map[string]int64, error) {
	out, err := o.psql(ctx, o.Database, CountsSQL)
	if err != nil {
		return nil, fmt.Errorf("counting %s's rows: %w", o.Database, err)
	}
	return ParseCounts(out)
}

func (o *HostOptions) marker(ctx context.Context) (*Marker, error) {
	out, err := o.psql(ctx, "postgres", MarkerSQL(o.Database))
	if err != nil {
		return nil, fmt.Errorf("reading %s's marker: %w", o.Database, err)
	}
	return ParseMarker(out)
}

func (o *HostOptions) refuseMarked(ctx context.Context) error {
	m, err := o.marker(ctx)
	if err != nil {
		return err
	}
	if m != nil {
		return fmt.Errorf("database %s holds the copy of %s made %s: refused, a finished copy is the cell's data", o.Database, m.Source, m.At.Format(time.RFC3339))
	}
	return nil
}

// mark checks the source's counts (stdin) against the database's own and
// records the marker when every table has as many rows on both sides.
func (o *HostOptions) mark(ctx context.Context) error {
	data, err := io.ReadAll(io.LimitReader(o.In, maxMarkRequest+1))
	if err != nil {
		return fmt.Errorf("reading the source's counts from stdin: %w", err)
	}
	if len(data) > maxMarkRequest {
		return fmt.Errorf("stdin: over %d bytes", maxMarkRequest)
	}
	var req MarkRequest
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return fmt.Errorf("stdin: %w (expected {\"source\": HOST, \"counts\": {TABLE: ROWS}})", err)
	}
	if !hostRE.MatchString(req.Source) {
		return fmt.Errorf("stdin: source %q: expected a host name", req.Source)
	}
	own, err := o.counts(ctx)
	if err != nil {
		return err
	}
	if diff := DiffCounts(req.Counts, own); diff != "" {
		return fmt.Errorf("database %s differs from its source on %s: %s; no marker written", o.Database, req.Source, diff)
	}
	m := Marker{Source: req.Source, Database: o.Database, At: o.Now().UTC().Truncate(time.Second), Tables: len(own), Counts: own}
	for _, n := range own {
		m.Rows += n
	}
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if strings.ContainsRune(string(b), 0) {
		return errors.New("marker: NUL in a table name")
	}
	if _, err := o.psql(ctx, "postgres", "COMMENT ON DATABASE "+o.Database+" IS "+literal(MarkerPrefix+string(b))); err != nil {
		return fmt.Errorf("recording the marker on %s: %w", o.Database, err)
	}
	return json.NewEncoder(o.Out).Encode(m)
}

// ParseMarker reads a database comment: nil when it is not belay's marker.
func ParseMarker(comment string) (*Marker, error) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(comment), MarkerPrefix)
	if !ok {
		return nil, nil
	}
	var m Marker
	if err := json.Unmarshal([]byte(rest), &m); err != nil {
		return nil, fmt.Errorf("copy marker: %w", err)
	}
	return &m, nil
}

// ParseCounts reads CountsSQL's (or FormatCounts') lines.
func ParseCounts(out string) (map[string]int64, error) {
	counts := map[string]int64{}
	for i, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		n, table, ok := strings.Cut(line, "\t")
		v, err := strconv.ParseInt(n, 10, 64)
		if !ok || err != nil || table == "" {
			return nil, fmt.Errorf("row counts line %d: %q, expected <rows><TAB><table>", i+1, line)
		}
		counts[table] = v
	}
	return counts, nil
}

// FormatCounts writes counts sorted by table, one "<rows>\t<table>" line each.
func FormatCounts(counts map[string]int64) string {
	var b strings.Builder
	for _, t := range sortedKeys(counts) {
		fmt.Fprintf(&b, "%d\t%s\n", counts[t], t)
	}
	return b.String()
}

// DiffCounts names the first differences between the source's and the
// copy's counts ("" when equal).
func DiffCounts(src, dst map[string]int64) string {
	var diffs []string
	for _, t := range sortedKeys(src) {
		d, ok := dst[t]
		switch {
		case !ok:
			diffs = append(diffs, t+" missing")
		case d != src[t]:
			diffs = append(diffs, fmt.Sprintf("%s has %d rows, the source %d", t, d, src[t]))
		}
	}
	for _, t := range sortedKeys(dst) {
		if _, ok := src[t]; !ok {
			diffs = append(diffs, t+" is not in the source")
		}
	}
	if len(diffs) > 3 {
		diffs = append(diffs[:3], fmt.Sprintf("and %d more", len(diffs)-3))
	}
	return strings.Join(diffs, "; ")
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func sortedKeys(m map[string]int64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
