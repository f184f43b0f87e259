package vip

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/digitalocean/godo"

	"github.com/belay-sh/belay/cloud/api"
	"github.com/belay-sh/belay/cloud/retry"
)

// DigitalOcean claims DigitalOcean reserved IPs. Nothing is configured on the
// interface: DO routes a reserved IP to the droplet's anchor IP, which the
// droplet already holds.
type DigitalOcean struct {
	API  *godo.Client
	Opts Options
}

// Claim assigns the reserved IP ip to droplet server.
func (d DigitalOcean) Claim(ctx context.Context, ip netip.Addr, server int64) (Result, error) {
	o := d.Opts.withDefaults()
	classify := withActionRetry(api.ClassifyDigitalOcean)
	var res Result
	var g guard
	start := time.Now()
	// Each attempt re-reads the IP, so a retry after a lost answer (the assign
	// may have gone through) or after a pending action ends as a no-op.
	err := retry.Do(ctx, o.Retry, "digitalocean: claim "+ip.String(), classify, func(ctx context.Context) error {
		rip, _, err := d.API.ReservedIPs.Get(ctx, ip.String())
		if err != nil {
			return fmt.Errorf("get reserved IP %s: %w", ip, err)
		}
		cur := int64(0)
		if rip.Droplet != nil {
			cur = int64(rip.Droplet.ID)
		}
		if cur == server {
			o.Logf("digitalocean: reserved IP %s is on droplet %d (this server)%s", ip, server, doneNote(res))
			return nil
		}
		if err := g.check(cur); err != nil {
			return err
		}
		if res.Actions == 0 {
			res.Previous = cur
		}
		o.Logf("digitalocean: reserved IP %s is %s; assigning to droplet %d", ip, doWhere(rip), server)
		act, _, err := d.API.ReservedIPActions.Assign(ctx, ip.String(), int(server))
		if err != nil {
			return fmt.Errorf("assign reserved IP %s to droplet %d: %w", ip, server, err)
		}
		res.Actions++
		res.Changed = true
		polls, err := d.wait(ctx, o, classify, act)
		res.Polls += polls
		if err != nil {
			return err
		}
		o.Logf("digitalocean: reserved IP %s assigned to droplet %d (action %d completed after %d poll(s), %s since start)",
			ip, server, act.ID, polls, since(start))
		return nil
	})
	return res, err
}

func doneNote(r Result) string {
	if r.Actions == 0 {
		return "; nothing to do"
	}
	return ""
}

func doWhere(rip *godo.ReservedIP) string {
	if rip.Droplet == nil {
		return "unassigned"
	}
	return fmt.Sprintf("on droplet %d (%s)", rip.Droplet.ID, rip.Droplet.Name)
}

// wait polls a DO action until completed or errored; transient errors on the
// GETs are retried without restarting the claim.
func (d DigitalOcean) wait(ctx context.Context, o Options, classify retry.Classifier, act *godo.Action) (int, error) {
	if act.Status == godo.ActionCompleted {
		return 0, nil
	}
	o.Logf("digitalocean: waiting for action %d (%s)", act.ID, act.Type)
	return retry.Poll(ctx, o.PollInterval, func(ctx context.Context) (bool, error) {
		var a *godo.Action
		err := retry.Do(ctx, o.Retry, fmt.Sprintf("digitalocean: get action %d", act.ID), api.ClassifyDigitalOcean, func(ctx context.Context) error {
			var err error
			a, _, err = d.API.Actions.Get(ctx, act.ID)
			return err
		})
		if err != nil {
			return false, err
		}
		switch a.Status {
		case godo.ActionCompleted:
			return true, nil
		case "errored":
			return false, errActionFailed{id: int64(a.ID), detail: a.Type + " errored"}
		}
		return false, nil
	})
}
