package dns

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/digitalocean/godo"

	"github.com/belay-sh/belay/cloud/api"
	"github.com/belay-sh/belay/cloud/retry"
)

// DigitalOcean upserts A records in DigitalOcean domains.
type DigitalOcean struct {
	API  *godo.Client
	Opts Options
}

// UpsertA makes name.zone resolve to ip alone: it updates the record that
// exists (keeping its ID), creates one when none does, and deletes extra A
// records so the switch cannot leave clients round-robining to the old site.
func (d DigitalOcean) UpsertA(ctx context.Context, zone, name string, ip netip.Addr, ttl int) (Outcome, error) {
	zone, name, err := Normalize(zone, name, ip, ttl)
	if err != nil {
		return "", err
	}
	o := d.Opts.withDefaults()
	full := fqdn(zone, name)
	var out Outcome
	// Every attempt re-reads the records, so a retried create that had in fact
	// succeeded is seen (and any duplicate it made is removed) on the next attempt.
	err = retry.Do(ctx, o.Retry, "dns: digitalocean: "+full, api.ClassifyDigitalOcean, func(ctx context.Context) error {
		recs, _, err := d.API.Domains.RecordsByTypeAndName(ctx, zone, "A", full, &godo.ListOptions{PerPage: 200})
		if err != nil {
			return fmt.Errorf("list A records of %s: %w", full, err)
		}
		if len(recs) == 0 {
			if _, _, err := d.API.Domains.CreateRecord(ctx, zone, &godo.DomainRecordEditRequest{Type: "A", Name: name, Data: ip.String(), TTL: ttl}); err != nil {
				return fmt.Errorf("create A %s: %w", full, err)
			}
			if out == "" {
				out = Created
			}
			return nil
		}
		keep := 0
		for i, r := range recs {
			if r.Data == ip.String() {
				keep = i
				break
			}
		}
		k := recs[keep]
		if len(recs) == 1 && k.Data == ip.String() && k.TTL == ttl {
			if out == "" {
				out = Unchanged
			}
			return nil
		}
		out = Updated
		if k.Data != ip.String() || k.TTL != ttl {
			if _, _, err := d.API.Domains.EditRecord(ctx, zone, k.ID, &godo.DomainRecordEditRequest{Type: "A", Name: name, Data: ip.String(), TTL: ttl}); err != nil {
				return fmt.Errorf("update A %s (record %d): %w", full, k.ID, err)
			}
		}
		for i, r := range recs {
			if i == keep {
				continue
			}
			o.Logf("dns: digitalocean: %s: deleting extra A record %d (%s)", full, r.ID, r.Data)
			if _, err := d.API.Domains.DeleteRecord(ctx, zone, r.ID); err != nil {
				return fmt.Errorf("delete extra A %s (record %d): %w", full, r.ID, err)
			}
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	o.Logf("dns: digitalocean: %s A %s ttl %d: %s", full, ip, ttl, out)
	return out, nil
}
