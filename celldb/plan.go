// Package celldb is `belay db copy --cell APP/CELL`: it moves a cell's
// database from the stack's cluster onto the cell's dedicated PostgreSQL
// pair during a maintenance window of that cell (docs/cells.md). The plan is
// data, a pure function of the inventory and of what was observed (Facts);
// Execute runs it through injected runners; the root side on the data nodes
// is RunHost (`belay host cell-db`). The guard (guard.go) keeps `belay
// converge` from pointing a cell's servers at a pair that lacks the copy.
package celldb

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/belay-sh/belay/hostcmd"
	"github.com/belay-sh/belay/internal/shq"
	"github.com/belay-sh/belay/inventory"
)

// Kind says how the executor runs a step.
type Kind string

// Step kinds.
const (
	// KindRoot runs Argv as root on Host; with Expect its output must equal it.
	KindRoot Kind = "root"
	// KindCopy streams Argv's stdout on From (the dump) into To's Receive (the restore).
	KindCopy Kind = "copy"
	// KindVerify runs Argv (counts) on From and on To, compares, then Mark on To with From's counts.
	KindVerify Kind = "verify"
	// KindConverge brings Host's files (its DATABASE_URL) up to the stack config.
	KindConverge Kind = "converge"
	// KindHTTP GETs http://Address/ with Host: Domain until it answers below 500.
	KindHTTP Kind = "http"
)

// Phase says what a failure in a step means for the cell.
type Phase string

const (
	// PhaseCheck: nothing changed yet; a failure stops the plan.
	PhaseCheck Phase = "check"
	// PhaseWindow: the cell is frozen and its data not switched; a failure
	// empties the pair's database (if the copy started) and starts the
	// cell again on its old database.
	PhaseWindow Phase = "window"
	// PhaseSwitch: the marker is written, the servers move to the pair; a
	// failure leaves the cell stopped and the error says how to resume.
	PhaseSwitch Phase = "switch"
)

// Step is one step of a copy.
type Step struct {
	ID    string `json:"id"`
	Title string `json:"title"`
	Kind  Kind   `json:"kind"`
	Phase Phase  `json:"phase"`
	Host  string `json:"host,omitempty"`
	// Argv is the root command (KindRoot; KindCopy's sender; KindVerify's counts).
	Argv   []string `json:"argv,omitempty"`
	Expect string   `json:"expect,omitempty"`
	// Refuse is an output that fails a KindRoot step (the source "absent").
	Refuse string `json:"refuse,omitempty"`
	// From and To are KindCopy's and KindVerify's two data nodes; Receive
	// the restore on To; Mark the marker on To.
	From    string   `json:"from,omitempty"`
	To      string   `json:"to,omitempty"`
	Receive []string `json:"receive,omitempty"`
	Mark    []string `json:"mark,omitempty"`
	// Address and Domain are a KindHTTP step's target.
	Address string        `json:"address,omitempty"`
	Domain  string        `json:"domain,omitempty"`
	Timeout time.Duration `json:"timeoutNs,omitempty"`
}

// Line is the step's command as a person would type it.
func (s Step) Line() string {
	switch s.Kind {
	case KindCopy:
		return fmt.Sprintf("ssh %s sudo -n %s | ssh %s sudo -n %s", s.From, shq.Join(s.Argv...), s.To, shq.Join(s.Receive...))
	case KindVerify:
		return fmt.Sprintf("sudo -n %s on %s and on %s, then sudo -n %s on %s", shq.Join(s.Argv...), s.From, s.To, shq.Join(s.Mark...), s.To)
	case KindHTTP:
		return fmt.Sprintf("GET http://%s/ (Host: %s)", s.Address, s.Domain)
	case KindConverge:
		return "belay converge (" + s.Host + " only)"
	}
	if len(s.Argv) > 0 {
		return "sudo -n " + shq.Join(s.Argv...)
	}
	return ""
}

// Plan is one copy.
type Plan struct {
	Stack    string `json:"stack"`
	App      string `json:"app"`
	Cell     string `json:"cell"`
	Database string `json:"database"`
	// Source and Target are the stack's primary and the pair's primary.
	Source string   `json:"source"`
	Target string   `json:"target"`
	Hosts  []string `json:"hosts"`
	// Copied is the marker found on the pair: the copy is done, only the
	// switch steps remain (which change nothing on switched servers).
	Copied *Marker  `json:"copied,omitempty"`
	Steps  []Step   `json:"steps"`
	Notes  []string `json:"notes,omitempty"`
}

