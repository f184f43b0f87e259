package labapp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ShopTable is the table the lab app keeps shop data in, in the database of
// its DATABASE_URL (a cell's own database: its role owns it, so it may create
// the table in the public schema).
const ShopTable = "labapp_shop_data"

const shopTableSQL = `CREATE TABLE IF NOT EXISTS ` + ShopTable + ` (
    shop       text PRIMARY KEY CHECK (length(shop) <= 253),
    data       bytea NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
)`

// maxConns bounds the connections a PGStore holds (and dials at once).
const maxConns = 8

// PGStore keeps shop data in PostgreSQL through a pgxpool: it dials on
// first use (the app starts while the database is down), drops a
// connection that saw an error, so a failover (the DSN lists both data
// nodes with target_session_attrs=read-write) reconnects to the new
// primary, and never dials more than maxConns at once.
//
// Why a pool and not a connection per request: after its database came
// back, a cell's app that dialled one connection per waiting request never
// recovered under the cell drill's load (session 8). Every request started
// its own TLS handshake and SCRAM exchange, the loaded database node took
// longer than the client's 2 s to finish them, each request's cancellation
// aborted its half-made connection ("could not accept SSL connection: EOF
// detected", 3,366 times in 5 minutes), so no connection ever completed.
// pgxpool dials in the background, bounded, and a cancelled request leaves
// the dial to finish for the next one.
type PGStore struct {
	pool  *pgxpool.Pool
	mu    sync.Mutex
	ready bool
}

// NewPGStore parses dsn; it does not connect.
func NewPGStore(dsn string) (*PGStore, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's error may quote the DSN with its password: never repeat it.
		return nil, errors.New("DATABASE_URL: not a valid PostgreSQL connection string")
	}
	cfg.MaxConns = maxConns
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		return nil, errors.New("DATABASE_URL: cannot set up the connection pool")
	}
	return &PGStore{pool: pool}, nil
}

// Close closes the pool.
func (s *PGStore) Close() { s.pool.Close() }

// with runs fn on a pooled connection, creating the table first if this
// process has not yet.
func (s *PGStore) with(ctx context.Context, fn func(c *pgx.Conn) error) error {
	pc, err := s.pool.Acquire(ctx)
	if err != nil {
		cfg := s.pool.Config().ConnConfig
		return fmt.Errorf("connecting to the shop database %s/%s: %w", cfg.Host, cfg.Database, err)
	}
	c := pc.Conn()
	err = s.ensure(ctx, c)
	if err == nil {
		err = fn(c)
	}
	if err != nil {
		// A connection that saw an error may be broken (terminated by the
		// server, a failover): never hand it to another request.
		_ = pc.Hijack().Close(context.Background())
		return err
	}
	pc.Release()
	return nil
}

// ensure creates the table once per process; an advisory lock serializes
// the cell's servers starting together (CREATE TABLE IF NOT EXISTS races).
func (s *PGStore) ensure(ctx context.Context, c *pgx.Conn) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ready {
		return nil
	}
	err := pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(7262772)"); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, shopTableSQL)
		return err
	})
	if err != nil {
		return fmt.Errorf("creating table %s: %w", ShopTable, err)
	}
	s.ready = true
	return nil
}

// Export implements ShopStore: one read in one (read-only) transaction.
func (s *PGStore) Export(ctx context.Context, shop string, w io.Writer) error {
	if err := checkShop(shop); err != nil {
		return err
	}
	var data []byte
	err := s.with(ctx, func(c *pgx.Conn) error {
		return pgx.BeginTxFunc(ctx, c, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
			err := tx.QueryRow(ctx, "SELECT data FROM "+ShopTable+" WHERE shop = $1", shop).Scan(&data)
			if errors.Is(err, pgx.ErrNoRows) {
				return nil
			}
			return err
		})
	})
	if err != nil {
		return fmt.Errorf("export %s: %w", shop, err)
	}
	if _, err := w.Write(data); err != nil {
		return fmt.Errorf("export %s: %w", shop, err)
	}
	return nil
}

// Import implements ShopStore: the whole input is read first, then written
// in one statement of one transaction, so a cut stream or a failed write
// leaves the previous data.
func (s *PGStore) Import(ctx context.Context, shop string, r io.Reader) error {
	if err := checkShop(shop); err != nil {
		return err
	}
	data, err := readAtMost(r, MaxShopData)
	if err == nil {
		err = s.with(ctx, func(c *pgx.Conn) error {
			return pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
				_, err := tx.Exec(ctx, "INSERT INTO "+ShopTable+" (shop, data) VALUES ($1, $2) "+
					"ON CONFLICT (shop) DO UPDATE SET data = EXCLUDED.data, updated_at = now()", shop, data)
				return err
			})
		})
	}
	if err != nil {
		return fmt.Errorf("import %s: %w", shop, err)
	}
	return nil
}

// Append implements ShopStore.
func (s *PGStore) Append(ctx context.Context, shop string, r io.Reader) error {
	if err := checkShop(shop); err != nil {
		return err
	}
	data, err := io.ReadAll(io.LimitReader(r, MaxAppend))
	if err == nil {
		err = s.with(ctx, func(c *pgx.Conn) error {
			_, err := c.Exec(ctx, "INSERT INTO "+ShopTable+" (shop, data) VALUES ($1, $2) "+
				"ON CONFLICT (shop) DO UPDATE SET data = "+ShopTable+".data || EXCLUDED.data, updated_at = now()", shop, data)
			return err
		})
	}
	if err != nil {
		return fmt.Errorf("append %s: %w", shop, err)
	}
	return nil
}

func readAtMost(r io.Reader, max int64) ([]byte, error) {
	var b bytes.Buffer
	n, err := b.ReadFrom(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if n > max {
		return nil, fmt.Errorf("more than %d bytes", max)
	}
	return b.Bytes(), nil
}
