// Package sync is the daemon behind `belay host router-sync`: on every router
// host it keeps nginx's shop → cell map equal to the mapping in PostgreSQL.
//
// It LISTENs on router.Channel and, on a notification for its app (and every
// Resync as a safety net against a lost notification), reads the whole
// mapping in one snapshot, validates it against cells.conf, and pushes the
// routes to nginx's shared dict through the root-only control socket (no
// reload); it waits until no request of a newly frozen shop is in flight to
// its old cell, and reports the version it loaded to the database, which a
// shop move waits for. Only a cells.conf change re-renders map.conf (the
// upstreams), with nginx -t and a reload. A mapping that fails validation is
// refused whole: nginx keeps the last good routes. When the database is
// unreachable nothing changes: nginx keeps routing from the loaded routes
// (routes.txt at a restart; mapping.json is the readable copy), and the
// daemon reconnects with backoff.
package sync

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/belay-sh/belay/internal/nginxctl"
	"github.com/belay-sh/belay/router"
	"github.com/belay-sh/belay/router/shopcert"
	"github.com/belay-sh/belay/router/store"
)

// Options of one daemon; zero fields take the defaults named on each.
type Options struct {
	App string
	// Name is this router's name in the routers table (default: the hostname).
	Name string
	// Dir holds cells.conf, map.conf, routes.txt, mapping.json (default router.Dir(App)).
	Dir string
	// Socket is nginx's control socket of the app (default router.Socket(App)).
	Socket string
	// CertsDir holds the shops' certificates nginx loads at start (default router.CertsDir(App)).
	CertsDir string
	// Connect opens the database (the DSN comes from Dir/db.conf by default).
	Connect func(ctx context.Context) (*store.Store, error)
	// NginxTest and NginxReload (default nginx -t -q; systemctl reload
	// nginx.service) run when cells.conf changed map.conf.
	NginxTest, NginxReload []string
	// PIDFile is nginx's master PID file (default /run/nginx.pid) and Procs
	// lists processes (default /proc): after a reload the daemon waits until
	// the old workers are retired (the new upstreams serve).
	PIDFile string
	Procs   func() ([]nginxctl.Proc, error)
	// DrainTimeout bounds the wait, after a push that froze shops, for their
	// requests in flight to the old cell, and the wait for the control
	// socket after a reload (default 10 s).
	DrainTimeout time.Duration
	// Resync is the full re-read period, the safety net and heartbeat (default 5 s).
	Resync time.Duration
	// MinBackoff and MaxBackoff bound the reconnect delay (default 100 ms, 5 s).
	MinBackoff, MaxBackoff time.Duration
	// Log receives one line per event (default io.Discard).
	Log io.Writer
	// ShopCerts, when set, runs the shops' certificate issuer
	// (router/shopcert) with this daemon: its Nginx is the control socket,
	// its shops the mapping's tls shops; their states are reported to the
	// database. Nil (a router without ACME) reports every tls shop failed.
	ShopCerts *shopcert.Options
}

// noACME is the state of a tls shop on a router without ACME settings.
const noACME = "this router has no ACME settings (" + router.ShopACMEFile + "): the app's tls.mode must be acme"

func (o *Options) defaults() error {
	if err := router.CheckApp(o.App); err != nil {
		return err
	}
	if o.Name == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("router name: %w", err)
		}
		o.Name = h
	}
	if o.Dir == "" {
		o.Dir = router.Dir(o.App)
	}
	if o.Connect == nil {
		dsnPath := filepath.Join(o.Dir, router.DSNFile)
		o.Connect = func(ctx context.Context) (*store.Store, error) {
			dsn, err := ReadDSN(dsnPath)
			if err != nil {
				return nil, err
			}
			return store.Open(ctx, dsn)
		}
	}
	if o.Socket == "" {
		o.Socket = router.Socket(o.App)
	}
	if o.CertsDir == "" {
		o.CertsDir = router.CertsDir(o.App)
	}
	if o.NginxTest == nil {
		o.NginxTest = []string{"/usr/sbin/nginx", "-t", "-q"}
	}
	if o.NginxReload == nil {
		o.NginxReload = []string{"systemctl", "reload", "nginx.service"}
	}
	if o.PIDFile == "" {
		o.PIDFile = "/run/nginx.pid"
	}
	if o.Procs == nil {
		o.Procs = nginxctl.ProcFS
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = 10 * time.Second
	}
	if o.Resync <= 0 {
		o.Resync = 5 * time.Second
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = 100 * time.Millisecond
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = 5 * time.Second
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	return nil
}

