// Package store reads and writes the shop → cell mapping in PostgreSQL (the
// schema is router.Schema). Every change is one transaction that also writes
// its audit row, and is guarded by the state it expects, so two operators (or
// a crashed move and its resume) can never half-apply a change.
package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"

	"github.com/belay-sh/belay/router"
)

// Store is one connection to the platform database.
type Store struct {
	Conn *pgx.Conn
}

// Open connects with dsn (from the root-only db.conf on a router host).
func Open(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		// pgx's error may quote the DSN with its password: never repeat it.
		return nil, errors.New("database connection string: not a valid PostgreSQL DSN")
	}
	if cfg.ConnectTimeout == 0 || cfg.ConnectTimeout > 5*time.Second {
		cfg.ConnectTimeout = 5 * time.Second
	}
	// Cancel a wait by a socket deadline, not a cancel request: the
	// router's LISTEN loop times out its wait every Resync and must keep
	// its connection.
	cfg.BuildContextWatcherHandler = func(pc *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.DeadlineContextWatcherHandler{Conn: pc.Conn()}
	}
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to the mapping database %s:%d: %w", cfg.Host, cfg.Port, err)
	}
	return &Store{Conn: c}, nil
}

// Close closes the connection.
func (s *Store) Close() error { return s.Conn.Close(context.Background()) }

// EnsureSchema creates the schema if needed; an advisory lock serializes
// routers starting together (CREATE ... IF NOT EXISTS races otherwise).
func (s *Store) EnsureSchema(ctx context.Context) error {
	return pgx.BeginFunc(ctx, s.Conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(7262771)"); err != nil {
			return fmt.Errorf("schema lock: %w", err)
		}
		if _, err := tx.Exec(ctx, router.Schema); err != nil {
			return fmt.Errorf("creating schema belay_router: %w", err)
		}
		return nil
	})
}

const shopCols = "domain, app, cell, state, coalesce(move_to, ''), coalesce(move_step, ''), tls"

func scanShop(r pgx.Row) (router.Shop, error) {
	var s router.Shop
	var st string
	err := r.Scan(&s.Domain, &s.App, &s.Cell, &st, &s.MoveTo, &s.MoveStep, &s.TLS)
	s.State = router.State(st)
	return s, err
}

// Load reads the whole mapping of app and its version in one snapshot.
func (s *Store) Load(ctx context.Context, app string) (router.Mapping, error) {
	m := router.Mapping{App: app}
	err := pgx.BeginTxFunc(ctx, s.Conn, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, "SELECT coalesce((SELECT version FROM belay_router.versions WHERE app = $1), 0)", app).Scan(&m.Version); err != nil {
			return fmt.Errorf("reading the mapping version of %s: %w", app, err)
		}
		rows, err := tx.Query(ctx, "SELECT "+shopCols+" FROM belay_router.shops WHERE app = $1", app)
		if err != nil {
			return fmt.Errorf("reading the mapping of %s: %w", app, err)
		}
		defer rows.Close()
		for rows.Next() {
			sh, err := scanShop(rows)
			if err != nil {
				return fmt.Errorf("reading the mapping of %s: %w", app, err)
			}
			m.Shops = append(m.Shops, sh)
		}
		return rows.Err()
	})
	return m, err
}

// Get reads one shop (nil if it is not mapped).
func (s *Store) Get(ctx context.Context, app, domain string) (*router.Shop, error) {
	sh, err := scanShop(s.Conn.QueryRow(ctx, "SELECT "+shopCols+" FROM belay_router.shops WHERE domain = $1", domain))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading shop %s: %w", domain, err)
	}
	if sh.App != app {
		return nil, fmt.Errorf("shop %s belongs to app %s, not %s", domain, sh.App, app)
	}
	return &sh, nil
}

// ErrConflict is returned when a change finds the shop in another state than
// the one it expects (another operator, or a move in progress).
var ErrConflict = errors.New("the shop changed meanwhile")

