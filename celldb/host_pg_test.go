package celldb

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/belay-sh/belay/hostcmd"
	"github.com/belay-sh/belay/internal/pgtest"
)

// A real PostgreSQL 15 pair of clusters on loopback: "shared" holds the
// cell's database with data, "pair" an empty one, as a dedicated cell's
// pair has after pulumi up. The helper's own commands (psql, pg_dump,
// pg_restore as the postgres user) run against them.

const testDB = "shop_c2"

type cluster struct {
	t *testing.T
	s *pgtest.Server
}

func (c cluster) opts(verb string, in io.Reader, out io.Writer) *HostOptions {
	return &HostOptions{Verb: verb, Database: testDB, In: in, Out: out,
		Conn: []string{"-h", "127.0.0.1", "-p", strconv.Itoa(c.s.Port)}, Exec: realExec,
		Now: func() time.Time { return time.Date(2026, 12, 6, 18, 0, 0, 0, time.UTC) }}
}

// run runs one verb and returns its stdout.
func (c cluster) run(verb string, in string) (string, error) {
	var out bytes.Buffer
	err := RunHost(context.Background(), c.opts(verb, strings.NewReader(in), &out))
	return strings.TrimSpace(out.String()), err
}

func (c cluster) must(verb, in string) string {
	c.t.Helper()
	out, err := c.run(verb, in)
	if err != nil {
		c.t.Fatalf("%s on %d: %v", verb, c.s.Port, err)
	}
	return out
}

// sql runs statements as the superuser in db.
func (c cluster) sql(db, sql string) string {
	c.t.Helper()
	var out bytes.Buffer
	o := c.opts("", nil, &out)
	if err := realExec(context.Background(), o.psqlArgv(db, sql), nil, &out); err != nil {
		c.t.Fatalf("psql %s: %v", sql, err)
	}
	return strings.TrimSpace(out.String())
}

func realExec(ctx context.Context, argv []string, stdin io.Reader, stdout io.Writer) error {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var errb bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr, cmd.Dir = stdin, stdout, &errb, "/"
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w: %s", argv[4], err, strings.TrimSpace(errb.String()))
	}
	return nil
}

// cellDatabase creates the cell's role and database as the roles do.
func cellDatabase(c cluster) {
	c.sql("postgres", "CREATE ROLE "+testDB+" LOGIN")
	c.sql("postgres", "CREATE DATABASE "+testDB+" OWNER "+testDB)
	c.sql("postgres", "REVOKE ALL ON DATABASE "+testDB+" FROM PUBLIC")
}

func startClusters(t *testing.T) (shared, pair cluster) {
	shared, pair = cluster{t, pgtest.Start(t)}, cluster{t, pgtest.Start(t)}
	cellDatabase(shared)
	cellDatabase(pair)
	// The app's data, created by the cell's role (it owns its tables): a
	// serial (sequence), an index, a second schema, a foreign key.
	shared.sql(testDB, "SET ROLE "+testDB+"; "+
		"CREATE TABLE shops (id serial PRIMARY KEY, domain text UNIQUE NOT NULL); "+
		"CREATE TABLE orders (id bigserial PRIMARY KEY, shop int REFERENCES shops(id), total numeric); "+
		"CREATE INDEX orders_shop ON orders (shop); "+
		"CREATE SCHEMA jobs; CREATE TABLE jobs.queue (id int); "+
		"INSERT INTO shops (domain) SELECT 'shop' || g || '.test' FROM generate_series(1, 30) g; "+
		"INSERT INTO orders (shop, total) SELECT 1 + g % 30, g * 1.5 FROM generate_series(1, 500) g")
	return shared, pair
}

// copyOver streams the dump of from into the restore of to, as belay db
// copy does over its two SSH sessions.
func copyOver(from, to cluster) error {
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := RunHost(context.Background(), from.opts(hostcmd.CellDBDump, nil, pw))
		pw.CloseWithError(err)
		done <- err
	}()
	var out bytes.Buffer
	rerr := RunHost(context.Background(), to.opts(hostcmd.CellDBRestore, pr, &out))
	pr.Close()
	derr := <-done
	if rerr != nil {
		return rerr
	}
	return derr
}