// Print writes the plan for people.
func (p *Plan) Print(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Copy of cell %s/%s's database %s (stack %s): %s (stack's primary) -> %s (the cell's pair's primary), %d steps\n",
		p.App, p.Cell, p.Database, p.Stack, orDash(p.Source), p.Target, len(p.Steps))
	for i, s := range p.Steps {
		fmt.Fprintf(&b, "%3d. [%s] %s\n", i+1, s.ID, s.Title)
		if l := s.Line(); l != "" {
			fmt.Fprintf(&b, "       %s\n", l)
		}
	}
	for _, n := range p.Notes {
		fmt.Fprintf(&b, "Note: %s\n", n)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// Facts are what Observe saw on the hosts.
type Facts struct {
	// Formation is the monitor's "<primaries>/<secondaries>" of the cell's formation.
	Formation string `json:"formation"`
	// SharedPrimary and PairPrimary are the writable nodes ("" none found).
	SharedPrimary string `json:"sharedPrimary"`
	PairPrimary   string `json:"pairPrimary"`
	// SourceTables and TargetTables are the user tables of the cell's
	// database on each side (-1: the database does not exist).
	SourceTables int `json:"sourceTables"`
	TargetTables int `json:"targetTables"`
	// Marker is the pair's copy marker (nil: none).
	Marker *Marker `json:"marker,omitempty"`
	// Errs are what could not be observed, by what.
	Errs map[string]string `json:"errors,omitempty"`
}

// ErrRefused wraps every refusal: nothing was changed.
var ErrRefused = errors.New("belay db copy refused, nothing changed")

func refuse(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrRefused, fmt.Sprintf(format, a...))
}

// Timeouts of the steps.
const (
	CopyTimeout   = 6 * time.Hour
	HealthTimeout = 2 * time.Minute
)

// Target is the cell a copy is about, resolved in the inventory.
type Target struct {
	App  *inventory.App
	Cell *inventory.Cell
	// Monitor and SharedNodes are the stack's.
	Monitor     string
	SharedNodes []string
}

// Resolve finds APP/CELL in inv and checks it is a dedicated cell with a
// cell database's name.
func Resolve(inv *inventory.Inventory, app, cell string) (*Target, error) {
	a := inv.App(app)
	if a == nil {
		return nil, refuse("--cell %s/%s: no app %q in the inventory", app, cell, app)
	}
	c := a.Cell(cell)
	if c == nil {
		return nil, refuse("--cell %s/%s: app %s has no cell %q", app, cell, app, cell)
	}
	if !c.Dedicated() {
		return nil, refuse("--cell %s/%s: the cell's database is on the stack's cluster (cells[].database: shared); set database: dedicated and run pulumi up first", app, cell)
	}
	if err := hostcmd.CheckCellDatabase(c.Database); err != nil {
		return nil, refuse("--cell %s/%s: inventory cells[].database: %v", app, cell, err)
	}
	if err := hostcmd.CheckFormation(c.Formation); err != nil {
		return nil, refuse("--cell %s/%s: inventory cells[].formation: %v", app, cell, err)
	}
	if len(c.Hosts) == 0 || inv.Database.Monitor == "" || len(inv.Database.Nodes) == 0 {
		return nil, refuse("--cell %s/%s: the inventory lacks the cell's servers, the monitor or the stack's data nodes", app, cell)
	}
	return &Target{App: a, Cell: c, Monitor: inv.Database.Monitor, SharedNodes: inv.Database.Nodes}, nil
}