// change runs fn in a transaction that locks the shop's row, and writes an
// audit row; it returns the app's version after the change.
func (s *Store) change(ctx context.Context, app, domain string, fn func(tx pgx.Tx, cur *router.Shop) (action, from, to, detail string, err error), actor string) (int64, error) {
	var v int64
	err := pgx.BeginFunc(ctx, s.Conn, func(tx pgx.Tx) error {
		var cur *router.Shop
		sh, err := scanShop(tx.QueryRow(ctx, "SELECT "+shopCols+" FROM belay_router.shops WHERE domain = $1 FOR UPDATE", domain))
		switch {
		case errors.Is(err, pgx.ErrNoRows):
		case err != nil:
			return fmt.Errorf("reading shop %s: %w", domain, err)
		default:
			if sh.App != app {
				return fmt.Errorf("shop %s belongs to app %s, not %s", domain, sh.App, app)
			}
			cur = &sh
		}
		action, from, to, detail, err := fn(tx, cur)
		if err != nil {
			return err
		}
		if action != "" {
			if err := audit(ctx, tx, app, domain, action, from, to, actor, detail); err != nil {
				return err
			}
		}
		return tx.QueryRow(ctx, "SELECT coalesce((SELECT version FROM belay_router.versions WHERE app = $1), 0)", app).Scan(&v)
	})
	return v, err
}

// checkRoom refuses adding shops beyond router.MaxShops, what each router's
// shared dicts hold: past it every router would refuse the whole mapping
// (router.Validate) and no change would reach nginx any more. Two
// concurrent assignments may still pass it together; Validate is the bound.
func checkRoom(ctx context.Context, tx pgx.Tx, app string, adding int) error {
	var n int
	if err := tx.QueryRow(ctx, "SELECT count(*) FROM belay_router.shops WHERE app = $1", app).Scan(&n); err != nil {
		return fmt.Errorf("counting the shops of app %s: %w", app, err)
	}
	if n+adding > router.MaxShops {
		return fmt.Errorf("app %s has %d shops; %d more would exceed %d, what each router holds (docs/cells.md); nothing assigned", app, n, adding, router.MaxShops)
	}
	return nil
}

func audit(ctx context.Context, tx pgx.Tx, app, domain, action, from, to, actor, detail string) error {
	if _, err := tx.Exec(ctx, `INSERT INTO belay_router.audit (app, domain, action, from_cell, to_cell, actor, detail)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`, app, domain, action, from, to, actor, detail); err != nil {
		return fmt.Errorf("writing the audit row: %w", err)
	}
	return nil
}

// Assign maps a new shop to cell (active). Assigning a mapped shop to its own
// cell changes nothing; to another cell it is refused: its data lives in its
// cell, so only a move (which carries the data) may change its cell.
func (s *Store) Assign(ctx context.Context, app, domain, cell, actor string) (int64, error) {
	return s.change(ctx, app, domain, func(tx pgx.Tx, cur *router.Shop) (string, string, string, string, error) {
		if cur != nil {
			if cur.Cell == cell {
				return "", "", "", "", nil
			}
			return "", "", "", "", fmt.Errorf("shop %s is already on cell %s; its data lives there: use belay shop move %s --app %s --to %s", domain, cur.Cell, domain, app, cell)
		}
		if err := checkRoom(ctx, tx, app, 1); err != nil {
			return "", "", "", "", err
		}
		if _, err := tx.Exec(ctx, "INSERT INTO belay_router.shops (domain, app, cell) VALUES ($1, $2, $3)", domain, app, cell); err != nil {
			return "", "", "", "", fmt.Errorf("inserting shop %s: %w", domain, err)
		}
		return "assign", "", cell, "", nil
	}, actor)
}

