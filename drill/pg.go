package drill

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/seedkeys"
)

// AppPasswordPurpose is the seedkeys purpose of the app role's password (hostspec).
const AppPasswordPurpose = "postgres/app"

// pgEndpoint reaches PostgreSQL the way an app server does: through an SSH
// tunnel from Via (5432 admits app servers only), as the app role.
type pgEndpoint struct {
	env  *Env
	Via  string
	User string
	DB   string
	pass string
}

func newPGEndpoint(env *Env, via string) (*pgEndpoint, error) {
	if env.Seed == "" {
		return nil, fmt.Errorf("the stack's host-key seed is needed for the app role's password: give --seed-file or $BELAY_HOST_KEY_SEED (the lab's is %s)", "/var/lib/belay/lab/seed")
	}
	u, err := url.Parse(env.Inv.Database.WriterURL)
	if err != nil || u.User == nil {
		return nil, fmt.Errorf("inventory database.writerUrl %q: expected postgresql://user@host:port,.../db", env.Inv.Database.WriterURL)
	}
	pw, err := seedkeys.Password(env.Seed, env.Inv.Stack, AppPasswordPurpose)
	if err != nil {
		return nil, fmt.Errorf("app role password: %w", err)
	}
	db := strings.TrimPrefix(u.Path, "/")
	if db == "" {
		db = env.Inv.Database.Name
	}
	return &pgEndpoint{env: env, Via: via, User: u.User.Username(), DB: db, pass: pw}, nil
}

// nodeAddr is a data node's PostgreSQL address.
func nodeAddr(inv *inventory.Inventory, node string) (string, error) {
	h := inv.Host(node)
	if h == nil {
		return "", fmt.Errorf("database node %q is not in the inventory", node)
	}
	port := inv.Database.Port
	if port == 0 {
		port = 5432
	}
	return net.JoinHostPort(h.PrivateAddress, strconv.Itoa(port)), nil
}

// config returns a pgx config for addrs (several = libpq multi-host); rw adds
// target_session_attrs=read-write so only the primary is accepted.
func (p *pgEndpoint) config(addrs []string, rw bool) (*pgx.ConnConfig, error) {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(p.User, p.pass), Host: strings.Join(addrs, ","), Path: "/" + p.DB}
	// The data nodes admit the app over TLS only (hostssl; self-signed certificates, as the apps use them).
	q := url.Values{"connect_timeout": {"2"}, "sslmode": {"require"}, "application_name": {"belay-drill"}}
	if rw {
		q.Set("target_session_attrs", "read-write")
	}
	u.RawQuery = q.Encode()
	cfg, err := pgx.ParseConfig(u.String())
	if err != nil {
		return nil, fmt.Errorf("postgres config: %w", err)
	}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		return p.env.Hosts.DialTCP(ctx, p.Via, addr)
	}
	lookup := func(ctx context.Context, host string) ([]string, error) { return []string{host}, nil }
	// pgconn uses these for every host of a multi-host config.
	cfg.DialFunc, cfg.LookupFunc = dial, lookup
	return cfg, nil
}

func (p *pgEndpoint) connect(ctx context.Context, addrs []string, rw bool) (*pgx.Conn, error) {
	cfg, err := p.config(addrs, rw)
	if err != nil {
		return nil, err
	}
	// connect_timeout (2 s) bounds each host; a dead first host costs that much, as it does for the apps' libpq.
	cctx, cancel := context.WithTimeout(ctx, 8*time.Second)
	defer cancel()
	c, err := pgx.ConnectConfig(cctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres %s via %s: %w", strings.Join(addrs, ","), p.Via, err)
	}
	return c, nil
}

// inRecovery asks one node pg_is_in_recovery().
func (p *pgEndpoint) inRecovery(ctx context.Context, node string) (bool, error) {
	addr, err := nodeAddr(p.env.Inv, node)
	if err != nil {
		return false, err
	}
	c, err := p.connect(ctx, []string{addr}, false)
	if err != nil {
		return false, err
	}
	defer c.Close(closeCtx(ctx))
	var rec bool
	qctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := c.QueryRow(qctx, "SELECT pg_is_in_recovery()").Scan(&rec); err != nil {
		return false, fmt.Errorf("%s: pg_is_in_recovery(): %w", node, err)
	}
	return rec, nil
}

