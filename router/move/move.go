// Package move moves one shop from its cell to another: freeze it (503 with
// Retry-After for it alone), wait until every live router loaded the freeze,
// export its data from the source cell, import it into the target, flip the
// route and unfreeze in one transaction. Every step is recorded in the
// mapping table, so a move interrupted anywhere is resumed (run it again) or
// aborted (the shop stays on, and is unfrozen on, its old cell); every step
// is audited. See docs/cells.md.
package move

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/belay-sh/belay/router"
	"github.com/belay-sh/belay/router/store"
)

// DB is the mapping (a *store.Store, or the same operations through the
// router's root helper over SSH).
type DB interface {
	Get(ctx context.Context, app, domain string) (*router.Shop, error)
	BeginMove(ctx context.Context, app, domain, to, actor string) (int64, error)
	SetStep(ctx context.Context, app, domain, to, step, actor string) error
	FinishMove(ctx context.Context, app, domain, to, actor string) (int64, error)
	AbortMove(ctx context.Context, app, domain, reason, actor string) (int64, error)
	WaitApplied(ctx context.Context, app string, version int64, timeout time.Duration) ([]store.Router, error)
}

// Hooks run the app's move contract on a cell.
type Hooks interface {
	// Export writes the shop's data on cell to w (belay-move export SHOP).
	Export(ctx context.Context, cell, shop string, w io.Writer) error
	// Import replaces the shop's data on cell with r (belay-move import SHOP).
	Import(ctx context.Context, cell, shop string, r io.Reader) error
}

// Options of one move.
type Options struct {
	App, Domain string
	// To is the target cell (required unless Abort).
	To string
	// Abort ends a move in progress: the shop stays on its old cell, unfrozen.
	Abort bool
	// Actor is recorded in the audit ("user@host").
	Actor string
	DB    DB
	Hooks Hooks
	// SpoolDir holds the exported data between export and import (default os.TempDir()).
	SpoolDir string
	// Propagation bounds the wait for the routers (default 10 s).
	Propagation time.Duration
	// Log receives progress lines (default io.Discard).
	Log io.Writer
}

// Result is what a move did.
type Result struct {
	App    string `json:"app"`
	Domain string `json:"domain"`
	From   string `json:"from"`
	To     string `json:"to"`
	// Resumed: a move recorded at step ResumedAt was continued.
	Resumed   bool   `json:"resumed,omitempty"`
	ResumedAt string `json:"resumedAt,omitempty"`
	Aborted   bool   `json:"aborted,omitempty"`
	Bytes     int64  `json:"bytes"`
	// FreezeMillis runs from every router serving the freeze to every
	// router serving the new cell: the shop's 503 window as its clients see it
	// (plus at most one router's push at each end).
	FreezeMillis int64 `json:"freezeMillis"`
	// Routers is how many live routers confirmed each change.
	Routers int `json:"routers"`
}

// Error is a failed move; Frozen says whether the shop is left frozen (then
// Hint is the command to resume or abort).
type Error struct {
	Err    error
	Frozen bool
	Hint   string
}

