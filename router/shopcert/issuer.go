// Package shopcert gives each shop flagged `tls` in the mapping its own
// certificate on every router: Debian's lego over HTTP-01 through the
// router's ACME webroot (the peer fallback lets a validation reach whichever
// router holds the VIP), one shop at a time, with a backoff per failing shop
// and a bound on the orders per hour, renewal under 30 days left. A
// certificate is installed root 0600 (files.go) and pushed to nginx's
// shared dict through the root-only control socket: never a reload per shop.
// Each router issues for itself: no private key leaves the host it was made on.
package shopcert

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	gosync "sync"
	"time"

	"github.com/belay-sh/belay/router"
)

// States of a shop's certificate on one router.
const (
	Pending = "pending" // flagged, not issued yet, no failure so far
	Issued  = "issued"  // served (Error set when its renewal failed)
	Failed  = "failed"  // never issued: the last attempt's Error, retried at NextTry
)

// RenewBefore is how long before expiry a certificate is renewed.
const RenewBefore = 30 * 24 * time.Hour

// Cert is one shop's certificate on this router.
type Cert struct {
	Domain   string    `json:"domain"`
	State    string    `json:"state"`
	NotAfter time.Time `json:"notAfter,omitzero"`
	Error    string    `json:"error,omitempty"`
	Failures int       `json:"failures,omitempty"`
	NextTry  time.Time `json:"nextTry,omitzero"`
}

// Nginx is the control socket's certificate endpoints (router/sync.Control).
type Nginx interface {
	Certs(ctx context.Context) (map[string]string, error)
	PutCert(ctx context.Context, domain string, pem []byte) error
	DeleteCert(ctx context.Context, domain string) error
}

// Options of an Issuer; zero fields take the defaults named on each.
type Options struct {
	App  string
	Conf router.ShopACME
	// StateDir is lego's --path and the issuer's state.json (default
	// /var/lib/belay/acme/APP/shops: root 0700; apart from the app's own
	// lego state, whose script holds its own lock).
	StateDir string
	// CertsDir holds the installed certificates (default router.CertsDir(App)).
	CertsDir string
	// Lego is the lego binary (default "lego").
	Lego string
	// Run runs lego (default: exec with env added), returning its combined output.
	Run   func(ctx context.Context, argv, env []string) ([]byte, error)
	Nginx Nginx
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Backoff is the delay after a shop's first failure, doubled at each
	// further one up to MaxBackoff (defaults 15 min and 24 h): a shop whose
	// DNS does not point here yet is retried ever more rarely, and never
	// blocks another (HTTP-01 failures also count against the CA's limit of
	// 5 failed validations per name and hour).
	Backoff, MaxBackoff time.Duration
	// Tick is the period of a pass (default 1 min); SetShops wakes it too.
	Tick time.Duration
	// Timeout bounds one lego run (default 3 min).
	Timeout time.Duration
	Log     io.Writer
}

func (o *Options) defaults() error {
	if err := router.CheckApp(o.App); err != nil {
		return err
	}
	if err := o.Conf.Check(); err != nil {
		return err
	}
	if o.Conf.PerHour == 0 {
		o.Conf.PerHour = router.DefaultShopCertsPerHour
	}
	if o.StateDir == "" {
		o.StateDir = "/var/lib/belay/acme/" + o.App + "/shops"
	}
	if o.CertsDir == "" {
		o.CertsDir = router.CertsDir(o.App)
	}
	if o.Lego == "" {
		o.Lego = "lego"
	}
	if o.Run == nil {
		o.Run = func(ctx context.Context, argv, env []string) ([]byte, error) {
			cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
			cmd.Env = append(os.Environ(), env...)
			return cmd.CombinedOutput()
		}
	}
	if o.Nginx == nil {
		return errors.New("shopcert: Options.Nginx: nil, expected nginx's control socket")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Backoff <= 0 {
		o.Backoff = 15 * time.Minute
	}
	if o.MaxBackoff < o.Backoff {
		o.MaxBackoff = 24 * time.Hour
	}
	if o.Tick <= 0 {
		o.Tick = time.Minute
	}
	if o.Timeout <= 0 {
		o.Timeout = 3 * time.Minute
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	return nil
}

// state is state.json: each flagged shop's certificate and the recent orders.
type state struct {
	Shops map[string]*Cert `json:"shops"`
	// Orders are the start times of lego runs in the last hour (the rate bound).
	Orders []time.Time `json:"orders"`
}

// Issuer keeps the flagged shops' certificates issued, installed and in nginx.
type Issuer struct {
	o    Options
	wake chan struct{}
	mu   gosync.Mutex
	want []string // nil until router-sync read the mapping once
	st   state
}

// New returns an issuer with its saved state.
func New(o Options) (*Issuer, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("shop certificates state: %w", err)
	}
	i := &Issuer{o: o, wake: make(chan struct{}, 1), st: state{Shops: map[string]*Cert{}}}
	b, err := os.ReadFile(i.statePath())
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("shop certificates state: %w", err)
	default:
		if err := json.Unmarshal(b, &i.st); err != nil || i.st.Shops == nil {
			// A damaged state loses backoffs only: certificates are in lego's dir.
			fmt.Fprintf(o.Log, "shop certificates: %s unreadable (%v); starting afresh\n", i.statePath(), err)
			i.st = state{Shops: map[string]*Cert{}}
		}
	}
	return i, nil
}

func (i *Issuer) statePath() string { return filepath.Join(i.o.StateDir, "state.json") }

func (i *Issuer) logf(format string, a ...any) {
	fmt.Fprintf(i.o.Log, "shop certificates %s: %s\n", i.o.App, fmt.Sprintf(format, a...))
}

