package store

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Router is one router's last report.
type Router struct {
	Name      string    `json:"name"`
	Version   int64     `json:"version"`
	AppliedAt time.Time `json:"appliedAt,omitzero"`
	SeenAt    time.Time `json:"seenAt"`
	Error     string    `json:"error,omitempty"`
}

// Report records what router name has loaded (version) and any error of its
// last attempt; it also serves as the router's heartbeat.
func (s *Store) Report(ctx context.Context, app, name string, version int64, applied bool, errText string) error {
	q := `INSERT INTO belay_router.routers (app, name, version, applied_at, seen_at, error) VALUES ($1, $2, $3, CASE WHEN $4 THEN now() END, now(), $5)
		ON CONFLICT (app, name) DO UPDATE SET seen_at = now(), error = EXCLUDED.error,
		  version = CASE WHEN $4 THEN EXCLUDED.version ELSE belay_router.routers.version END,
		  applied_at = CASE WHEN $4 THEN now() ELSE belay_router.routers.applied_at END`
	if _, err := s.Conn.Exec(ctx, q, app, name, version, applied, errText); err != nil {
		return fmt.Errorf("reporting router %s: %w", name, err)
	}
	return nil
}

// Routers lists the routers of app.
func (s *Store) Routers(ctx context.Context, app string) ([]Router, error) {
	rows, err := s.Conn.Query(ctx, "SELECT name, version, coalesce(applied_at, 'epoch'), seen_at, error FROM belay_router.routers WHERE app = $1 ORDER BY name", app)
	if err != nil {
		return nil, fmt.Errorf("reading the routers of %s: %w", app, err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Router, error) {
		var x Router
		err := r.Scan(&x.Name, &x.Version, &x.AppliedAt, &x.SeenAt, &x.Error)
		if x.AppliedAt.Unix() == 0 {
			x.AppliedAt = time.Time{}
		}
		return x, err
	})
}

// LiveWindow is how recently a router must have reported to count as live:
// a move waits for every live router to load its freeze.
const LiveWindow = 2 * time.Minute

// WaitApplied waits until every router of app that reported within
// LiveWindow has loaded version or later. The error names the routers that
// did not, with their last error.
func (s *Store) WaitApplied(ctx context.Context, app string, version int64, timeout time.Duration) ([]Router, error) {
	deadline := time.Now().Add(timeout)
	for {
		all, err := s.Routers(ctx, app)
		if err != nil {
			return nil, err
		}
		var live, lag []Router
		for _, r := range all {
			if time.Since(r.SeenAt) > LiveWindow {
				continue
			}
			live = append(live, r)
			if r.Version < version {
				lag = append(lag, r)
			}
		}
		if len(live) > 0 && len(lag) == 0 {
			return live, nil
		}
		if time.Now().After(deadline) && len(live) == 0 {
			return nil, fmt.Errorf("no router of %s reported within %s: is belay-router-sync running on the routers?", app, LiveWindow)
		}
		if time.Now().After(deadline) {
			var names []string
			for _, r := range lag {
				n := fmt.Sprintf("%s (at version %d", r.Name, r.Version)
				if r.Error != "" {
					n += ", last error: " + r.Error
				}
				names = append(names, n+")")
			}
			return live, fmt.Errorf("routers did not load mapping version %d within %s: %s", version, timeout, strings.Join(names, "; "))
		}
		select {
		case <-ctx.Done():
			return live, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// CellCount is one cell's shops.
type CellCount struct {
	Cell   string `json:"cell"`
	Shops  int    `json:"shops"`
	Frozen int    `json:"frozen"`
}

// Counts counts the shops of app per cell.
func (s *Store) Counts(ctx context.Context, app string) ([]CellCount, error) {
	rows, err := s.Conn.Query(ctx, "SELECT cell, count(*), count(*) FILTER (WHERE state = 'frozen') FROM belay_router.shops WHERE app = $1 GROUP BY cell", app)
	if err != nil {
		return nil, fmt.Errorf("counting the shops of %s: %w", app, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (CellCount, error) {
		var c CellCount
		return c, r.Scan(&c.Cell, &c.Shops, &c.Frozen)
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Cell < out[j].Cell })
	return out, err
}

// AuditRow is one line of the audit.
type AuditRow struct {
	At     time.Time `json:"at"`
	Domain string    `json:"domain"`
	Action string    `json:"action"`
	From   string    `json:"from,omitempty"`
	To     string    `json:"to,omitempty"`
	Actor  string    `json:"actor,omitempty"`
	Detail string    `json:"detail,omitempty"`
}

// Audit returns the last n audit rows of app (of one shop if domain is set), oldest first.
func (s *Store) Audit(ctx context.Context, app, domain string, n int) ([]AuditRow, error) {
	rows, err := s.Conn.Query(ctx, `SELECT at, domain, action, from_cell, to_cell, actor, detail FROM
		(SELECT * FROM belay_router.audit WHERE app = $1 AND ($2 = '' OR domain = $2) ORDER BY id DESC LIMIT $3) a ORDER BY id`, app, domain, n)
	if err != nil {
		return nil, fmt.Errorf("reading the audit of %s: %w", app, err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (AuditRow, error) {
		var a AuditRow
		return a, r.Scan(&a.At, &a.Domain, &a.Action, &a.From, &a.To, &a.Actor, &a.Detail)
	})
}
