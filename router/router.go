// Package router is the pure part of belay's cell router: it checks a shop →
// cell mapping against the cells a router knows, and renders the nginx
// configuration (upstreams, the Lua that routes each request by a shared
// dict) and the routes snapshot that fills the dict. It does no I/O; router/store
// reads and writes the mapping in PostgreSQL, router/sync is the daemon that
// turns it into a loaded nginx configuration on every router (docs/cells.md).
package router

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/belay-sh/belay/shopkeys"
)

// State is a shop's routing state.
type State string

// The states of a shop.
const (
	// Active routes the shop to its cell.
	Active State = "active"
	// Frozen answers 503 with Retry-After for this shop alone (during a move).
	Frozen State = "frozen"
)

// Shop is one row of the mapping.
type Shop struct {
	Domain string `json:"domain"`
	App    string `json:"app"`
	Cell   string `json:"cell"`
	State  State  `json:"state"`
	// MoveTo and MoveStep describe a move in progress (empty otherwise).
	MoveTo   string `json:"moveTo,omitempty"`
	MoveStep string `json:"moveStep,omitempty"`
	// TLS asks the routers for the shop's own certificate (ACME HTTP-01,
	// router/shopcert); it does not change the shop's route.
	TLS bool `json:"tls,omitempty"`
}

// Mapping is every shop of one app, at one version of the table.
type Mapping struct {
	App string `json:"app"`
	// Version increases with every change of the app's rows (a sequence in
	// the database); routers report the version they loaded.
	Version int64  `json:"version"`
	Shops   []Shop `json:"shops"`
}

// Limits.
const (
	// MaxShops bounds one app's mapping: each router's shared dicts (DictSize)
	// are sized to hold this many shops of the longest domains.
	MaxShops = 100000
	// MaxCells bounds the cells of one app.
	MaxCells = 64
	// MaxShopCerts bounds the shops of one app with their own certificate:
	// each router holds every one in its certificates dict (CertDictSize;
	// a chain and key of about 3 KB take a 4 KiB slab, TestCertDictHoldsMaxShopCerts).
	MaxShopCerts = 10000
)

