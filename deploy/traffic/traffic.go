package traffic

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/shopkeys"
)

// Kind is the stage of a rollout.
type Kind string

// The rollout stages, in the order a rollout walks them.
const (
	Stable    Kind = "stable"    // all traffic to the stable release
	Whitelist Kind = "whitelist" // listed shops/clients/headers/cookies to the canary
	Percent   Kind = "percent"   // a sticky share of clients (plus the whitelist) to the canary
	Full      Kind = "full"      // all traffic to the canary (canary 100 %)
)

// Sticky names the key a Percent split hashes, so a client stays on one side.
type Sticky string

// The sticky keys.
const (
	// ByClientIP hashes $remote_addr (the default).
	ByClientIP Sticky = "ip"
	// ByShop hashes the shop (query parameter, then header, then cookie) and falls
	// back to $remote_addr for requests naming no shop: one shop, one release.
	ByShop Sticky = "shop"
)

// Dir is the directory holding an app's routing files on every app server.
func Dir(app string) string { return "/etc/belay/nginx/" + app }

// HTTPPath is the http-level file (upstreams and maps) of an app.
func HTTPPath(app string) string { return Dir(app) + "/http.conf" }

// RoutingPath is the server-level file (the pool choice) of an app.
func RoutingPath(app string) string { return Dir(app) + "/routing.conf" }

// HTTPInclude is the line the base config puts at http level (in conf.d, before the server block).
func HTTPInclude(app string) string { return "include " + HTTPPath(app) + ";" }

// RoutingInclude is the line the base config puts inside the app's server block.
func RoutingInclude(app string) string { return "include " + RoutingPath(app) + ";" }

// StableUpstream is the upstream group of the stable release.
func StableUpstream(app string) string { return "belay_" + app + "_stable" }

// CanaryUpstream is the upstream group of the canary release.
func CanaryUpstream(app string) string { return "belay_" + app + "_canary" }

// Keys says where a request names its shop (config.Deploy, with defaults).
// It lives in package shopkeys, which the cell router shares without
// importing the deploy pipeline.
type Keys = shopkeys.Keys

// Limits of one whitelist (tested with real nginx: a file with MaxShops shops
// loads in well under a second).
const (
	MaxShops   = 10000
	MaxClients = 10000
	MaxMatches = 100 // extra header and cookie matches together
)

// Default shop keys, as documented in config.Deploy.
const (
	DefaultShopParam  = shopkeys.DefaultParam
	DefaultShopHeader = shopkeys.DefaultHeader
	DefaultShopCookie = shopkeys.DefaultCookie
)

// Match is one extra header or cookie that sends a request to the canary when
// its value equals Value (compared case-insensitively, as nginx maps do).
type Match struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Rules select the requests that go to the canary in the Whitelist stage, and
// that stay on the canary in the Percent stages.
type Rules struct {
	// Shops are shop domains (matched case-insensitively in the query parameter,
	// the header and the cookie named by Keys).
	Shops []string `json:"shops,omitempty"`
	// Clients are client IP addresses or CIDRs ($remote_addr).
	Clients []string `json:"clients,omitempty"`
	// Headers and Cookies are extra exact-value matches.
	Headers []Match `json:"headers,omitempty"`
	Cookies []Match `json:"cookies,omitempty"`
}

// Empty reports whether the rules match nothing.
func (r Rules) Empty() bool {
	return len(r.Shops) == 0 && len(r.Clients) == 0 && len(r.Headers) == 0 && len(r.Cookies) == 0
}

// Stage is one step of a rollout.
type Stage struct {
	Kind Kind `json:"kind"`
	// Rules apply to Whitelist (required) and Percent (optional) stages.
	Rules Rules `json:"rules,omitzero"`
	// Percent is the canary share of clients in a Percent stage, 1-99.
	Percent int `json:"percent,omitempty"`
	// Sticky is the split key of a Percent stage (default ByClientIP).
	Sticky Sticky `json:"sticky,omitempty"`
}

