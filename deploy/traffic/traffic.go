package traffic

import (
	"fmt"
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