func TestCopyWithPostgres(t *testing.T) {
	shared, pair := startClusters(t)
	if got := shared.must(hostcmd.CellDBTables, ""); got != "3" {
		t.Fatalf("source tables = %q, want 3", got)
	}
	if got := pair.must(hostcmd.CellDBTables, ""); got != "0" {
		t.Fatalf("target tables = %q, want 0", got)
	}
	if got := pair.must(hostcmd.CellDBMarker, ""); got != "none" {
		t.Fatalf("marker before the copy = %q", got)
	}
	if err := copyOver(shared, pair); err != nil {
		t.Fatal(err)
	}
	src, dst := shared.must(hostcmd.CellDBCounts, ""), pair.must(hostcmd.CellDBCounts, "")
	want := "0\tjobs.queue\n500\tpublic.orders\n30\tpublic.shops"
	if src != want || dst != want {
		t.Fatalf("counts: source\n%s\ntarget\n%s\nwant\n%s", src, dst, want)
	}
	// The copy belongs to the cell's role, its sequences continue, its index is there.
	if got := pair.sql(testDB, "SELECT string_agg(DISTINCT tableowner, ',') FROM pg_tables WHERE schemaname IN ('public', 'jobs')"); got != testDB {
		t.Errorf("tables owned by %q, want %s", got, testDB)
	}
	if got := pair.sql(testDB, "SET ROLE "+testDB+"; INSERT INTO shops (domain) VALUES ('new.test') RETURNING id"); got != "31" {
		t.Errorf("next shop id = %q, want 31 (the sequence continued)", got)
	}
	if got := pair.sql(testDB, "SELECT count(*) FROM pg_indexes WHERE indexname = 'orders_shop'"); got != "1" {
		t.Errorf("index orders_shop missing on the copy")
	}
	pair.sql(testDB, "DELETE FROM shops WHERE id = 31")

	// The marker: refused on a difference, written when equal.
	counts, _ := ParseCounts(src)
	bad := map[string]int64{"public.orders": 499, "public.shops": 30, "jobs.queue": 0}
	req, _ := json.Marshal(MarkRequest{Source: "db-1", Counts: bad})
	if _, err := pair.run(hostcmd.CellDBMark, string(req)); err == nil || !strings.Contains(err.Error(), "public.orders has 500 rows, the source 499") {
		t.Fatalf("mark with wrong counts: %v", err)
	}
	for _, hostile := range []string{`{"source":"db-1; DROP DATABASE x","counts":{}}`, `{"source":"db-1","counts":{},"extra":1}`, `not json`} {
		if _, err := pair.run(hostcmd.CellDBMark, hostile); err == nil {
			t.Errorf("mark accepted %s", hostile)
		}
	}
	if got := pair.must(hostcmd.CellDBMarker, ""); got != "none" {
		t.Fatalf("a refused mark left a marker: %s", got)
	}
	req, _ = json.Marshal(MarkRequest{Source: "db-1", Counts: counts})
	pair.must(hostcmd.CellDBMark, string(req))
	var m Marker
	if err := json.Unmarshal([]byte(pair.must(hostcmd.CellDBMarker, "")), &m); err != nil {
		t.Fatal(err)
	}
	if m.Source != "db-1" || m.Tables != 3 || m.Rows != 530 || m.Database != testDB {
		t.Errorf("marker = %+v", m)
	}
	// A finished copy is never overwritten nor emptied.
	if err := copyOver(shared, pair); err == nil || !strings.Contains(err.Error(), "holds the copy of db-1") {
		t.Errorf("restore over a marked copy: %v", err)
	}
	if _, err := pair.run(hostcmd.CellDBReset, ""); err == nil || !strings.Contains(err.Error(), "holds the copy") {
		t.Errorf("reset of a marked copy: %v", err)
	}
	if got := pair.must(hostcmd.CellDBTables, ""); got != "3" {
		t.Errorf("tables after the refusals = %s", got)
	}
	// The source is untouched and not marked.
	if got := shared.must(hostcmd.CellDBCounts, ""); got != want {
		t.Errorf("source counts changed:\n%s", got)
	}
	if got := shared.must(hostcmd.CellDBMarker, ""); got != "none" {
		t.Errorf("source marked: %s", got)
	}
}

