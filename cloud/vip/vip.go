// Package vip moves a provider's floating IP (DigitalOcean reserved IP,
// Hetzner floating IP) to this server when keepalived makes it MASTER, and
// finds the VRRP group's peers through the provider API at boot.
package vip

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/belay-sh/belay/cloud/retry"
)

// DefaultPollInterval is the wait between GETs of a pending provider action.
const DefaultPollInterval = 500 * time.Millisecond

// Options tune a claim; zero fields get production defaults.
type Options struct {
	// PollInterval is the wait between GETs of a pending action (default
	// 500 ms: IP moves take seconds, so a finer poll buys little latency while
	// Hetzner's budget is 3600 requests/hour per project and DO's 5000/hour).
	PollInterval time.Duration
	// Retry shapes backoff on 5xx/429/network errors and pending-action answers.
	Retry retry.Policy
	// Logf receives one line per step; it must never be handed the token.
	Logf func(format string, args ...any)
	// Interface is where a Hetzner floating IP is configured (default eth0).
	Interface string
	// Run executes interface commands (default ExecRunner); tests record instead.
	Run Runner
}

func (o Options) withDefaults() Options {
	if o.PollInterval <= 0 {
		o.PollInterval = DefaultPollInterval
	}
	if o.Retry.Base <= 0 {
		o.Retry.Base = retry.Default.Base
	}
	if o.Retry.Max <= 0 {
		o.Retry.Max = retry.Default.Max
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	o.Retry.Logf = o.Logf
	if o.Interface == "" {
		o.Interface = "eth0"
	}
	if o.Run == nil {
		o.Run = ExecRunner
	}
	return o
}

// Result reports what a claim did.
type Result struct {
	// Changed is false when the IP already pointed at this server.
	Changed bool
	// Previous is the server the IP was on before (0 = unassigned).
	Previous int64
	// Actions and Polls count provider actions started and GETs spent waiting for them.
	Actions, Polls int
	// AddressAdded is true when the address had to be added to the interface (Hetzner).
	AddressAdded bool
}

// Claimer moves one provider's floating IP to a server.
type Claimer interface {
	// Claim makes ip point at server. It is idempotent and bounded by ctx's deadline.
	Claim(ctx context.Context, ip netip.Addr, server int64) (Result, error)
}

// CheckIP rejects what no provider can float: non-IPv4 and non-global addresses.
func CheckIP(s string) (netip.Addr, error) {
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("--ip: %q is not an IP address", s)
	}
	if !ip.Is4() {
		return netip.Addr{}, fmt.Errorf("--ip: %s: only IPv4 floating/reserved IPs are supported", ip)
	}
	if ip.IsPrivate() || ip.IsLoopback() || ip.IsUnspecified() || ip.IsMulticast() || ip.IsLinkLocalUnicast() {
		return netip.Addr{}, fmt.Errorf("--ip: %s is not a public address; expected the reserved/floating IP", ip)
	}
	return ip, nil
}

// errActionFailed marks a provider action that ended in error; the claim
// retries it (a failed move is worth another try until the deadline).
type errActionFailed struct {
	id     int64
	detail string
}

func (e errActionFailed) Error() string {
	return fmt.Sprintf("action %d failed: %s", e.id, e.detail)
}

func (e errActionFailed) Unwrap() error { return retry.ErrActionFailed }

// withActionRetry extends a provider classifier: a failed action is retried.
func withActionRetry(c retry.Classifier) retry.Classifier {
	return func(err error) retry.Verdict {
		var af errActionFailed
		if errors.As(err, &af) {
			return retry.Verdict{Retry: true, Reason: af.Error()}
		}
		return c(err)
	}
}

// ErrMovedByOther is returned when another server took the IP while this
// claim was retrying: keepalived has most likely elected another MASTER (this
// node went to BACKUP or FAULT), and moving the IP back would steal traffic
// from the healthy node, so the claim stops instead of fighting.
var ErrMovedByOther = errors.New("another server claimed the IP while this claim was running; not fighting over it")

// guard remembers which holders a claim itself explains: the one it found
// first and "unassigned" after its own unassign. Any other holder appearing
// later was put there by someone else.
type guard struct {
	seen    bool
	allowed []int64
}

func (g *guard) allow(id int64) { g.allowed = append(g.allowed, id) }

func (g *guard) check(cur int64) error {
	if !g.seen {
		g.seen = true
		g.allow(cur)
		return nil
	}
	for _, a := range g.allowed {
		if a == cur {
			return nil
		}
	}
	return fmt.Errorf("IP now on server %d: %w", cur, ErrMovedByOther)
}

// since formats an elapsed time for log lines.
func since(t time.Time) string { return time.Since(t).Round(time.Millisecond).String() }