func (e *Error) Error() string {
	s := e.Err.Error()
	if e.Frozen {
		s += "; the shop is still FROZEN (503 for its clients): " + e.Hint
	} else {
		s += "; the shop is unfrozen on its old cell"
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// Run moves (or aborts the move of) one shop.
func Run(ctx context.Context, o Options) (Result, error) {
	res := Result{App: o.App, Domain: o.Domain, To: o.To}
	if o.Propagation <= 0 {
		o.Propagation = 10 * time.Second
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	if err := router.CheckApp(o.App); err != nil {
		return res, err
	}
	if err := router.CheckDomain(o.Domain); err != nil {
		return res, err
	}
	if !o.Abort {
		if err := router.CheckCell(o.To); err != nil {
			return res, fmt.Errorf("--to: %w", err)
		}
	}
	cur, err := o.DB.Get(ctx, o.App, o.Domain)
	if err != nil {
		return res, err
	}
	if cur == nil {
		return res, fmt.Errorf("shop %s is not mapped for app %s (belay shop assign first)", o.Domain, o.App)
	}
	res.From = cur.Cell
	hint := fmt.Sprintf("resume with `belay shop move %s --app %s --to %s` or abort with `belay shop move %s --app %s --abort`", o.Domain, o.App, cur.MoveTo, o.Domain, o.App)
	if o.Abort {
		return abort(ctx, o, cur, res, "aborted by "+o.Actor)
	}
	switch {
	case cur.MoveTo != "" && cur.MoveTo != o.To:
		return res, fmt.Errorf("shop %s is being moved to %s (step %s), not %s: %s", o.Domain, cur.MoveTo, cur.MoveStep, o.To, hint)
	case cur.MoveTo == "" && cur.Cell == o.To:
		return res, fmt.Errorf("shop %s is already on cell %s", o.Domain, o.To)
	case cur.MoveTo != "":
		res.Resumed, res.ResumedAt = true, cur.MoveStep
		fmt.Fprintf(o.Log, "resuming the move of %s to %s (recorded at step %s)\n", o.Domain, o.To, cur.MoveStep)
	}
	hint = fmt.Sprintf("resume with `belay shop move %s --app %s --to %s` or abort with `belay shop move %s --app %s --abort`", o.Domain, o.App, o.To, o.Domain, o.App)
	fail := func(err error) (Result, error) {
		return res, &Error{Err: err, Frozen: true, Hint: hint}
	}
	// failBack unfreezes the shop on its old cell after a failed step.
	failBack := func(err error) (Result, error) {
		if _, aerr := o.DB.AbortMove(ctx, o.App, o.Domain, err.Error(), o.Actor); aerr != nil {
			return fail(fmt.Errorf("%w (and unfreezing failed: %v)", err, aerr))
		}
		return res, &Error{Err: err}
	}

	v, err := o.DB.BeginMove(ctx, o.App, o.Domain, o.To, o.Actor)
	if err != nil {
		return res, err
	}
	fmt.Fprintf(o.Log, "%s frozen (mapping version %d); waiting for the routers\n", o.Domain, v)
	routers, err := o.DB.WaitApplied(ctx, o.App, v, o.Propagation)
	if err != nil {
		return failBack(fmt.Errorf("freeze: %w", err))
	}
	frozenAt := time.Now()
	res.Routers = len(routers)

	if cur.MoveStep != "imported" {
		// A resume exports again: the shop is frozen, so its data on the
		// source cell has not changed since the first export.
		spool, err := os.CreateTemp(o.SpoolDir, "belay-move-*")
		if err != nil {
			return failBack(fmt.Errorf("spool file: %w", err))
		}
		defer os.Remove(spool.Name())
		defer spool.Close()
		fmt.Fprintf(o.Log, "exporting %s from cell %s\n", o.Domain, cur.Cell)
		if err := o.Hooks.Export(ctx, cur.Cell, o.Domain, spool); err != nil {
			return failBack(fmt.Errorf("export from cell %s: %w", cur.Cell, err))
		}
		if err := o.DB.SetStep(ctx, o.App, o.Domain, o.To, "exported", o.Actor); err != nil {
			return fail(err)
		}
		n, err := spool.Seek(0, io.SeekEnd)
		if err == nil {
			_, err = spool.Seek(0, io.SeekStart)
		}
		if err != nil {
			return failBack(fmt.Errorf("spool file: %w", err))
		}
		res.Bytes = n
		fmt.Fprintf(o.Log, "importing %d bytes of %s into cell %s\n", n, o.Domain, o.To)
		if err := o.Hooks.Import(ctx, o.To, o.Domain, spool); err != nil {
			return failBack(fmt.Errorf("import into cell %s: %w", o.To, err))
		}
		if err := o.DB.SetStep(ctx, o.App, o.Domain, o.To, "imported", o.Actor); err != nil {
			return fail(err)
		}
	}
	v, err = o.DB.FinishMove(ctx, o.App, o.Domain, o.To, o.Actor)
	if err != nil {
		return fail(fmt.Errorf("flipping the route: %w", err))
	}
	if _, err := o.DB.WaitApplied(ctx, o.App, v, o.Propagation); err != nil {
		// The route is flipped in the database: the lagging routers load
		// it when they can; until then they answer the freeze for this shop.
		res.FreezeMillis = time.Since(frozenAt).Milliseconds()
		return res, fmt.Errorf("moved %s to %s in the database, but not every router loaded it yet: %w", o.Domain, o.To, err)
	}
	res.FreezeMillis = time.Since(frozenAt).Milliseconds()
	fmt.Fprintf(o.Log, "%s moved from %s to %s; frozen %d ms\n", o.Domain, res.From, o.To, res.FreezeMillis)
	return res, nil
}

func abort(ctx context.Context, o Options, cur *router.Shop, res Result, reason string) (Result, error) {
	if cur.MoveTo == "" && cur.State == router.Active {
		return res, errors.New("shop " + o.Domain + " has no move in progress")
	}
	res.To, res.Aborted = cur.MoveTo, true
	v, err := o.DB.AbortMove(ctx, o.App, o.Domain, reason, o.Actor)
	if err != nil {
		return res, err
	}
	routers, err := o.DB.WaitApplied(ctx, o.App, v, o.Propagation)
	res.Routers = len(routers)
	if err != nil {
		return res, fmt.Errorf("move of %s aborted in the database (it stays on %s), but: %w", o.Domain, cur.Cell, err)
	}
	return res, nil
}