// SetShops gives the flagged shops of the mapping router-sync just loaded.
// Until the first call nothing is removed (a start with the database down
// keeps serving every installed certificate).
func (i *Issuer) SetShops(domains []string) {
	i.mu.Lock()
	changed := i.want == nil || strings.Join(i.want, " ") != strings.Join(domains, " ")
	i.want = append([]string{}, domains...)
	i.mu.Unlock()
	if changed {
		select {
		case i.wake <- struct{}{}:
		default:
		}
	}
}

// States lists the flagged shops' certificates on this router, by domain
// (nil before the first SetShops).
func (i *Issuer) States() []Cert {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.want == nil {
		return nil
	}
	out := make([]Cert, 0, len(i.want))
	for _, d := range i.want {
		if c := i.st.Shops[d]; c != nil {
			out = append(out, *c)
		} else {
			out = append(out, Cert{Domain: d, State: Pending})
		}
	}
	return out
}

// Run makes passes until ctx ends: at start, every Tick and after a SetShops that changed the shops.
func (i *Issuer) Run(ctx context.Context) {
	for {
		if err := i.Pass(ctx); err != nil && ctx.Err() == nil {
			i.logf("%v", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-i.wake:
		case <-time.After(i.o.Tick):
		}
	}
}

// Pass does one round: forgets unflagged shops, issues or renews the due
// ones (one at a time, within the hourly bound), and makes nginx hold
// exactly the installed certificates.
func (i *Issuer) Pass(ctx context.Context) error {
	i.mu.Lock()
	want := i.want
	i.mu.Unlock()
	var errs []error
	if want != nil {
		if err := i.forget(want); err != nil {
			errs = append(errs, err)
		}
		for _, d := range i.due(want) {
			if ctx.Err() != nil {
				break
			}
			if !i.mayOrder() {
				i.logf("%d orders in the last hour (per-hour %d): the other due shops wait", len(i.st.Orders), i.o.Conf.PerHour)
				break
			}
			i.issue(ctx, d)
		}
		if err := i.save(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := i.syncNginx(ctx); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// forget removes the certificates of shops no longer flagged (lego's copy
// stays: a shop flagged again reuses it while it is valid).
func (i *Issuer) forget(want []string) error {
	keep := map[string]bool{}
	for _, d := range want {
		keep[d] = true
	}
	installed, err := Installed(i.o.CertsDir)
	if err != nil {
		return err
	}
	var errs []error
	for d := range installed {
		if !keep[d] {
			if err := Remove(i.o.CertsDir, d); err != nil {
				errs = append(errs, err)
			} else {
				i.logf("%s: tls off, certificate no longer served", d)
			}
		}
	}
	i.mu.Lock()
	for d := range i.st.Shops {
		if !keep[d] {
			delete(i.st.Shops, d)
		}
	}
	i.mu.Unlock()
	return errors.Join(errs...)
}

// due lists the flagged shops to order for now: no valid certificate (or
// under RenewBefore left) and past their backoff; soonest first, so a shop
// that waited longest goes before a new failure.
func (i *Issuer) due(want []string) []string {
	now := i.o.Now()
	type item struct {
		d    string
		next time.Time
	}
	var out []item
	for _, d := range want {
		c := i.cert(d)
		if pemData, err := i.legoPEM(d); err == nil {
			if na, err := NotAfter(pemData); err == nil && na.Sub(now) > RenewBefore {
				// Valid in lego's dir: install it if needed, nothing to order.
				if err := i.install(d, pemData, na); err != nil {
					i.logf("%s: %v", d, err)
				}
				continue
			}
		}
		if c.NextTry.After(now) {
			continue
		}
		out = append(out, item{d, c.NextTry})
	}
	sort.SliceStable(out, func(a, b int) bool { return out[a].next.Before(out[b].next) })
	ds := make([]string, len(out))
	for k, it := range out {
		ds[k] = it.d
	}
	return ds
}

// cert returns d's record, creating it pending.
func (i *Issuer) cert(d string) *Cert {
	i.mu.Lock()
	defer i.mu.Unlock()
	c := i.st.Shops[d]
	if c == nil {
		c = &Cert{Domain: d, State: Pending}
		i.st.Shops[d] = c
	}
	return c
}

func (i *Issuer) mayOrder() bool {
	cut := i.o.Now().Add(-time.Hour)
	kept := i.st.Orders[:0]
	for _, t := range i.st.Orders {
		if t.After(cut) {
			kept = append(kept, t)
		}
	}
	i.st.Orders = kept
	return len(kept) < i.o.Conf.PerHour
}

func (i *Issuer) save() error {
	i.mu.Lock()
	b, err := json.Marshal(i.st)
	i.mu.Unlock()
	if err != nil {
		return err
	}
	return writeSecret(i.statePath(), b)
}

// syncNginx makes nginx hold exactly the installed certificates (after its
// restart it loaded them itself; this repairs a failed push or a removal).
func (i *Issuer) syncNginx(ctx context.Context) error {
	installed, err := Installed(i.o.CertsDir)
	if err != nil {
		return err
	}
	held, err := i.o.Nginx.Certs(ctx)
	if err != nil {
		return fmt.Errorf("shop certificates: %w", err)
	}
	var errs []error
	for d, p := range installed {
		if held[d] != Digest(p) {
			if err := i.o.Nginx.PutCert(ctx, d, p); err != nil {
				errs = append(errs, fmt.Errorf("pushing %s's certificate: %w", d, err))
			} else {
				i.logf("%s: certificate pushed to nginx", d)
			}
		}
	}
	for d := range held {
		if _, ok := installed[d]; !ok {
			if err := i.o.Nginx.DeleteCert(ctx, d); err != nil {
				errs = append(errs, fmt.Errorf("removing %s's certificate from nginx: %w", d, err))
			}
		}
	}
	return errors.Join(errs...)
}
