// Package dns points an A record at an address through the provider's DNS API
// (DigitalOcean domains, Hetzner Cloud DNS zones). A site switch uses it to
// send clients to the standby site; it is idempotent so a switch can be re-run.
package dns

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/belay-sh/belay/cloud/api"
	"github.com/belay-sh/belay/cloud/retry"
)

// Outcome says what UpsertA did.
type Outcome string

// Outcomes of UpsertA.
const (
	Created   Outcome = "created"
	Updated   Outcome = "updated"
	Unchanged Outcome = "unchanged"
)

// Upserter makes name.zone resolve to exactly one A record, ip, with ttl.
type Upserter interface {
	UpsertA(ctx context.Context, zone, name string, ip netip.Addr, ttl int) (Outcome, error)
}

// Options tune DNS updates; zero fields get defaults.
type Options struct {
	Retry        retry.Policy
	PollInterval time.Duration // Hetzner record changes are actions (default 500 ms)
	Logf         func(format string, args ...any)
}

func (o Options) withDefaults() Options {
	if o.Retry.Base <= 0 {
		o.Retry.Base = retry.Default.Base
	}
	if o.Retry.Max <= 0 {
		o.Retry.Max = retry.Default.Max
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 500 * time.Millisecond
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	o.Retry.Logf = o.Logf
	return o
}

// New returns the Upserter for provider, talking to apiURL ("" = the real API).
func New(provider, token, apiURL string, o Options) (Upserter, error) {
	switch provider {
	case api.DigitalOcean:
		c, err := api.NewDigitalOcean(token, apiURL)
		if err != nil {
			return nil, err
		}
		return DigitalOcean{API: c, Opts: o}, nil
	case api.Hetzner:
		return Hetzner{API: api.NewHetzner(token, apiURL), Opts: o}, nil
	}
	return nil, api.CheckProvider(provider)
}

// MinTTL is the lowest TTL accepted: DigitalOcean's minimum, and low enough
// for a site switch to reach clients within a minute.
const MinTTL = 30

// Normalize checks the inputs and returns the zone (lower case, no trailing
// dot) and the record name relative to it ("@" for the apex). name may be
// relative ("shop"), "@", "" (apex) or fully qualified ("shop.example.com.").
func Normalize(zone, name string, ip netip.Addr, ttl int) (string, string, error) {
	zone = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(zone)), ".")
	if !validName(zone) || !strings.Contains(zone, ".") {
		return "", "", fmt.Errorf("zone %q: expected a domain name such as example.com", zone)
	}
	n := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(name)), ".")
	switch {
	case n == "" || n == "@" || n == zone:
		n = "@"
	case strings.HasSuffix(n, "."+zone):
		n = strings.TrimSuffix(n, "."+zone)
	}
	if n != "@" && !validName(n) {
		return "", "", fmt.Errorf("record name %q: expected a name relative to %s (letters, digits, '-', '_', '*' labels) or @", name, zone)
	}
	if !ip.Is4() {
		return "", "", fmt.Errorf("address %s: an A record needs an IPv4 address", ip)
	}
	if ttl < MinTTL {
		return "", "", fmt.Errorf("ttl %d: expected at least %d seconds", ttl, MinTTL)
	}
	return zone, n, nil
}

func validName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || strings.HasPrefix(label, "-") || strings.HasSuffix(label, "-") {
			return false
		}
		for _, r := range label {
			ok := r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '*'
			if !ok {
				return false
			}
		}
	}
	return true
}

// fqdn spells name in zone fully ("@" = the zone itself).
func fqdn(zone, name string) string {
	if name == "@" {
		return zone
	}
	return name + "." + zone
}