// primaries asks every node and returns the writable ones and the errors.
func (p *pgEndpoint) roles(ctx context.Context, nodes []string) (primaries, replicas []string, errs []error) {
	for _, n := range nodes {
		rec, err := p.inRecovery(ctx, n)
		switch {
		case err != nil:
			errs = append(errs, err)
		case rec:
			replicas = append(replicas, n)
		default:
			primaries = append(primaries, n)
		}
	}
	return primaries, replicas, errs
}

// Writer is the write load: one INSERT per transaction, ids recorded only when COMMIT returned OK.
type Writer struct {
	Endpoint *pgEndpoint
	Addrs    []string
	// Base is the first id; ids are Base, Base+1, ...
	Base int64
	// Pace is the pause between writes.
	Pace time.Duration

	mu       sync.Mutex
	acked    []int64
	ackTimes []time.Time
	fails    []time.Time
	next     int64
	lastErr  string
}

// Run writes until ctx ends, reconnecting (multi-host, read-write) after any error.
func (w *Writer) Run(ctx context.Context) {
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(closeCtx(ctx))
		}
	}()
	w.next = w.Base
	for ctx.Err() == nil {
		if conn == nil {
			c, err := w.Endpoint.connect(ctx, w.Addrs, true)
			if err != nil {
				w.fail(err)
				sleepCtx(ctx, 100*time.Millisecond)
				continue
			}
			conn = c
		}
		id := w.next
		w.next++
		err := w.write(ctx, conn, id)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			w.fail(err)
			conn.Close(closeCtx(ctx))
			conn = nil
			continue
		}
		w.mu.Lock()
		w.acked = append(w.acked, id)
		w.ackTimes = append(w.ackTimes, time.Now())
		w.mu.Unlock()
		sleepCtx(ctx, w.Pace)
	}
}

func (w *Writer) write(ctx context.Context, conn *pgx.Conn, id int64) error {
	wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	tx, err := conn.Begin(wctx)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(wctx, InsertWriteSQL, id); err != nil {
		_ = tx.Rollback(context.WithoutCancel(ctx))
		return err
	}
	return tx.Commit(wctx)
}

func (w *Writer) fail(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.fails = append(w.fails, time.Now())
	w.lastErr = err.Error()
}

// Acked returns the acknowledged ids and their commit times.
func (w *Writer) Acked() ([]int64, []time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]int64(nil), w.acked...), append([]time.Time(nil), w.ackTimes...)
}

// End is one past the highest id the writer may have sent.
func (w *Writer) End() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.next
}

// WritableAgain returns the first ack after the first failure at or after t0.
func (w *Writer) WritableAgain(t0 time.Time) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return FirstAckAfterFailure(w.fails, w.ackTimes, t0)
}

// FirstAckAfterFailure is the first ack time after the first failure at or after t0.
func FirstAckAfterFailure(fails, acks []time.Time, t0 time.Time) (time.Time, bool) {
	var firstFail time.Time
	for _, f := range fails {
		if !f.Before(t0) {
			firstFail = f
			break
		}
	}
	if firstFail.IsZero() {
		return time.Time{}, false
	}
	for _, a := range acks {
		if a.After(firstFail) {
			return a, true
		}
	}
	return time.Time{}, false
}

// presentIDs reads the ids in [from, to) from a writable node.
func presentIDs(ctx context.Context, c *pgx.Conn, from, to int64) (map[int64]bool, error) {
	qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	rows, err := c.Query(qctx, "SELECT id FROM "+WritesTable+" WHERE id >= $1 AND id < $2", from, to)
	if err != nil {
		return nil, err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, err
	}
	out := make(map[int64]bool, len(ids))
	for _, id := range ids {
		out[id] = true
	}
	return out, nil
}

func sleepCtx(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// tunnelHost picks the app server the tunnel starts from (primary site, first answering).
func tunnelHost(ctx context.Context, env *Env, site inventory.SiteName) (string, error) {
	role := inventory.RoleApp
	if site == inventory.Standby {
		role = inventory.RoleStandbyApp
	}
	var errs []string
	for _, h := range env.Inv.WithRole(role) {
		if dedicatedCellHost(env.Inv, h) {
			continue // the stack's PostgreSQL does not admit it
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := env.Hosts.Run(cctx, h.Name, "true")
		cancel()
		if err == nil {
			return h.Name, nil
		}
		errs = append(errs, err.Error())
	}
	return "", fmt.Errorf("no %s app server answers SSH to tunnel PostgreSQL through (%s)", site, strings.Join(errs, "; "))
}

// closeCtx bounds a connection's goodbye: a primary that was just killed never answers it.
func closeCtx(ctx context.Context) context.Context {
	c, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	time.AfterFunc(2*time.Second, cancel)
	return c
}
