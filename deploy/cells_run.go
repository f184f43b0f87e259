package deploy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/belay-sh/belay/deploy/lease"
	"github.com/belay-sh/belay/deploy/plan"
	"github.com/belay-sh/belay/inventory"
)

// The states of a cell in a cells deploy.
const (
	CellUntouched      = "untouched"       // no command was sent to its servers
	CellOK             = "ok"              // the release serves it
	CellPaused         = "paused"          // --stop-after: its canary serves the stage
	CellFailed         = "failed"          // its rollout failed before anything switched: it still runs its previous release
	CellRolledBack     = "rolled-back"     // back on its previous release
	CellRollbackFailed = "rollback-failed" // the rollback failed: `belay deploy|rollback` converges it
)

// CellOutcome is one cell's part of a cells deploy.
type CellOutcome struct {
	Cell string `json:"cell"`
	// Wave is the cell's wave: 0 is the canary cell.
	Wave  int      `json:"wave"`
	VIP   string   `json:"vip,omitempty"`
	Hosts []string `json:"hosts"`
	State string   `json:"state"`
	// Previous is the release the cell ran before (what a rollback returns to).
	Previous string `json:"previous,omitempty"`
	// Deploy is the cell's own rollout (nil: untouched); it rolled itself
	// back when its own verdict or step failed.
	Deploy *Outcome `json:"deploy,omitempty"`
	// Rollback is the rollback a later cell's failure caused, of a cell whose
	// own rollout had passed.
	Rollback *Outcome `json:"rollback,omitempty"`
	Error    string   `json:"error,omitempty"`
}

// CellsOutcome is what a cells deploy did, cell by cell.
type CellsOutcome struct {
	App     string `json:"app"`
	Action  string `json:"action"`
	Release string `json:"release"`
	// Result: ok, paused, rolled-back, rollback-failed, failed.
	Result     string        `json:"result"`
	Error      string        `json:"error,omitempty"`
	CanaryCell string        `json:"canaryCell"`
	Waves      [][]string    `json:"waves"`
	Cells      []CellOutcome `json:"cells"`
	// Touched got commands; RolledBack are back on their previous release
	// (by their own pipeline or the cells rollback); Untouched never got any.
	Touched    []string `json:"touched"`
	RolledBack []string `json:"rolledBack"`
	Untouched  []string `json:"untouched"`
	Duration   string   `json:"duration"`
}

// cellOps is what the waves need of the cells (tests fake it).
type cellOps struct {
	deploy   func(ctx context.Context, cell string) (*Outcome, error)
	rollback func(ctx context.Context, cell, to string) (*Outcome, error)
	note     func(format string, a ...any)
}

// CellsPlan is a cells deploy as data: the waves and each cell's own plan.
type CellsPlan struct {
	Waves [][]string
	Plans map[string]*plan.Plan
}

// PlanCells checks a cells deploy before any host is touched: the cells
// and their order (Waves), and the plan of each cell (in.Inventory and
// in.App name the app; each cell's plan is the app's pipeline on that cell).
func PlanCells(in plan.Input, o CellsOptions) (*CellsPlan, error) {
	app := in.Inventory.App(in.App)
	if app == nil {
		return nil, fmt.Errorf("app %q: not in the inventory", in.App)
	}
	waves, err := Waves(app, o)
	if err != nil {
		return nil, err
	}
	if in.Strategy.StopAfter != "" && len(flatten(waves)) > 1 {
		return nil, fmt.Errorf("--stop-after: a cells deploy pauses one cell at a time (pass --cells with one cell), the wave strategy needs every stage of each cell's rollout to pass")
	}
	cp := &CellsPlan{Waves: waves, Plans: map[string]*plan.Plan{}}
	for _, c := range flatten(waves) {
		ci, err := CellInventory(in.Inventory, in.App, c)
		if err != nil {
			return nil, err
		}
		check := in
		check.Inventory = ci
		p, err := plan.Deploy(check)
		if err != nil { // bad input: fail before touching any cell
			return nil, fmt.Errorf("cell %s: %w", c, err)
		}
		cp.Plans[c] = p
	}
	return cp, nil
}

// DeployCells rolls in.Release out to the cells of d's app chosen by o:
// the canary cell through the whole pipeline (whitelist, % stages, verdicts
// at its own nginx), then the others in waves, each cell its own rollout with
// its own verdicts. The first failure stops the wave under way (its other
// cells roll themselves back) and rolls back every cell touched before it,
// each to its own previous release; the cells of later waves never get a
// command. Every chosen cell's lease is taken first, in name order.
func (d *Deployer) DeployCells(ctx context.Context, in plan.Input, o CellsOptions) (*CellsOutcome, error) {
	return d.deployCells(ctx, in, in, o, in.Release, func(ctx context.Context, cd *Deployer) (*Outcome, error) { return cd.Deploy(ctx, in) })
}