// BeginMove freezes the shop and records the move (step "freezing"). It is
// refused if another move to a different cell is in progress; the same move
// again is a resume and changes nothing.
func (s *Store) BeginMove(ctx context.Context, app, domain, to, actor string) (int64, error) {
	return s.change(ctx, app, domain, func(tx pgx.Tx, cur *router.Shop) (string, string, string, string, error) {
		switch {
		case cur == nil:
			return "", "", "", "", fmt.Errorf("shop %s is not mapped for app %s; assign it first (belay shop assign)", domain, app)
		case cur.MoveTo == to:
			return "", "", "", "", nil
		case cur.MoveTo != "":
			return "", "", "", "", fmt.Errorf("%w: shop %s is being moved to %s (step %s); resume that move or abort it (belay shop move %s --app %s --abort)", ErrConflict, domain, cur.MoveTo, cur.MoveStep, domain, app)
		case cur.Cell == to:
			return "", "", "", "", fmt.Errorf("shop %s is already on cell %s", domain, to)
		}
		if _, err := tx.Exec(ctx, "UPDATE belay_router.shops SET state = 'frozen', move_to = $2, move_step = 'freezing', updated_at = now() WHERE domain = $1", domain, to); err != nil {
			return "", "", "", "", fmt.Errorf("freezing shop %s: %w", domain, err)
		}
		return "move-begin", cur.Cell, to, "frozen", nil
	}, actor)
}

// SetStep records a move's progress (exported, imported).
func (s *Store) SetStep(ctx context.Context, app, domain, to, step, actor string) error {
	_, err := s.change(ctx, app, domain, func(tx pgx.Tx, cur *router.Shop) (string, string, string, string, error) {
		if cur == nil || cur.MoveTo != to {
			return "", "", "", "", fmt.Errorf("%w: shop %s is no longer being moved to %s", ErrConflict, domain, to)
		}
		if _, err := tx.Exec(ctx, "UPDATE belay_router.shops SET move_step = $2, updated_at = now() WHERE domain = $1", domain, step); err != nil {
			return "", "", "", "", fmt.Errorf("recording step %s of shop %s: %w", step, domain, err)
		}
		return "move-" + step, cur.Cell, to, "", nil
	}, actor)
	return err
}

// FinishMove flips the route to the target and unfreezes, in one transaction.
func (s *Store) FinishMove(ctx context.Context, app, domain, to, actor string) (int64, error) {
	return s.change(ctx, app, domain, func(tx pgx.Tx, cur *router.Shop) (string, string, string, string, error) {
		if cur == nil || cur.MoveTo != to || cur.MoveStep != "imported" {
			return "", "", "", "", fmt.Errorf("%w: shop %s is not an imported move to %s", ErrConflict, domain, to)
		}
		if _, err := tx.Exec(ctx, "UPDATE belay_router.shops SET cell = move_to, state = 'active', move_to = NULL, move_step = NULL, updated_at = now() WHERE domain = $1", domain); err != nil {
			return "", "", "", "", fmt.Errorf("flipping shop %s to %s: %w", domain, to, err)
		}
		return "move-done", cur.Cell, to, "", nil
	}, actor)
}

// AbortMove unfreezes the shop on its old cell and forgets the move.
func (s *Store) AbortMove(ctx context.Context, app, domain, reason, actor string) (int64, error) {
	return s.change(ctx, app, domain, func(tx pgx.Tx, cur *router.Shop) (string, string, string, string, error) {
		if cur == nil {
			return "", "", "", "", fmt.Errorf("shop %s is not mapped for app %s", domain, app)
		}
		if cur.MoveTo == "" && cur.State == router.Active {
			return "", "", "", "", nil
		}
		if _, err := tx.Exec(ctx, "UPDATE belay_router.shops SET state = 'active', move_to = NULL, move_step = NULL, updated_at = now() WHERE domain = $1", domain); err != nil {
			return "", "", "", "", fmt.Errorf("unfreezing shop %s: %w", domain, err)
		}
		return "move-abort", cur.Cell, cur.MoveTo, reason, nil
	}, actor)
}
