package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/belay-sh/belay/router"
)

// SetTLS turns a mapped shop's own certificate on or off (audited as
// tls-on / tls-off); the same value again changes nothing. The trigger
// bumps the app's version, so every router's issuer learns it at once.
func (s *Store) SetTLS(ctx context.Context, app, domain string, on bool, actor string) (int64, error) {
	return s.change(ctx, app, domain, func(tx pgx.Tx, cur *router.Shop) (string, string, string, string, error) {
		if cur == nil {
			return "", "", "", "", fmt.Errorf("shop %s is not mapped for app %s; assign it first (belay shop assign)", domain, app)
		}
		if cur.TLS == on {
			return "", "", "", "", nil
		}
		if on {
			var n int
			if err := tx.QueryRow(ctx, "SELECT count(*) FROM belay_router.shops WHERE app = $1 AND tls", app).Scan(&n); err != nil {
				return "", "", "", "", fmt.Errorf("counting the shops of app %s with tls: %w", app, err)
			}
			if n+1 > router.MaxShopCerts {
				return "", "", "", "", fmt.Errorf("app %s has %d shops with tls, at most %d (each router's certificates dict, docs/cells.md); nothing changed", app, n, router.MaxShopCerts)
			}
		}
		if _, err := tx.Exec(ctx, "UPDATE belay_router.shops SET tls = $2, updated_at = now() WHERE domain = $1", domain, on); err != nil {
			return "", "", "", "", fmt.Errorf("setting tls of shop %s: %w", domain, err)
		}
		action := "tls-off"
		if on {
			action = "tls-on"
		}
		return action, cur.Cell, cur.Cell, "", nil
	}, actor)
}

// Cert is one router's certificate of one shop, as it reported it.
type Cert struct {
	Router    string    `json:"router"`
	Domain    string    `json:"domain"`
	State     string    `json:"state"`
	NotAfter  time.Time `json:"notAfter,omitzero"`
	Error     string    `json:"error,omitempty"`
	NextTry   time.Time `json:"nextTry,omitzero"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// ReportCerts replaces router name's certificate states of app with certs
// (every shop with tls as this router sees it), in one transaction.
func (s *Store) ReportCerts(ctx context.Context, app, name string, certs []Cert) error {
	return pgx.BeginFunc(ctx, s.Conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "DELETE FROM belay_router.certs WHERE app = $1 AND router = $2", app, name); err != nil {
			return fmt.Errorf("reporting the certificates of router %s: %w", name, err)
		}
		rows := make([][]any, 0, len(certs))
		for _, c := range certs {
			var na, nt any
			if !c.NotAfter.IsZero() {
				na = c.NotAfter
			}
			if !c.NextTry.IsZero() {
				nt = c.NextTry
			}
			rows = append(rows, []any{app, name, c.Domain, c.State, na, c.Error, nt})
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"belay_router", "certs"},
			[]string{"app", "router", "domain", "state", "not_after", "error", "next_try"}, pgx.CopyFromRows(rows)); err != nil {
			return fmt.Errorf("reporting the certificates of router %s: %w", name, err)
		}
		return nil
	})
}

// Certs lists every router's certificate states of app (of one shop if
// domain is set), by domain then router.
func (s *Store) Certs(ctx context.Context, app, domain string) ([]Cert, error) {
	rows, err := s.Conn.Query(ctx, `SELECT router, domain, state, coalesce(not_after, 'epoch'), error, coalesce(next_try, 'epoch'), updated_at
		FROM belay_router.certs WHERE app = $1 AND ($2 = '' OR domain = $2) ORDER BY domain, router`, app, domain)
	if err != nil {
		return nil, fmt.Errorf("reading the certificates of %s: %w", app, err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Cert, error) {
		var c Cert
		err := r.Scan(&c.Router, &c.Domain, &c.State, &c.NotAfter, &c.Error, &c.NextTry, &c.UpdatedAt)
		if c.NotAfter.Unix() == 0 {
			c.NotAfter = time.Time{}
		}
		if c.NextTry.Unix() == 0 {
			c.NextTry = time.Time{}
		}
		return c, err
	})
}