// DeployCellsEnvOnly is DeployCells of the app's env (serial envSerial) with
// the release each cell runs: every chosen cell gets <its current>.env<N>
// through its own pipeline, in the same waves, and a failure rolls back every
// cell touched, each to the release it ran. Cells may run different releases.
func (d *Deployer) DeployCellsEnvOnly(ctx context.Context, in plan.Input, o CellsOptions, envSerial int) (*CellsOutcome, error) {
	if envSerial < 1 {
		return nil, errors.New("env-only deploy: the app has no env set (belay env set APP KEY=VALUE)")
	}
	in.Artifact, in.Env, in.Release, in.CopyFrom = nil, true, "", ""
	check := EnvOnlyCheck(in, envSerial)
	return d.deployCells(ctx, in, check, o, fmt.Sprintf("env %d", envSerial), func(ctx context.Context, cd *Deployer) (*Outcome, error) {
		return cd.deploy(ctx, in, envSerial)
	})
}

// EnvOnlyCheck is the input an env-only deploy is checked (and printed)
// with before the hosts are read: the release id stands for the one each
// host runs (current).
func EnvOnlyCheck(in plan.Input, envSerial int) plan.Input {
	in.Artifact, in.Env = nil, true
	in.CopyFrom, in.Release = "current", plan.EnvRelease("current", envSerial)
	return in
}

// deployCells runs one rollout per chosen cell in waves: check is what
// PlanCells validates before any host is touched, label names the rollout
// (lease and outcome), run deploys one cell.
func (d *Deployer) deployCells(ctx context.Context, in, check plan.Input, o CellsOptions, label string, run func(context.Context, *Deployer) (*Outcome, error)) (*CellsOutcome, error) {
	start := time.Now()
	app := d.Inv.App(d.App)
	if app == nil {
		return nil, fmt.Errorf("app %q: not in the inventory", d.App)
	}
	check.Inventory, check.App, check.Base, check.SkipStandby = d.Inv, d.App, d.Base, d.SkipStandby
	cp, err := PlanCells(check, o)
	if err != nil {
		return nil, err
	}
	waves, names := cp.Waves, flatten(cp.Waves)
	cells := map[string]*Deployer{}
	var servers []string
	for _, c := range names {
		cd, err := d.ForCell(c)
		if err != nil {
			return nil, err
		}
		ca, _ := cd.app()
		servers = append(servers, cd.servers(ca)...)
		cells[c] = cd
	}
	// Every host of every chosen cell answers with its pinned key before any
	// command runs anywhere, leases included.
	if err := d.connectAll(ctx, servers); err != nil {
		return nil, err
	}
	hctx, release, err := holdCells(ctx, names, cells, "deploy "+label+" (cells "+strings.Join(names, ",")+")")
	if err != nil {
		return nil, err
	}
	defer release()
	out := newCellsOutcome(app, label, waves)
	ops := cellOps{
		deploy: func(ctx context.Context, c string) (*Outcome, error) { return run(ctx, cells[c]) },
		rollback: func(ctx context.Context, c, to string) (*Outcome, error) {
			return cells[c].Rollback(ctx, to)
		},
		note: d.note,
	}
	err = runWaves(hctx, ops, out)
	out.Duration = time.Since(start).Round(time.Millisecond).String()
	return out, err
}

func (d *Deployer) note(format string, a ...any) {
	if d.Runner == nil {
		return
	}
	if d.progressMu != nil {
		d.progressMu.Lock()
		defer d.progressMu.Unlock()
	}
	d.Runner.Note(format, a...)
}

// holdCells takes the cells' leases in name order (two deploys never wait
// on each other crosswise) and holds them; a lease held by another run
// releases the ones taken and refuses, naming the cell. The returned context
// ends when any of them is lost.
func holdCells(ctx context.Context, names []string, cells map[string]*Deployer, action string) (context.Context, func(), error) {
	var dones []func()
	releaseAll := func() {
		for i := len(dones) - 1; i >= 0; i-- {
			dones[i]()
		}
	}
	for _, c := range names {
		cd := cells[c]
		a, err := cd.app()
		if err != nil {
			releaseAll()
			return nil, nil, err
		}
		h := cd.holder(a, action)
		if err := h.Take(ctx); err != nil {
			releaseAll()
			hint := ""
			if held := (*lease.HeldError)(nil); errors.As(err, &held) {
				hint = fmt.Sprintf(" (this cell's lease: belay lease break --app %s --cell %s)", cd.App, c)
			}
			return nil, nil, fmt.Errorf("cell %s: %w%s; no cell was touched", c, err, hint)
		}
		var done func()
		ctx, done = h.Hold(ctx)
		dones = append(dones, done)
		cd.held = h.Fence()
	}
	return ctx, releaseAll, nil
}

func newCellsOutcome(app *inventory.App, rel string, waves [][]string) *CellsOutcome {
	out := &CellsOutcome{App: app.Name, Action: "deploy", Release: rel, CanaryCell: waves[0][0], Waves: waves}
	for wi, w := range waves {
		for _, c := range w {
			co := CellOutcome{Cell: c, Wave: wi, State: CellUntouched}
			if x := app.Cell(c); x != nil {
				co.VIP, co.Hosts = x.VIP, append([]string(nil), x.Hosts...)
			}
			out.Cells = append(out.Cells, co)
		}
	}
	return out
}