// String describes the stage for logs and comments ("percent 10 (sticky ip)").
func (s Stage) String() string {
	switch s.Kind {
	case Percent:
		st := s.Sticky
		if st == "" {
			st = ByClientIP
		}
		return fmt.Sprintf("percent %d (sticky %s)", s.Percent, st)
	default:
		return string(s.Kind)
	}
}

// Spec is everything the routing of one app for one stage depends on.
// It is also the wire format the deployer hands to `belay host route` (JSON):
// the deploy user sends data, root renders and loads the nginx files.
type Spec struct {
	App string `json:"app"`
	// Port is the app's port; the canary listens on Port+1.
	Port int `json:"port"`
	// StableAddrs are the private addresses of all group members.
	StableAddrs []string `json:"stableAddrs"`
	// CanaryAddrs are the private addresses of the hosts running the canary
	// (required in every stage but Stable).
	CanaryAddrs []string `json:"canaryAddrs,omitempty"`
	Keys        Keys     `json:"keys,omitzero"`
	Stage       Stage    `json:"stage"`
	// Down are members ("addr:port") this host's route watcher found
	// unreachable: rendered `down`, so no request pays their connect timeout,
	// unless that would leave a pool with no member (then nginx tries them all).
	// Set on the host only; the deployer leaves it empty.
	Down []string `json:"down,omitempty"`
	// Maintenance, when set, answers the app's traffic with 503 (maintenance.go).
	// Set on the host only, by `belay maintenance`; kept across stage changes.
	Maintenance *Maintenance `json:"maintenance,omitempty"`
}

// Files is the rendered routing of one app.
type Files struct {
	// HTTP goes to HTTPPath(app), included at http level.
	HTTP []byte
	// Routing goes to RoutingPath(app), included in the app's server block.
	Routing []byte
}

// SpecFor builds a Spec from the inventory: every app host's private address in
// the stable pool, the named canary hosts' in the canary pool.
func SpecFor(inv *inventory.Inventory, app string, canaryHosts []string, keys Keys, stage Stage) (Spec, error) {
	a := inv.App(app)
	if a == nil {
		return Spec{}, fmt.Errorf("traffic: app %q is not in the inventory", app)
	}
	s := Spec{App: app, Port: a.Port, Keys: keys, Stage: stage}
	for _, hn := range a.Hosts {
		h := inv.Host(hn)
		if h == nil {
			return Spec{}, fmt.Errorf("traffic: app %s: host %q is not in the inventory", app, hn)
		}
		s.StableAddrs = append(s.StableAddrs, h.PrivateAddress)
	}
	for _, hn := range canaryHosts {
		h := inv.Host(hn)
		if h == nil || !containsStr(a.Hosts, hn) {
			return Spec{}, fmt.Errorf("traffic: canary host %q is not an app server of %s (hosts: %s)", hn, app, strings.Join(a.Hosts, ", "))
		}
		s.CanaryAddrs = append(s.CanaryAddrs, h.PrivateAddress)
	}
	return s, nil
}

