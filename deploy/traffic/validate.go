package traffic

// Checking a Spec before anything is rendered: every value that reaches an
// nginx file is validated here (Validate, NormalizeShop, NormalizeClient).

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
)

var (
	appRe = regexp.MustCompile(`^[a-z][a-z0-9-]{0,39}$`)
	// Query parameter and cookie names become nginx variable suffixes ($arg_x, $cookie_x),
	// which allow only letters, digits and underscores.
	varNameRe = regexp.MustCompile(`^[A-Za-z0-9_]{1,64}$`)
	// Header names: RFC 9110 tokens restricted to what nginx turns into $http_x
	// (underscores are dropped by nginx unless underscores_in_headers is on).
	headerRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]{0,63}$`)
	labelRe  = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
)

// validValue accepts match values nginx can hold in a quoted map key without any
// reinterpretation: printable ASCII without quotes, backslash, '$', '{', '}', ';'
// or whitespace. That is strict on purpose: a value is user input written into a
// root-loaded config file, and nothing in it may become nginx syntax.
func validValue(v string) error {
	if v == "" {
		return errors.New("empty")
	}
	if len(v) > 256 {
		return fmt.Errorf("%d bytes, at most 256", len(v))
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("\"'\\${};", c) >= 0 {
			return fmt.Errorf("character %q at %d not allowed (printable ASCII except quotes, backslash, $ { } ; and spaces)", c, i)
		}
	}
	return nil
}

// NormalizeShop lowercases a shop domain and checks it is a DNS name.
func NormalizeShop(s string) (string, error) {
	d := strings.ToLower(strings.TrimSuffix(s, "."))
	if d == "" {
		return "", errors.New("empty shop domain")
	}
	if len(d) > 253 {
		return "", fmt.Errorf("shop %q: %d characters, a domain has at most 253", s, len(d))
	}
	for _, l := range strings.Split(d, ".") {
		if !labelRe.MatchString(l) {
			return "", fmt.Errorf("shop %q: %q is not a DNS label (letters, digits, inner hyphens, 1-63 characters)", s, l)
		}
	}
	return d, nil
}

// NormalizeClient parses an IP address or CIDR into canonical prefix form.
func NormalizeClient(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("client %q: not a CIDR: %v", s, err)
		}
		if p.Masked() != p {
			return netip.Prefix{}, fmt.Errorf("client %q: host bits set; did you mean %s?", s, p.Masked())
		}
		return p, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("client %q: not an IP address or CIDR", s)
	}
	if a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("client %q: zoned addresses are not allowed", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// Validate checks a Spec (empty Keys fields take their defaults) and lists every
// problem, each naming its field.
func (s Spec) Validate() error {
	s.Keys = s.Keys.WithDefaults()
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if !appRe.MatchString(s.App) {
		bad("app: %q, expected a lowercase name (letter, then letters, digits, hyphens; at most 40)", s.App)
	}
	if s.Port < 1 || s.Port > 65534 {
		bad("port: %d, expected 1-65534 (the canary listens on port+1)", s.Port)
	}
	if len(s.StableAddrs) == 0 {
		bad("stable addresses: empty, expected every group member's private address")
	}
	for i, a := range s.StableAddrs {
		if _, err := upstreamAddr(a); err != nil {
			bad("stable addresses[%d]: %v", i, err)
		}
	}
	for i, a := range s.CanaryAddrs {
		if _, err := upstreamAddr(a); err != nil {
			bad("canary addresses[%d]: %v", i, err)
		}
	}
	for i, d := range s.Down {
		if _, err := netip.ParseAddrPort(d); err != nil {
			bad("down[%d]: %q, expected ADDRESS:PORT", i, d)
		}
	}
	if !varNameRe.MatchString(s.Keys.Param) {
		bad("shop parameter: %q, expected letters, digits, underscores (nginx $arg_ name)", s.Keys.Param)
	}
	if !headerRe.MatchString(s.Keys.Header) {
		bad("shop header: %q, expected letters, digits, hyphens (no underscores: nginx drops such headers)", s.Keys.Header)
	}
	if !varNameRe.MatchString(s.Keys.Cookie) {
		bad("shop cookie: %q, expected letters, digits, underscores (nginx $cookie_ name)", s.Keys.Cookie)
	}
	st := s.Stage
	switch st.Kind {
	case Stable, Whitelist, Percent, Full:
	default:
		bad("stage: unknown kind %q, expected stable, whitelist, percent or full", st.Kind)
	}
	if st.Kind != Stable && len(s.CanaryAddrs) == 0 {
		bad("canary addresses: empty, a %s stage needs at least one canary host", st.Kind)
	}
	if st.Kind == Whitelist && st.Rules.Empty() {
		bad("whitelist: no shops, clients, headers or cookies; the canary would get no traffic")
	}
	if st.Kind == Percent {
		if st.Percent < 1 || st.Percent > 99 {
			bad("percent: %d, expected 1-99 (use the full stage for 100)", st.Percent)
		}
		if st.Sticky != "" && st.Sticky != ByClientIP && st.Sticky != ByShop {
			bad("sticky: %q, expected ip or shop", st.Sticky)
		}
	} else if st.Percent != 0 {
		bad("percent: %d given for a %s stage", st.Percent, st.Kind)
	}
	if st.Kind == Stable || st.Kind == Full {
		if !st.Rules.Empty() {
			bad("whitelist: rules given for a %s stage, where they would be ignored", st.Kind)
		}
	}
	if n := len(st.Rules.Shops); n > MaxShops {
		bad("whitelist shops: %d, at most %d", n, MaxShops)
	}
	if n := len(st.Rules.Clients); n > MaxClients {
		bad("whitelist clients: %d, at most %d", n, MaxClients)
	}
	if n := len(st.Rules.Headers) + len(st.Rules.Cookies); n > MaxMatches {
		bad("whitelist headers and cookies: %d, at most %d", n, MaxMatches)
	}
	if st.Sticky != "" && st.Kind != Percent {
		bad("sticky: %q given for a %s stage (only percent stages split)", st.Sticky, st.Kind)
	}
	for i, sh := range st.Rules.Shops {
		if _, err := NormalizeShop(sh); err != nil {
			bad("whitelist shops[%d]: %v", i, err)
		}
	}
	for i, c := range st.Rules.Clients {
		if _, err := NormalizeClient(c); err != nil {
			bad("whitelist clients[%d]: %v", i, err)
		}
	}
	for i, m := range st.Rules.Headers {
		if !headerRe.MatchString(m.Name) {
			bad("whitelist headers[%d]: name %q, expected letters, digits, hyphens", i, m.Name)
		}
		if err := validValue(m.Value); err != nil {
			bad("whitelist headers[%d] (%s): value: %v", i, m.Name, err)
		}
	}
	for i, m := range st.Rules.Cookies {
		if !varNameRe.MatchString(m.Name) {
			bad("whitelist cookies[%d]: name %q, expected letters, digits, underscores", i, m.Name)
		}
		if err := validValue(m.Value); err != nil {
			bad("whitelist cookies[%d] (%s): value: %v", i, m.Name, err)
		}
	}
	if s.Maintenance != nil {
		errs = append(errs, s.Maintenance.validate()...)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("traffic spec: %w", err)
	}
	return nil
}

func upstreamAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("%q is not an IP address", s)
	}
	return a.Unmap(), nil
}