// errStopped is why the other cells of a failing cell's wave stop.
var errStopped = errors.New("stopped")

// runWaves runs the waves in order and, on the first failure, rolls back
// every cell whose rollout had passed. out.Cells is in wave order.
func runWaves(ctx context.Context, ops cellOps, out *CellsOutcome) error {
	idx := map[string]int{}
	for i, c := range out.Cells {
		idx[c.Cell] = i
	}
	var failure error
	for wi, wave := range out.Waves {
		what := "wave " + fmt.Sprint(wi)
		if wi == 0 {
			what = "canary cell"
		}
		ops.note("== %s: %s (release %s)", what, strings.Join(wave, ", "), out.Release)
		wctx, cancel := context.WithCancelCause(ctx)
		var wg sync.WaitGroup
		var mu sync.Mutex
		for _, c := range wave {
			co := &out.Cells[idx[c]]
			wg.Add(1)
			go func() {
				defer wg.Done()
				o, err := ops.deploy(wctx, c)
				mu.Lock()
				defer mu.Unlock()
				co.Deploy = o
				co.State = cellState(o, err)
				if o != nil {
					co.Previous = o.Previous
				}
				if err != nil {
					co.Error = err.Error()
					if failure == nil {
						failure = fmt.Errorf("cell %s: %w", c, err)
						// The other cells of this wave stop now and roll themselves back.
						cancel(fmt.Errorf("%w: cell %s failed", errStopped, c))
					}
				}
			}()
		}
		wg.Wait()
		cancel(nil)
		if failure != nil {
			break
		}
	}
	if failure == nil {
		out.Result = CellOK
		for _, c := range out.Cells {
			if c.State == CellPaused {
				out.Result = CellPaused
			}
		}
		out.lists()
		return nil
	}
	rbErr := rollbackPassed(ctx, ops, out)
	out.lists()
	out.Result = CellRolledBack
	for _, c := range out.Cells {
		if c.State == CellRollbackFailed {
			out.Result = CellRollbackFailed
		}
	}
	msg := fmt.Sprintf("%v; touched cells %s", failure, listOr(out.Touched))
	if len(out.RolledBack) > 0 {
		msg += ", rolled back " + listOr(out.RolledBack)
	}
	if len(out.Untouched) > 0 {
		msg += ", never touched " + listOr(out.Untouched)
	}
	if rbErr != nil {
		msg += "; ROLLBACK FAILED: " + rbErr.Error()
	}
	out.Error = msg
	return errors.New(msg)
}

// rollbackPassed rolls back, at once, every cell whose own rollout passed
// (ok or paused), each to its own previous release.
func rollbackPassed(ctx context.Context, ops cellOps, out *CellsOutcome) error {
	// The deploy's context may be what failed (Ctrl-C): the rollback gets
	// its own budget, like a single app's (rollbackAll), and still stops if a
	// lease is lost (the fence would refuse its steps anyway).
	ctx, cancel := context.WithTimeout(lease.Survive(ctx), 15*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for i := range out.Cells {
		co := &out.Cells[i]
		if co.State != CellOK && co.State != CellPaused {
			continue
		}
		if co.Previous == "" {
			co.State, co.Error = CellRollbackFailed, "first release of this cell: no previous release to roll back to"
			errs = append(errs, fmt.Errorf("cell %s: %s", co.Cell, co.Error))
			continue
		}
		ops.note("rolling back cell %s to %s (a later cell failed)", co.Cell, co.Previous)
		wg.Add(1)
		go func() {
			defer wg.Done()
			o, err := ops.rollback(ctx, co.Cell, co.Previous)
			mu.Lock()
			defer mu.Unlock()
			co.Rollback = o
			if err != nil {
				co.State, co.Error = CellRollbackFailed, err.Error()
				errs = append(errs, fmt.Errorf("cell %s: %w (run `belay rollback` on it to converge)", co.Cell, err))
				return
			}
			co.State = CellRolledBack
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// cellState reads a cell's own rollout.
func cellState(o *Outcome, err error) string {
	if o == nil {
		if err != nil {
			// Refused before its pipeline began (state unreadable, lease lost).
			return CellFailed
		}
		return CellOK
	}
	switch o.Result {
	case "ok":
		return CellOK
	case "paused":
		return CellPaused
	case "rolled-back":
		return CellRolledBack
	case "rollback-failed":
		return CellRollbackFailed
	}
	return CellFailed
}

func (out *CellsOutcome) lists() {
	out.Touched, out.RolledBack, out.Untouched = []string{}, []string{}, []string{}
	for _, c := range out.Cells {
		switch c.State {
		case CellUntouched:
			out.Untouched = append(out.Untouched, c.Cell)
			continue
		case CellRolledBack:
			out.RolledBack = append(out.RolledBack, c.Cell)
		}
		out.Touched = append(out.Touched, c.Cell)
	}
}

func listOr(s []string) string {
	if len(s) == 0 {
		return "(none)"
	}
	return strings.Join(s, ", ")
}