var (
	appRe   = regexp.MustCompile(`^[a-z][a-z0-9-]{0,39}$`)
	cellRe  = regexp.MustCompile(`^[a-z][a-z0-9-]{0,30}$`)
	labelRe = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	// Shop keys become nginx variable suffixes, as in deploy/traffic (package shopkeys).
	varNameRe = regexp.MustCompile(`^[A-Za-z0-9_]{1,64}$`)
	headerRe  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]{0,63}$`)
)

// CheckApp validates an app name (the same rule as the rest of belay).
func CheckApp(app string) error {
	if !appRe.MatchString(app) {
		return fmt.Errorf("app %q: expected a lowercase name (letter, then letters, digits, hyphens; at most 40)", app)
	}
	return nil
}

// CheckCell validates a cell name.
func CheckCell(cell string) error {
	if !cellRe.MatchString(cell) {
		return fmt.Errorf("cell %q: expected a lowercase name (letter, then letters, digits, hyphens; at most 31)", cell)
	}
	return nil
}

// CheckDomain validates a shop domain as stored: lowercase hostname syntax, at
// least two labels, no trailing dot, no wildcard (a wildcard would route shops
// nobody assigned; nginx's map matches exact names only, so none is
// designed). The two-label rule also keeps nginx map keywords (default,
// hostnames, include, volatile) out of the keys.
func CheckDomain(d string) error {
	if d == "" {
		return errors.New("domain: empty")
	}
	if len(d) > 253 {
		return fmt.Errorf("domain %.40q...: %d characters, a domain has at most 253", d, len(d))
	}
	if strings.Contains(d, "*") {
		return fmt.Errorf("domain %q: wildcards are not routed (assign each shop's exact domain)", d)
	}
	if d != strings.ToLower(d) {
		return fmt.Errorf("domain %q: expected lowercase (%q)", d, strings.ToLower(d))
	}
	labels := strings.Split(d, ".")
	if len(labels) < 2 {
		return fmt.Errorf("domain %q: expected a fully qualified name with at least two labels", d)
	}
	for _, l := range labels {
		if !labelRe.MatchString(l) {
			return fmt.Errorf("domain %q: label %q is not a DNS label (letters, digits, inner hyphens, 1-63 characters)", d, l)
		}
	}
	return nil
}

// NormalizeDomain lowercases a domain typed by a user, drops one trailing
// dot, and checks it.
func NormalizeDomain(s string) (string, error) {
	d := strings.ToLower(strings.TrimSuffix(strings.TrimSpace(s), "."))
	if err := CheckDomain(d); err != nil {
		return "", err
	}
	return d, nil
}

// Cell is one cell as a router knows it: where its app pair answers.
type Cell struct {
	Name string
	// Addrs are the cell's entry points (its VIP, ADDRESS:PORT).
	Addrs []netip.AddrPort
}

// Cells is /etc/belay/router/<app>/cells.conf: the cells this router may
// route to, rendered by the router's role (root-owned).
type Cells struct {
	App   string
	Cells []Cell
	// Default receives shops not in the mapping ("" answers Unknown).
	Default string
	// Unknown is the status of an unknown shop without a default cell: 421
	// (the default: misdirected request) or 404.
	Unknown int
	// RetryAfter is the Retry-After (seconds) of a frozen shop's 503.
	RetryAfter int
	// Keys name the shop parameter, header and cookie (the canary whitelist's).
	Keys shopkeys.Keys
}

// Has reports whether name is a cell of c.
func (c Cells) Has(name string) bool {
	for _, x := range c.Cells {
		if x.Name == name {
			return true
		}
	}
	return false
}

// Names lists the cell names in file order.
func (c Cells) Names() []string {
	var out []string
	for _, x := range c.Cells {
		out = append(out, x.Name)
	}
	return out
}

// DefaultRetryAfter is the Retry-After of a frozen shop when cells.conf sets none.
const DefaultRetryAfter = 30

// DefaultUnknown is the status of an unknown shop when cells.conf sets none.
const DefaultUnknown = 421

// ParseCells reads cells.conf for app. Format, one directive a line, '#'
// comments:
//
//	cell NAME ADDRESS:PORT [ADDRESS:PORT...]   (at least one cell)
//	default NAME                               (optional: unknown shops go there)
//	unknown 404|421                            (optional, default 421: the answer to an unknown shop without default)
//	retry-after SECONDS                        (optional, 1-3600, default 30)
//	shop-param NAME | shop-header NAME | shop-cookie NAME   (optional, the deploy keys)
func ParseCells(app string, data []byte) (Cells, error) {
	c := Cells{App: app, RetryAfter: DefaultRetryAfter, Unknown: DefaultUnknown}
	if err := CheckApp(app); err != nil {
		return c, err
	}
	var errs []error
	sc := bufio.NewScanner(bytes.NewReader(data))
	n := 0
	seenDirective := map[string]bool{}
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		bad := func(format string, a ...any) {
			errs = append(errs, fmt.Errorf("cells.conf line %d: %s", n, fmt.Sprintf(format, a...)))
		}
		if f[0] != "cell" {
			if seenDirective[f[0]] {
				bad("%s given twice", f[0])
			}
			seenDirective[f[0]] = true
			if len(f) != 2 {
				bad("%s: expected one value, got %d", f[0], len(f)-1)
				continue
			}
		}
		switch f[0] {
		case "cell":
			if len(f) < 3 {
				bad("expected: cell NAME ADDRESS:PORT [ADDRESS:PORT...]")
				continue
			}
			if err := CheckCell(f[1]); err != nil {
				bad("%v", err)
				continue
			}
			if c.Has(f[1]) {
				bad("cell %s given twice", f[1])
				continue
			}
			cell := Cell{Name: f[1]}
			for _, a := range f[2:] {
				ap, err := netip.ParseAddrPort(a)
				if err != nil || ap.Port() == 0 {
					bad("cell %s: %q, expected ADDRESS:PORT (an IP address; no names, the router must not depend on DNS)", f[1], a)
					continue
				}
				cell.Addrs = append(cell.Addrs, ap)
			}
			c.Cells = append(c.Cells, cell)
		case "default":
			c.Default = f[1]
		case "unknown":
			switch f[1] {
			case "404":
				c.Unknown = 404
			case "421":
				c.Unknown = 421
			default:
				bad("unknown %q: expected 404 or 421 (or a default line to send unknown shops to a cell)", f[1])
			}
		case "retry-after":
			v, err := strconv.Atoi(f[1])
			if err != nil || v < 1 || v > 3600 {
				bad("retry-after %q: expected whole seconds, 1-3600", f[1])
			}
			c.RetryAfter = v
		case "shop-param":
			if !varNameRe.MatchString(f[1]) {
				bad("shop-param %q: expected letters, digits, underscores (nginx $arg_ name)", f[1])
			}
			c.Keys.Param = f[1]
		case "shop-header":
			if !headerRe.MatchString(f[1]) {
				bad("shop-header %q: expected letters, digits, hyphens", f[1])
			}
			c.Keys.Header = f[1]
		case "shop-cookie":
			if !varNameRe.MatchString(f[1]) {
				bad("shop-cookie %q: expected letters, digits, underscores (nginx $cookie_ name)", f[1])
			}
			c.Keys.Cookie = f[1]
		default:
			bad("unknown directive %q (expected cell, default, unknown, retry-after, shop-param, shop-header, shop-cookie)", f[0])
		}
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, fmt.Errorf("cells.conf: %w", err))
	}
	if len(c.Cells) == 0 {
		errs = append(errs, errors.New("cells.conf: no cell line; expected at least one cell"))
	}
	if len(c.Cells) > MaxCells {
		errs = append(errs, fmt.Errorf("cells.conf: %d cells, at most %d", len(c.Cells), MaxCells))
	}
	if c.Default != "" && !c.Has(c.Default) {
		errs = append(errs, fmt.Errorf("cells.conf: default %q is not a cell (cells: %s)", c.Default, strings.Join(c.Names(), ", ")))
	}
	if c.Default != "" && seenDirective["unknown"] {
		// Either unknown shops go to a cell or they get an error page; both
		// lines would leave the reader guessing which one wins.
		errs = append(errs, errors.New("cells.conf: default and unknown both given, expected one of them"))
	}
	c.Keys = c.Keys.WithDefaults()
	return c, errors.Join(errs...)
}

// Validate checks a mapping read from the database before it reaches nginx:
// every row of this app, a valid lowercase domain, a known state, and a cell
// (and move target) this router knows. Any bad row refuses the whole mapping:
// the router keeps routing from its last good copy and says which row.
func Validate(m Mapping, c Cells) error {
	var errs []error
	if m.App != c.App {
		errs = append(errs, fmt.Errorf("mapping of app %q checked against the cells of %q", m.App, c.App))
	}
	if len(m.Shops) > MaxShops {
		errs = append(errs, fmt.Errorf("mapping: %d shops, at most %d (the routers' shared dicts are sized for that, docs/cells.md)", len(m.Shops), MaxShops))
	}
	seen := make(map[string]bool, len(m.Shops))
	certs := 0
	for i, s := range m.Shops {
		bad := func(format string, a ...any) {
			errs = append(errs, fmt.Errorf("shop %d (%q): %s", i, s.Domain, fmt.Sprintf(format, a...)))
		}
		if err := CheckDomain(s.Domain); err != nil {
			bad("%v", err)
		}
		if seen[s.Domain] {
			bad("domain listed twice")
		}
		seen[s.Domain] = true
		if s.App != m.App {
			bad("app %q, expected %q", s.App, m.App)
		}
		if !c.Has(s.Cell) {
			bad("cell %q is not in cells.conf (cells: %s)", s.Cell, strings.Join(c.Names(), ", "))
		}
		if s.State != Active && s.State != Frozen {
			bad("state %q, expected active or frozen", s.State)
		}
		if s.TLS {
			certs++
		}
		if s.MoveTo != "" && !c.Has(s.MoveTo) {
			bad("move target %q is not in cells.conf", s.MoveTo)
		}
		if len(errs) > 20 {
			errs = append(errs, errors.New("... more bad rows not listed"))
			break
		}
	}
	if certs > MaxShopCerts {
		errs = append(errs, fmt.Errorf("mapping: %d shops with tls, at most %d (each router's certificates dict is sized for that, docs/cells.md)", certs, MaxShopCerts))
	}
	return errors.Join(errs...)
}

// TLSShops lists the shops of m with the tls flag, sorted.
func TLSShops(m Mapping) []string {
	var out []string
	for _, s := range sortedShops(m.Shops) {
		if s.TLS {
			out = append(out, s.Domain)
		}
	}
	return out
}

// sortedShops returns the shops sorted by domain (a stable file for a stable table).
func sortedShops(in []Shop) []Shop {
	out := append([]Shop(nil), in...)
	sort.Slice(out, func(i, j int) bool { return out[i].Domain < out[j].Domain })
	return out
}