func containsStr(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

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

// Render validates spec and renders both files. Output is deterministic: every
// list is sorted and deduplicated, so the same spec gives the same bytes.
func Render(spec Spec) (Files, error) {
	if err := spec.Validate(); err != nil {
		return Files{}, err
	}
	spec.Keys = spec.Keys.WithDefaults()
	var h, r bytes.Buffer
	app := spec.App
	v := "belay_" + strings.ReplaceAll(app, "-", "_") // nginx variable names allow no '-'
	fmt.Fprintf(&h, "# Managed by belay deploy; rewritten at every stage change. App %s, stage %s.\n", app, spec.Stage)
	fmt.Fprintf(&r, "# Managed by belay deploy; rewritten at every stage change. App %s, stage %s.\n", app, spec.Stage)

	st := spec.Stage
	if st.Kind == Whitelist || st.Kind == Percent && (!st.Rules.Empty() || st.Sticky == ByShop) {
		// nginx's default map hash (64-byte buckets, 2048 slots) refuses a shop
		// longer than ~46 bytes or a few hundred shops; these fit MaxShops keys of
		// 253 bytes. They must precede every map of the http block and may be set
		// once: each app server serves one app, and the base config includes this
		// file before anything else that defines a map. Only stages with maps set
		// them, so the stable stage (a rollback) loads whatever else is configured.
		h.WriteString("map_hash_bucket_size 512;\nmap_hash_max_size 65536;\n")
	}
	down := map[netip.AddrPort]bool{}
	for _, d := range spec.Down {
		ap, _ := netip.ParseAddrPort(d)
		down[netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())] = true
	}
	writeUpstream(&h, StableUpstream(app), spec.StableAddrs, spec.Port, down)
	if len(spec.CanaryAddrs) > 0 {
		writeUpstream(&h, CanaryUpstream(app), spec.CanaryAddrs, spec.Port+1, down)
	}

	switch st.Kind {
	case Stable:
		r.WriteString("set $belay_pool stable;\n")
	case Full:
		r.WriteString("set $belay_pool canary;\n")
	case Whitelist:
		wl := writeRules(&h, v, spec.Keys, st.Rules)
		fmt.Fprintf(&h, "map $%s $%s_pool {\n    default stable;\n    1 canary;\n}\n", wl, v)
		fmt.Fprintf(&r, "set $belay_pool $%s_pool;\n", v)
	case Percent:
		key := "$remote_addr"
		if st.Sticky == ByShop {
			// First shop named by parameter, header or cookie; the client address otherwise.
			fmt.Fprintf(&h, "map \"$arg_%s|$http_%s|$cookie_%s\" $%s_shopkey {\n    default $remote_addr;\n    \"~^\\|*([^|]+)\" $1;\n}\n",
				spec.Keys.Param, headerVar(spec.Keys.Header), spec.Keys.Cookie, v)
			key = "$" + v + "_shopkey"
		}
		// The salt is the app name only, never the stage: the same clients hash to the
		// same point at 10 % and 50 %, so the 10 % stay canary as the share grows.
		fmt.Fprintf(&h, "split_clients \"%s belay-%s\" $%s_split {\n    %d%% canary;\n    * stable;\n}\n", key, app, v, st.Percent)
		if st.Rules.Empty() {
			fmt.Fprintf(&r, "set $belay_pool $%s_split;\n", v)
		} else {
			wl := writeRules(&h, v, spec.Keys, st.Rules)
			fmt.Fprintf(&h, "map $%s $%s_pool {\n    default $%s_split;\n    1 canary;\n}\n", wl, v, v)
			fmt.Fprintf(&r, "set $belay_pool $%s_pool;\n", v)
		}
	}
	if spec.Maintenance != nil {
		writeMaintenance(&h, &r, app, v, spec.Maintenance)
	}
	return Files{HTTP: h.Bytes(), Routing: r.Bytes()}, nil
}

func writeUpstream(b *bytes.Buffer, name string, addrs []string, port int, down map[netip.AddrPort]bool) {
	seen := map[netip.Addr]bool{}
	var list []netip.Addr
	for _, s := range addrs {
		a, _ := upstreamAddr(s)
		if !seen[a] {
			seen[a] = true
			list = append(list, a)
		}
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Less(list[j]) })
	fmt.Fprintf(b, "upstream %s {\n", name)
	// A shared zone makes a failed member count for every worker at once: without
	// it each worker must time out on a dead peer itself, and after a VIP failover
	// about half the requests kept going to the dead node (seen in the drills).
	fmt.Fprintf(b, "    zone %s 64k;\n", name)
	up := 0
	for _, a := range list {
		if !down[netip.AddrPortFrom(a, uint16(port))] {
			up++
		}
	}
	for _, a := range list {
		ap := netip.AddrPortFrom(a, uint16(port))
		if down[ap] && up > 0 {
			fmt.Fprintf(b, "    server %s down;\n", ap)
			continue
		}
		fmt.Fprintf(b, "    server %s;\n", ap)
	}
	// Idle connections kept to the app (the base config sets proxy_http_version 1.1).
	b.WriteString("    keepalive 16;\n}\n")
}