func TestRestoreRefusesATable(t *testing.T) {
	shared, pair := startClusters(t)
	pair.sql(testDB, "CREATE TABLE stray (x int)")
	err := copyOver(shared, pair)
	if err == nil || !strings.Contains(err.Error(), "already holds 1 user tables") {
		t.Fatalf("restore into a database with a table: %v", err)
	}
	if got := pair.sql(testDB, "SELECT count(*) FROM pg_tables WHERE tablename = 'stray'"); got != "1" {
		t.Errorf("the stray table is gone")
	}
}

// A restore that fails half way (a cut stream) leaves the target empty
// (one transaction), the source untouched, and reset makes it new again.
func TestFailedRestoreLeavesTargetEmpty(t *testing.T) {
	shared, pair := startClusters(t)
	var dump bytes.Buffer
	if err := RunHost(context.Background(), shared.opts(hostcmd.CellDBDump, nil, &dump)); err != nil {
		t.Fatal(err)
	}
	cut := dump.Bytes()[:dump.Len()*2/3]
	var out bytes.Buffer
	err := RunHost(context.Background(), pair.opts(hostcmd.CellDBRestore, bytes.NewReader(cut), &out))
	if err == nil {
		t.Fatal("restore of a cut dump succeeded")
	}
	t.Logf("cut dump refused: %v", err)
	if got := pair.must(hostcmd.CellDBTables, ""); got != "0" {
		t.Errorf("target tables after a failed restore = %s, want 0", got)
	}
	if got := shared.must(hostcmd.CellDBTables, ""); got != "3" {
		t.Errorf("source tables = %s", got)
	}
	pair.sql(testDB, "SET ROLE "+testDB+"; CREATE TABLE leftover (x int)")
	if got := pair.must(hostcmd.CellDBReset, ""); !strings.Contains(got, "empty again") {
		t.Errorf("reset: %q", got)
	}
	if got := pair.must(hostcmd.CellDBTables, ""); got != "0" {
		t.Errorf("tables after reset = %s", got)
	}
	if got := pair.sql("postgres", "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '"+testDB+"'"); got != testDB {
		t.Errorf("owner after reset = %q", got)
	}
	if err := copyOver(shared, pair); err != nil {
		t.Fatalf("copy after reset: %v", err)
	}
	if a, b := shared.must(hostcmd.CellDBCounts, ""), pair.must(hostcmd.CellDBCounts, ""); a != b {
		t.Errorf("counts after the retry differ:\n%s\n%s", a, b)
	}
	if got := shared.must("tables", ""); got != "3" {
		t.Errorf("tables = %s", got)
	}
	// An absent database.
	o := shared.opts(hostcmd.CellDBTables, nil, &out)
	o.Database = "shop_c9"
	out.Reset()
	if err := RunHost(context.Background(), o); err != nil || strings.TrimSpace(out.String()) != "absent" {
		t.Errorf("tables of an absent database: %q %v", out.String(), err)
	}
}

func TestRunHostRefusesBadInput(t *testing.T) {
	ran := false
	exec := func(context.Context, []string, io.Reader, io.Writer) error { ran = true; return nil }
	for _, c := range []struct{ verb, db string }{
		{"drop", testDB}, {"", testDB}, {"dump", "postgres"}, {"dump", "template1"}, {"dump", "pg_auto_failover"},
		{"dump", "Shop"}, {"dump", "shop;id"}, {"dump", "--help"}, {"dump", "../x"}, {"dump", ""}, {"restore", "pg_x"},
	} {
		err := RunHost(context.Background(), &HostOptions{Verb: c.verb, Database: c.db, Exec: exec, Out: io.Discard})
		if err == nil || ran {
			t.Errorf("%q %q: err %v ran %v", c.verb, c.db, err, ran)
		}
	}
}