// Build returns the copy of t's database given the facts, or an error
// wrapping ErrRefused that says why not.
func Build(stack string, t *Target, f Facts) (*Plan, error) {
	a, c := t.App, t.Cell
	db := c.Database
	p := &Plan{Stack: stack, App: a.Name, Cell: c.Name, Database: db, Source: f.SharedPrimary, Target: f.PairPrimary, Hosts: c.Hosts, Copied: f.Marker}
	for _, k := range []string{"pair", "marker", "target"} {
		if e := f.Errs[k]; e != "" {
			return nil, refuse("cell %s/%s: %s", a.Name, c.Name, e)
		}
	}
	if f.Formation != "1/1" {
		return nil, refuse("cell %s/%s: its pair's formation %s is %q on the monitor (primaries/secondaries), expected 1/1: wait until both nodes are up (belay cells)", a.Name, c.Name, c.Formation, f.Formation)
	}
	if f.PairPrimary == "" {
		return nil, refuse("cell %s/%s: no writable node among %s", a.Name, c.Name, strings.Join(c.DBNodes, ", "))
	}
	if f.Marker != nil {
		p.Notes = append(p.Notes, fmt.Sprintf("copied already: %s from %s at %s (%d tables, %d rows); only the switch remains, and it changes nothing on servers already switched",
			db, f.Marker.Source, f.Marker.At.Format(time.RFC3339), f.Marker.Tables, f.Marker.Rows))
		p.Steps = switchSteps(t)
		return p, nil
	}
	if e := f.Errs["source"]; e != "" {
		return nil, refuse("cell %s/%s: %s", a.Name, c.Name, e)
	}
	if f.SharedPrimary == "" {
		return nil, refuse("cell %s/%s: no writable node among the stack's %s", a.Name, c.Name, strings.Join(t.SharedNodes, ", "))
	}
	if f.SourceTables < 0 {
		return nil, refuse("cell %s/%s: database %s does not exist on the stack's cluster (%s): nothing to copy, a new dedicated cell needs no copy", a.Name, c.Name, db, f.SharedPrimary)
	}
	if f.TargetTables != 0 {
		return nil, refuse("cell %s/%s: database %s on the pair's primary %s already holds %d user tables and no copy marker: belay never overwrites data (look at what wrote there)", a.Name, c.Name, db, f.PairPrimary, f.TargetTables)
	}
	formation, err := hostcmd.FormationStateSQL(c.Formation)
	if err != nil {
		return nil, refuse("%v", err)
	}
	add := func(s Step) { p.Steps = append(p.Steps, s) }
	add(Step{ID: "check/formation", Phase: PhaseCheck, Kind: KindRoot, Host: t.Monitor, Argv: hostcmd.MonitorPsql(formation), Expect: "1/1",
		Title: fmt.Sprintf("the pair's formation %s has a primary and a secondary", c.Formation)})
	add(Step{ID: "check/target", Phase: PhaseCheck, Kind: KindRoot, Host: f.PairPrimary, Argv: hostcmd.CellDB(hostcmd.CellDBTables, db), Expect: "0",
		Title: fmt.Sprintf("%s on the pair's primary %s holds no user table", db, f.PairPrimary)})
	add(Step{ID: "check/source", Phase: PhaseCheck, Kind: KindRoot, Host: f.SharedPrimary, Argv: hostcmd.CellDB(hostcmd.CellDBTables, db), Refuse: "absent",
		Title: fmt.Sprintf("%s exists on the stack's primary %s", db, f.SharedPrimary)})
	// The freeze: the cell's nginx stops first, so the routers answer its
	// shops with the cell-down page (503, Retry-After) at once; then the
	// app and its background jobs stop, so nothing writes during the dump.
	for _, h := range c.Hosts {
		add(Step{ID: "freeze/" + h, Phase: PhaseWindow, Kind: KindRoot, Host: h, Argv: hostcmd.StopUnit(hostcmd.NginxUnit),
			Title: fmt.Sprintf("freeze: stop nginx on %s (the routers answer the cell's shops 503 with Retry-After)", h)})
	}
	for _, h := range c.Hosts {
		add(Step{ID: "stop/" + h, Phase: PhaseWindow, Kind: KindRoot, Host: h, Argv: hostcmd.FenceApp(a.Name),
			Title: fmt.Sprintf("stop %s and its jobs on %s (nothing writes to %s)", a.Name, h, db)})
	}
	add(Step{ID: "copy", Phase: PhaseWindow, Kind: KindCopy, From: f.SharedPrimary, To: f.PairPrimary, Timeout: CopyTimeout,
		Argv: hostcmd.CellDB(hostcmd.CellDBDump, db), Receive: hostcmd.CellDB(hostcmd.CellDBRestore, db),
		Title: fmt.Sprintf("pg_dump -Fc of %s on %s, restored on %s as role %s in one transaction", db, f.SharedPrimary, f.PairPrimary, db)})
	add(Step{ID: "verify", Phase: PhaseWindow, Kind: KindVerify, From: f.SharedPrimary, To: f.PairPrimary,
		Argv: hostcmd.CellDB(hostcmd.CellDBCounts, db), Mark: hostcmd.CellDB(hostcmd.CellDBMark, db),
		Title: "every table has as many rows on both sides (count(*)); the marker is recorded on the pair"})
	p.Steps = append(p.Steps, switchSteps(t)...)
	p.Notes = append(p.Notes, fmt.Sprintf("the source %s stays on the stack's cluster; drop it when satisfied (docs/cells.md)", db))
	return p, nil
}

// switchSteps move the cell's servers to the pair and start them.
func switchSteps(t *Target) []Step {
	a, c := t.App, t.Cell
	var out []Step
	for _, h := range c.Hosts {
		out = append(out, Step{ID: "converge/" + h, Phase: PhaseSwitch, Kind: KindConverge, Host: h,
			Title: fmt.Sprintf("converge %s: its DATABASE_URL names the pair", h)})
	}
	for _, h := range c.Hosts {
		out = append(out, Step{ID: "start/" + h, Phase: PhaseSwitch, Kind: KindRoot, Host: h, Argv: hostcmd.StartApp(a.Name),
			Title: fmt.Sprintf("start %s, nginx and keepalived on %s", a.Name, h)})
	}
	out = append(out, Step{ID: "health", Phase: PhaseSwitch, Kind: KindHTTP, Address: c.VIP, Domain: firstDomain(a), Timeout: HealthTimeout,
		Title: fmt.Sprintf("the cell answers through its VIP %s (the routers serve it again)", c.VIP)})
	return out
}

func firstDomain(a *inventory.App) string {
	if len(a.Domains) > 0 {
		return strings.TrimPrefix(a.Domains[0], "*.")
	}
	return a.Name
}