// headerVar is the nginx variable suffix of a request header ($http_x_shop_domain).
func headerVar(h string) string { return strings.ToLower(strings.ReplaceAll(h, "-", "_")) }

// mapKey quotes a validated value as a literal map key. A leading '~' would make it
// a regex and a bare default/hostnames/include/volatile a directive; nginx strips
// one leading backslash, which neutralizes both.
func mapKey(val string) string {
	switch strings.ToLower(val) {
	case "default", "hostnames", "include", "volatile":
		return `"\` + val + `"`
	}
	if strings.HasPrefix(val, "~") {
		return `"\` + val + `"`
	}
	return `"` + val + `"`
}

// writeRules writes one map (or geo) per request source, each yielding 1 on a
// match, and a final map ORing them; it returns that final variable's name.
func writeRules(b *bytes.Buffer, v string, k Keys, r Rules) string {
	var parts []string
	emitMap := func(src, name string, values []string) {
		// nginx compares map keys case-insensitively, so "Beta" and "beta" are one key.
		for i := range values {
			values[i] = strings.ToLower(values[i])
		}
		values = sortedUnique(values)
		if len(values) == 0 {
			return
		}
		fmt.Fprintf(b, "map %s $%s {\n    default 0;\n", src, name)
		for _, val := range values {
			fmt.Fprintf(b, "    %s 1;\n", mapKey(val))
		}
		b.WriteString("}\n")
		parts = append(parts, "$"+name)
	}
	var shops []string
	for _, s := range r.Shops {
		d, _ := NormalizeShop(s)
		shops = append(shops, d)
	}
	emitMap("$arg_"+k.Param, v+"_wl_param", shops)
	emitMap("$http_"+headerVar(k.Header), v+"_wl_header", shops)
	emitMap("$cookie_"+k.Cookie, v+"_wl_cookie", shops)

	if len(r.Clients) > 0 {
		seen := map[netip.Prefix]bool{}
		var ps []netip.Prefix
		for _, c := range r.Clients {
			p, _ := NormalizeClient(c)
			if !seen[p] {
				seen[p] = true
				ps = append(ps, p)
			}
		}
		sort.Slice(ps, func(i, j int) bool {
			if ps[i].Addr() != ps[j].Addr() {
				return ps[i].Addr().Less(ps[j].Addr())
			}
			return ps[i].Bits() < ps[j].Bits()
		})
		fmt.Fprintf(b, "geo $remote_addr $%s_wl_client {\n    default 0;\n", v)
		for _, p := range ps {
			fmt.Fprintf(b, "    %s 1;\n", p)
		}
		b.WriteString("}\n")
		parts = append(parts, "$"+v+"_wl_client")
	}

	group := func(ms []Match, src func(string) string, kind string) {
		by := map[string][]string{}
		for _, m := range ms {
			n := strings.ToLower(m.Name)
			by[n] = append(by[n], m.Value)
		}
		names := make([]string, 0, len(by))
		for n := range by {
			names = append(names, n)
		}
		sort.Strings(names)
		for i, n := range names {
			emitMap(src(n), v+"_wl_"+kind+strconv.Itoa(i), by[n])
		}
	}
	group(r.Headers, func(n string) string { return "$http_" + headerVar(n) }, "h")
	group(r.Cookies, func(n string) string { return "$cookie_" + n }, "c")

	name := v + "_wl"
	fmt.Fprintf(b, "map \"%s\" $%s {\n    default 0;\n    ~1 1;\n}\n", strings.Join(parts, ""), name)
	return name
}

func sortedUnique(in []string) []string {
	m := map[string]bool{}
	var out []string
	for _, s := range in {
		if !m[s] {
			m[s] = true
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}
