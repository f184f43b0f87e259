package failover

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/belay-sh/belay/cloud/dns"
)

// LabDNSRecordsFile is where the lab's DNS double keeps its records.
const LabDNSRecordsFile = "/var/lib/belay/lab/dns-records.json"

// FileDNSDouble is a DNS provider double for the lab (which has no DNS
// provider): it keeps A records in a JSON file with the same idempotent
// UpsertA contract and input checks as cloud/dns, so the site switch runs the
// same step in the lab as against DigitalOcean or Hetzner.
type FileDNSDouble struct {
	Path string
	mu   sync.Mutex
}

// DNSRecord is one A record in the double's file.
type DNSRecord struct {
	Name    string    `json:"name"`
	Address string    `json:"address"`
	TTL     int       `json:"ttl"`
	Updated time.Time `json:"updated"`
}

var _ dns.Upserter = (*FileDNSDouble)(nil)

// UpsertA makes name.zone resolve to ip only.
func (f *FileDNSDouble) UpsertA(ctx context.Context, zone, name string, ip netip.Addr, ttl int) (dns.Outcome, error) {
	zone, rel, err := dns.Normalize(zone, name, ip, ttl)
	if err != nil {
		return "", err
	}
	fqdn := zone
	if rel != "@" {
		fqdn = rel + "." + zone
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	recs, err := f.Records()
	if err != nil {
		return "", err
	}
	outcome := dns.Created
	if old, ok := recs[fqdn]; ok {
		if old.Address == ip.String() && old.TTL == ttl {
			return dns.Unchanged, nil
		}
		outcome = dns.Updated
	}
	recs[fqdn] = DNSRecord{Name: fqdn, Address: ip.String(), TTL: ttl, Updated: time.Now().UTC()}
	return outcome, f.save(recs)
}

// Records reads the file (no file = no records).
func (f *FileDNSDouble) Records() (map[string]DNSRecord, error) {
	b, err := os.ReadFile(f.Path)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]DNSRecord{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("lab DNS double: %w", err)
	}
	var list []DNSRecord
	if err := json.Unmarshal(b, &list); err != nil {
		return nil, fmt.Errorf("lab DNS double %s: %w", f.Path, err)
	}
	out := map[string]DNSRecord{}
	for _, r := range list {
		out[r.Name] = r
	}
	return out, nil
}

func (f *FileDNSDouble) save(recs map[string]DNSRecord) error {
	list := make([]DNSRecord, 0, len(recs))
	for _, r := range recs {
		list = append(list, r)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	b, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(f.Path), 0o755); err != nil {
		return fmt.Errorf("lab DNS double: %w", err)
	}
	tmp := f.Path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("lab DNS double: %w", err)
	}
	return os.Rename(tmp, f.Path)
}
