package vip

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/hetznercloud/hcloud-go/v2/hcloud"

	"github.com/belay-sh/belay/cloud/api"
	"github.com/belay-sh/belay/cloud/retry"
)

// Hetzner claims Hetzner Cloud floating IPs: unassign from the current holder
// first, then assign (proven more reliable than a direct reassign), and make
// sure the address is configured on Options.Interface.
type Hetzner struct {
	API  *hcloud.Client
	Opts Options
}

// Claim assigns the floating IP ip to server.
func (h Hetzner) Claim(ctx context.Context, ip netip.Addr, server int64) (Result, error) {
	o := h.Opts.withDefaults()
	classify := withActionRetry(api.ClassifyHetzner)
	var res Result
	var g guard
	start := time.Now()
	addrDone := false
	err := retry.Do(ctx, o.Retry, "hetzner: claim "+ip.String(), classify, func(ctx context.Context) error {
		fip, err := h.find(ctx, ip)
		if err != nil {
			return err
		}
		if !addrDone {
			// Before moving the route: once Hetzner sends the IP here, the kernel
			// must already accept it, or the first packets after failover are dropped.
			added, err := ensureAddr(ctx, o.Run, ip, o.Interface)
			if err != nil {
				return fmt.Errorf("configure %s on %s: %w", ip, o.Interface, err)
			}
			addrDone, res.AddressAdded = true, added
			if added {
				o.Logf("hetzner: added %s/32 to %s", ip, o.Interface)
			} else {
				o.Logf("hetzner: %s already configured on %s", ip, o.Interface)
			}
		}
		cur := int64(0)
		if fip.Server != nil {
			cur = fip.Server.ID
		}
		if cur == server {
			o.Logf("hetzner: floating IP %s (id %d) is on server %d (this server)%s", ip, fip.ID, server, doneNote(res))
			return nil
		}
		if err := g.check(cur); err != nil {
			return err
		}
		if res.Actions == 0 {
			res.Previous = cur
		}
		if cur != 0 {
			o.Logf("hetzner: floating IP %s (id %d) is on server %d; unassigning first", ip, fip.ID, cur)
			act, _, err := h.API.FloatingIP.Unassign(ctx, fip)
			if err != nil {
				return fmt.Errorf("unassign floating IP %s from server %d: %w", ip, cur, err)
			}
			res.Actions++
			res.Changed = true
			g.allow(0) // our own unassign
			polls, err := h.wait(ctx, o, act)
			res.Polls += polls
			if err != nil {
				return err
			}
		}
		o.Logf("hetzner: assigning floating IP %s (id %d) to server %d", ip, fip.ID, server)
		act, _, err := h.API.FloatingIP.Assign(ctx, fip, &hcloud.Server{ID: server})
		if err != nil {
			return fmt.Errorf("assign floating IP %s to server %d: %w", ip, server, err)
		}
		res.Actions++
		res.Changed = true
		polls, err := h.wait(ctx, o, act)
		res.Polls += polls
		if err != nil {
			return err
		}
		o.Logf("hetzner: floating IP %s assigned to server %d (action %d succeeded after %d poll(s), %s since start)",
			ip, server, act.ID, polls, since(start))
		return nil
	})
	return res, err
}

// find looks the floating IP up by address: the API addresses floating IPs by
// ID, but keepalived's notify script only knows the address.
func (h Hetzner) find(ctx context.Context, ip netip.Addr) (*hcloud.FloatingIP, error) {
	all, err := h.API.FloatingIP.All(ctx)
	if err != nil {
		return nil, fmt.Errorf("list floating IPs: %w", err)
	}
	for _, f := range all {
		if a, ok := netip.AddrFromSlice(f.IP); ok && a.Unmap() == ip {
			return f, nil
		}
	}
	return nil, fmt.Errorf("floating IP %s: not found in this project (%d floating IPs listed); check --ip and that the token belongs to the right project", ip, len(all))
}

// wait polls a Hetzner action until success or error; transient errors on the
// GETs are retried without restarting the claim.
func (h Hetzner) wait(ctx context.Context, o Options, act *hcloud.Action) (int, error) {
	if act.Status == hcloud.ActionStatusSuccess {
		return 0, nil
	}
	o.Logf("hetzner: waiting for action %d (%s)", act.ID, act.Command)
	return retry.Poll(ctx, o.PollInterval, func(ctx context.Context) (bool, error) {
		var a *hcloud.Action
		err := retry.Do(ctx, o.Retry, fmt.Sprintf("hetzner: get action %d", act.ID), api.ClassifyHetzner, func(ctx context.Context) error {
			var err error
			a, _, err = h.API.Action.GetByID(ctx, act.ID)
			if err == nil && a == nil {
				err = fmt.Errorf("action %d not found", act.ID)
			}
			return err
		})
		if err != nil {
			return false, err
		}
		switch a.Status {
		case hcloud.ActionStatusSuccess:
			return true, nil
		case hcloud.ActionStatusError:
			return false, errActionFailed{id: a.ID, detail: a.Command + ": " + a.ErrorCode + " " + a.ErrorMessage}
		}
		return false, nil
	})
}
