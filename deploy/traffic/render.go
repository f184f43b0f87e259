package traffic

// Rendering a validated Spec into the two nginx files (Render).

import (
	"bytes"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
)

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
