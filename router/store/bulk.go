package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Assigned is one shop of a bulk assignment: Previous is the cell it was
// already mapped to ("" for a shop this assignment mapped).
type Assigned struct {
	Domain   string `json:"domain"`
	Cell     string `json:"cell"`
	Previous string `json:"previous,omitempty"`
	// New is true when this assignment mapped the shop (false: it was
	// already on Cell and nothing changed for it).
	New bool `json:"new"`
}

// maxConflictsShown bounds the conflicting shops one error names.
const maxConflictsShown = 10

// AssignMany maps domains (checked, distinct) to cell in ONE transaction:
// one audit row per newly mapped shop, and one version and one notification
// for the whole batch (the row trigger bumps the version per row, but only
// the last one is visible at commit, and PostgreSQL folds the identical
// notifications of a transaction into one). Shops already on cell are left
// as they are; a shop mapped to another cell refuses the whole batch (its data
// lives there: only a move may change its cell), naming every such shop, and
// nothing is assigned. Set-based statements keep 10,000 shops to a few round
// trips.
func (s *Store) AssignMany(ctx context.Context, app string, domains []string, cell, actor, detail string) ([]Assigned, int64, error) {
	var out []Assigned
	var v int64
	err := pgx.BeginFunc(ctx, s.Conn, func(tx pgx.Tx) error {
		out = out[:0]
		rows, err := tx.Query(ctx, "SELECT domain, app, cell FROM belay_router.shops WHERE domain = ANY($1) FOR UPDATE", domains)
		if err != nil {
			return fmt.Errorf("reading %d shops: %w", len(domains), err)
		}
		type cur struct{ app, cell string }
		have := map[string]cur{}
		for rows.Next() {
			var d string
			var c cur
			if err := rows.Scan(&d, &c.app, &c.cell); err != nil {
				rows.Close()
				return fmt.Errorf("reading %d shops: %w", len(domains), err)
			}
			have[d] = c
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("reading %d shops: %w", len(domains), err)
		}
		var conflicts []string
		nconf := 0
		var fresh []string
		for _, d := range domains {
			c, ok := have[d]
			switch {
			case !ok:
				fresh = append(fresh, d)
				out = append(out, Assigned{Domain: d, Cell: cell, New: true})
			case c.app != app:
				nconf++
				if len(conflicts) < maxConflictsShown {
					conflicts = append(conflicts, fmt.Sprintf("%s (app %s)", d, c.app))
				}
			case c.cell != cell:
				nconf++
				if len(conflicts) < maxConflictsShown {
					conflicts = append(conflicts, fmt.Sprintf("%s (on %s)", d, c.cell))
				}
			default:
				out = append(out, Assigned{Domain: d, Cell: cell, Previous: c.cell})
			}
		}
		if nconf > 0 {
			more := ""
			if nconf > len(conflicts) {
				more = fmt.Sprintf(" and %d more", nconf-len(conflicts))
			}
			return fmt.Errorf("%d of %d shops are already mapped elsewhere, nothing assigned: %s%s; their data lives there: use belay shop move DOMAIN --app %s --to %s",
				nconf, len(domains), strings.Join(conflicts, ", "), more, app, cell)
		}
		if len(fresh) > 0 {
			if err := checkRoom(ctx, tx, app, len(fresh)); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, "INSERT INTO belay_router.shops (domain, app, cell) SELECT unnest($1::text[]), $2, $3", fresh, app, cell); err != nil {
				return fmt.Errorf("inserting %d shops: %w", len(fresh), err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO belay_router.audit (app, domain, action, from_cell, to_cell, actor, detail)
					SELECT $2, unnest($1::text[]), 'assign', '', $3, $4, $5`, fresh, app, cell, actor, detail); err != nil {
				return fmt.Errorf("writing the audit rows: %w", err)
			}
		}
		return tx.QueryRow(ctx, "SELECT coalesce((SELECT version FROM belay_router.versions WHERE app = $1), 0)", app).Scan(&v)
	})
	if err != nil {
		return nil, 0, err
	}
	return out, v, nil
}