// ReadDSN reads a root-only DSN file; it refuses a file others may read (the
// DSN holds the router role's password).
func ReadDSN(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("database DSN: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("database DSN %s: mode %o, expected 0600 (it holds a password)", path, st.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("database DSN: %w", err)
	}
	dsn := strings.TrimSpace(string(b))
	if dsn == "" {
		return "", fmt.Errorf("database DSN %s: empty", path)
	}
	return dsn, nil
}

// Daemon is one running router-sync.
type Daemon struct {
	o       Options
	version int64 // version nginx routes by, -1 before the first load
	nginx   *Control
	// pushed are the routes nginx holds as pushedID, as far as this daemon
	// knows (nil at start): the base of the next diff, and the frozen shops
	// not to wait for again (an old freeze has nothing in flight, and a
	// counter left behind by a crashed worker must not delay every push).
	pushed   router.Routes
	pushedID string
	// keyReload is when nginx was last reloaded because it refused the
	// control key file (at most once a minute).
	keyReload time.Time
	// issuer is nil without ShopCerts; tlsShops are the mapping's last
	// tls shops and reportedCerts the last certificate report.
	issuer        *shopcert.Issuer
	tlsShops      []string
	reportedCerts string
}

// Run syncs until ctx ends. It returns only on a bad setup or when ctx ends.
func Run(ctx context.Context, o Options) error {
	if err := o.defaults(); err != nil {
		return err
	}
	d := &Daemon{o: o, version: -1, nginx: NewControl(o.Socket)}
	if m, err := LoadCache(o.Dir); err == nil && m != nil {
		d.version = m.Version
		d.logf("cached mapping: version %d, %d shops (nginx routes from it until the database answers)", m.Version, len(m.Shops))
	}
	if o.ShopCerts != nil {
		so := *o.ShopCerts
		so.Nginx, so.App, so.CertsDir = d.nginx, o.App, o.CertsDir
		if so.Log == nil {
			so.Log = o.Log
		}
		iss, err := shopcert.New(so)
		if err != nil {
			return fmt.Errorf("shop certificates: %w", err)
		}
		d.issuer = iss
		go iss.Run(ctx)
	}
	backoff := o.MinBackoff
	for ctx.Err() == nil {
		st, err := o.Connect(ctx)
		if err == nil {
			start := time.Now()
			err = d.session(ctx, st)
			_ = st.Close()
			if time.Since(start) > o.MaxBackoff {
				backoff = o.MinBackoff // a session that lasted: a fresh outage
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		d.logf("database: %v; routing continues from the loaded map (version %d); retry in %s", err, d.version, backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, o.MaxBackoff)
	}
	return nil
}

func (d *Daemon) logf(format string, a ...any) {
	fmt.Fprintf(d.o.Log, "router-sync %s: %s\n", d.o.App, fmt.Sprintf(format, a...))
}

// session runs on one connection until it fails.
func (d *Daemon) session(ctx context.Context, st *store.Store) error {
	if err := st.EnsureSchema(ctx); err != nil {
		return err
	}
	if _, err := st.Conn.Exec(ctx, "LISTEN "+router.Channel); err != nil {
		return fmt.Errorf("LISTEN %s: %w", router.Channel, err)
	}
	d.logf("connected; listening on %s", router.Channel)
	d.reportedCerts = "" // a new session reports the certificates again
	for {
		// Everything that changed before this read is in it, so a
		// notification that arrives meanwhile only causes one more read.
		if err := d.syncOnce(ctx, st); err != nil {
			return err
		}
		if err := d.wait(ctx, st); err != nil {
			return err
		}
	}
}

// wait returns at a notification for this app or after Resync.
func (d *Daemon) wait(ctx context.Context, st *store.Store) error {
	deadline := time.Now().Add(d.o.Resync)
	for {
		wctx, cancel := context.WithDeadline(ctx, deadline)
		n, err := st.Conn.WaitForNotification(wctx)
		cancel()
		switch {
		case err == nil && n.Payload == d.o.App:
			return nil
		case err == nil:
			continue // another app's change
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, context.DeadlineExceeded) || time.Now().After(deadline):
			if st.Conn.IsClosed() {
				return errors.New("connection closed")
			}
			return nil // the periodic full re-read
		default:
			return fmt.Errorf("waiting for notifications: %w", err)
		}
	}
}

// syncOnce reads, validates, and loads the mapping, and reports the result.
func (d *Daemon) syncOnce(ctx context.Context, st *store.Store) error {
	m, err := st.Load(ctx, d.o.App)
	if err != nil {
		return err
	}
	applyErr := d.apply(ctx, m)
	if applyErr != nil {
		d.logf("mapping version %d refused, nginx keeps version %d: %v", m.Version, d.version, applyErr)
		return st.Report(ctx, d.o.App, d.o.Name, d.version, false, oneLine(applyErr))
	}
	if err := st.Report(ctx, d.o.App, d.o.Name, m.Version, true, ""); err != nil {
		return err
	}
	return d.reportCerts(ctx, st)
}

func oneLine(err error) string {
	s := strings.ReplaceAll(err.Error(), "\n", "; ")
	if len(s) > 2000 {
		s = s[:2000] + "..."
	}
	return s
}

// apply makes nginx route by m; it changes nothing when m fails any check.
func (d *Daemon) apply(ctx context.Context, m router.Mapping) error {
	cellsPath := filepath.Join(d.o.Dir, router.CellsFile)
	raw, err := os.ReadFile(cellsPath)
	if err != nil {
		return fmt.Errorf("cells: %w", err)
	}
	cells, err := router.ParseCells(d.o.App, raw)
	if err != nil {
		return fmt.Errorf("%s: %w", cellsPath, err)
	}
	if err := router.Validate(m, cells); err != nil {
		return err
	}
	// Upstreams first: a route may name a cell new in cells.conf.
	reloaded, err := d.renderConf(ctx, cells)
	if err != nil {
		return err
	}
	routes, id := router.RenderRoutes(m)
	loaded, err := d.loaded(ctx, reloaded)
	if err != nil {
		return err
	}
	if loaded != id {
		// routes.txt first: an nginx (re)started from now on loads this
		// snapshot even if the push below fails.
		if err := nginxctl.WriteFile(filepath.Join(d.o.Dir, router.RoutesFile), routes); err != nil {
			return err
		}
		var fresh []string
		for _, s := range router.FrozenShops(m) {
			if d.pushed[s] != router.CellFrozen {
				fresh = append(fresh, s)
			}
		}
		if err := d.push(ctx, m, loaded, routes); err != nil {
			return err
		}
		d.pushed, d.pushedID = router.RoutesOf(m), id
		if err := d.waitInFlight(ctx, fresh); err != nil {
			// nginx routes by the new snapshot, but the version is not
			// reported: a move must not rely on it yet. The next re-read
			// finds it loaded and reports it.
			return fmt.Errorf("routes of version %d loaded, not reported yet: %w", m.Version, err)
		}
	}
	if d.pushedID != id {
		d.pushed, d.pushedID = router.RoutesOf(m), id // nginx loaded it from routes.txt
	}
	d.version = m.Version
	d.tlsShops = router.TLSShops(m)
	if d.issuer != nil {
		d.issuer.SetShops(d.tlsShops)
	}
	return SaveCache(d.o.Dir, m)
}

// push sends nginx the changes since the routes it holds when the daemon
// knows them (a diff: the cost follows the change, not the mapping's size),
// else, or when nginx refuses the diff, the whole snapshot.
func (d *Daemon) push(ctx context.Context, m router.Mapping, loaded string, routes []byte) error {
	start := time.Now()
	if d.pushed != nil && loaded == d.pushedID {
		diff, _ := router.RenderDiff(d.pushed, d.pushedID, m)
		err := d.nginx.Load(ctx, diff)
		if err == nil {
			d.logf("pushed mapping version %d (%d shops) as a diff in %s", m.Version, len(m.Shops), time.Since(start).Round(time.Millisecond))
			return nil
		}
		d.logf("diff to version %d refused (%v); pushing the whole snapshot", m.Version, err)
	}
	if err := d.nginx.Load(ctx, routes); err != nil {
		return err
	}
	d.logf("pushed mapping version %d (%d shops) in %s", m.Version, len(m.Shops), time.Since(start).Round(time.Millisecond))
	return nil
}

// loaded asks nginx which snapshot it routes by. Right after a reload that
// created the control server, the socket may not be there yet.
func (d *Daemon) loaded(ctx context.Context, reloaded bool) (string, error) {
	deadline := time.Now().Add(d.o.DrainTimeout)
	for {
		id, err := d.nginx.Loaded(ctx)
		if errors.Is(err, ErrControlKey) && time.Since(d.keyReload) > time.Minute {
			// The key file changed under a running nginx (deleted, then
			// made anew by an nginx -t): a reload makes nginx read it.
			d.keyReload, reloaded = time.Now(), true
			d.logf("nginx refuses the control key file (%v); reloading nginx so that it reads the file", err)
			before, _ := nginxctl.Generation(d.o.PIDFile, d.o.Procs)
			if out, rerr := nginxctl.Run(ctx, d.o.NginxReload); rerr != nil {
				return "", fmt.Errorf("nginx reload for the control key: %w: %s", rerr, out)
			}
			if serr := d.settle(ctx, before); serr != nil {
				return "", fmt.Errorf("after the reload for the control key: %w", serr)
			}
			continue
		}
		if err == nil || !reloaded || time.Now().After(deadline) {
			return id, err
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// waitInFlight waits until no request of the frozen shops is in flight
// (counted by nginx from before its route was read to its log phase), at
// most DrainTimeout.
func (d *Daemon) waitInFlight(ctx context.Context, frozen []string) error {
	if len(frozen) == 0 {
		return nil
	}
	deadline := time.Now().Add(d.o.DrainTimeout)
	for {
		busy, err := d.nginx.InFlight(ctx, frozen)
		if err != nil {
			return err
		}
		if len(busy) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			var names []string
			for s, n := range busy {
				names = append(names, fmt.Sprintf("%s (%d)", s, n))
			}
			sort.Strings(names)
			return fmt.Errorf("frozen shops still have requests in flight to their old cell after %s: %s", d.o.DrainTimeout, strings.Join(names, ", "))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// renderConf writes map.conf for cells and reloads nginx when it changed
// (cells.conf changed: upstreams, default cell); it reports whether it did.
func (d *Daemon) renderConf(ctx context.Context, cells router.Cells) (bool, error) {
	want := router.Render(cells, router.Paths{Routes: filepath.Join(d.o.Dir, router.RoutesFile), Socket: d.o.Socket, Certs: d.o.CertsDir})
	mapPath := filepath.Join(d.o.Dir, router.MapFile)
	old, err := os.ReadFile(mapPath)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, err
	}
	if bytes.Equal(old, want) {
		return false, nil
	}
	if err := nginxctl.WriteFile(mapPath, want); err != nil {
		return false, err
	}
	restore := func() {
		if old == nil {
			_ = os.Remove(mapPath)
		} else {
			_ = nginxctl.WriteFile(mapPath, old)
		}
	}
	if out, err := nginxctl.Run(ctx, d.o.NginxTest); err != nil {
		restore()
		return false, fmt.Errorf("nginx -t rejected map.conf (old one restored): %w: %s", err, out)
	}
	before, _ := nginxctl.Generation(d.o.PIDFile, d.o.Procs)
	if out, err := nginxctl.Run(ctx, d.o.NginxReload); err != nil {
		restore()
		_, _ = nginxctl.Run(ctx, d.o.NginxReload)
		return false, fmt.Errorf("nginx reload failed (old map.conf restored): %w: %s", err, out)
	}
	if err := d.settle(ctx, before); err != nil {
		return true, fmt.Errorf("after the reload for cells.conf: %w", err)
	}
	d.logf("map.conf re-rendered for cells.conf, nginx reloaded")
	return true, nil
}

// LoadCache reads the last good mapping (nil if there is none).
func LoadCache(dir string) (*router.Mapping, error) {
	b, err := os.ReadFile(filepath.Join(dir, router.CacheFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var m router.Mapping
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, router.CacheFile), err)
	}
	return &m, nil
}

// SaveCache writes the last good mapping.
func SaveCache(dir string, m router.Mapping) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return nginxctl.WriteFile(filepath.Join(dir, router.CacheFile), append(b, '\n'))
}
