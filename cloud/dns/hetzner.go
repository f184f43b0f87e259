package dns

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/hetznercloud/hcloud-go/v2/hcloud"

	"github.com/belay-sh/belay/cloud/api"
	"github.com/belay-sh/belay/cloud/retry"
)

// Hetzner upserts A RRSets in Hetzner DNS zones through the Cloud API
// (api.hetzner.cloud/v1/zones). The older dns.hetzner.com API is not used:
// Hetzner moved DNS into the Cloud API in 2025 and retired the old one.
type Hetzner struct {
	API  *hcloud.Client
	Opts Options
}

// UpsertA makes the A RRSet name.zone hold exactly ip with ttl.
func (h Hetzner) UpsertA(ctx context.Context, zoneName, name string, ip netip.Addr, ttl int) (Outcome, error) {
	zoneName, name, err := Normalize(zoneName, name, ip, ttl)
	if err != nil {
		return "", err
	}
	o := h.Opts.withDefaults()
	full := fqdn(zoneName, name)
	var out Outcome
	classify := func(err error) retry.Verdict {
		if errors.Is(err, retry.ErrActionFailed) {
			return retry.Verdict{Retry: true, Reason: err.Error()}
		}
		return api.ClassifyHetzner(err)
	}
	err = retry.Do(ctx, o.Retry, "dns: hetzner: "+full, classify, func(ctx context.Context) error {
		zone, _, err := h.API.Zone.Get(ctx, zoneName)
		if err != nil {
			return fmt.Errorf("get zone %s: %w", zoneName, err)
		}
		if zone == nil {
			return fmt.Errorf("zone %s: not found in this project; create it (belay's stack does) or check the token's project", zoneName)
		}
		rs, _, err := h.API.Zone.GetRRSetByNameAndType(ctx, zone, name, hcloud.ZoneRRSetTypeA)
		if err != nil {
			return fmt.Errorf("get A %s: %w", full, err)
		}
		if rs == nil {
			res, _, err := h.API.Zone.CreateRRSet(ctx, zone, hcloud.ZoneRRSetCreateOpts{
				Name: name, Type: hcloud.ZoneRRSetTypeA, TTL: &ttl,
				Records: []hcloud.ZoneRRSetRecord{{Value: ip.String()}},
			})
			if err != nil {
				return fmt.Errorf("create A %s: %w", full, err)
			}
			if out == "" {
				out = Created
			}
			return h.wait(ctx, o, res.Action)
		}
		rs.Zone = zone
		sameRecords := len(rs.Records) == 1 && rs.Records[0].Value == ip.String()
		sameTTL := rs.TTL != nil && *rs.TTL == ttl
		if sameRecords && sameTTL {
			if out == "" {
				out = Unchanged
			}
			return nil
		}
		out = Updated
		if !sameRecords {
			a, _, err := h.API.Zone.SetRRSetRecords(ctx, rs, hcloud.ZoneRRSetSetRecordsOpts{Records: []hcloud.ZoneRRSetRecord{{Value: ip.String()}}})
			if err != nil {
				return fmt.Errorf("set A %s records: %w", full, err)
			}
			if err := h.wait(ctx, o, a); err != nil {
				return err
			}
		}
		if !sameTTL {
			a, _, err := h.API.Zone.ChangeRRSetTTL(ctx, rs, hcloud.ZoneRRSetChangeTTLOpts{TTL: &ttl})
			if err != nil {
				return fmt.Errorf("change A %s TTL: %w", full, err)
			}
			if err := h.wait(ctx, o, a); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	o.Logf("dns: hetzner: %s A %s ttl %d: %s", full, ip, ttl, out)
	return out, nil
}

// errActionFailed is retried: the next attempt re-reads the RRSet and tries again.
type errActionFailed struct{ a *hcloud.Action }

func (e errActionFailed) Error() string {
	return fmt.Sprintf("action %d (%s) failed: %s %s", e.a.ID, e.a.Command, e.a.ErrorCode, e.a.ErrorMessage)
}

func (e errActionFailed) Unwrap() error { return retry.ErrActionFailed }

func (h Hetzner) wait(ctx context.Context, o Options, act *hcloud.Action) error {
	if act == nil || act.ID == 0 || act.Status == hcloud.ActionStatusSuccess {
		return nil
	}
	_, err := retry.Poll(ctx, o.PollInterval, func(ctx context.Context) (bool, error) {
		var a *hcloud.Action
		err := retry.Do(ctx, o.Retry, fmt.Sprintf("dns: hetzner: get action %d", act.ID), api.ClassifyHetzner, func(ctx context.Context) error {
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
			return false, errActionFailed{a}
		}
		return false, nil
	})
	return err
}
