package dns

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/belay-sh/belay/cloud/api"
	"github.com/belay-sh/belay/cloud/double"
	"github.com/belay-sh/belay/cloud/retry"
)

const testToken = "double-dns-token-5f1e"

var (
	newIP = netip.MustParseAddr("203.0.113.50")
	fast  = Options{Retry: retry.Policy{Base: time.Millisecond, Max: 4 * time.Millisecond}, PollInterval: 2 * time.Millisecond}
)

type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Logf(f string, a ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(&l.b, f+"\n", a...)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestNormalize(t *testing.T) {
	tests := []struct {
		zone, name       string
		ttl              int
		wantZone, wantNm string
		wantErr          string
	}{
		{"Example.com.", "shop", 60, "example.com", "shop", ""},
		{"example.com", "", 60, "example.com", "@", ""},
		{"example.com", "example.com.", 60, "example.com", "@", ""},
		{"example.com", "eu.shop.example.com", 60, "example.com", "eu.shop", ""},
		{"example.com", "bad name", 60, "", "", `record name "bad name"`},
		{"localhost", "shop", 60, "", "", `zone "localhost"`},
		{"example.com", "shop", 5, "", "", "ttl 5: expected at least 30"},
	}
	for _, tt := range tests {
		t.Run(tt.zone+"/"+tt.name, func(t *testing.T) {
			z, n, err := Normalize(tt.zone, tt.name, newIP, tt.ttl)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || z != tt.wantZone || n != tt.wantNm {
				t.Fatalf("Normalize = %q %q %v; want %q %q", z, n, err, tt.wantZone, tt.wantNm)
			}
		})
	}
	if _, _, err := Normalize("example.com", "shop", netip.MustParseAddr("2001:db8::1"), 60); err == nil {
		t.Error("IPv6 accepted for an A record")
	}
}

func TestDigitalOceanUpsertA(t *testing.T) {
	tests := []struct {
		name     string
		existing []double.DORecord
		faults   double.Faults
		want     Outcome
		wantPOST int
		wantPUT  int
		wantDEL  int
	}{
		{name: "create", want: Created, wantPOST: 1},
		{name: "no-op", existing: []double.DORecord{{Type: "A", Name: "shop", Data: "203.0.113.50", TTL: 60}}, want: Unchanged},
		{name: "update address", existing: []double.DORecord{{Type: "A", Name: "shop", Data: "198.51.100.7", TTL: 60}}, want: Updated, wantPUT: 1},
		{name: "update ttl", existing: []double.DORecord{{Type: "A", Name: "shop", Data: "203.0.113.50", TTL: 3600}}, want: Updated, wantPUT: 1},
		{name: "extra records removed", existing: []double.DORecord{
			{Type: "A", Name: "shop", Data: "198.51.100.7", TTL: 60},
			{Type: "A", Name: "shop", Data: "203.0.113.50", TTL: 60},
		}, want: Updated, wantDEL: 1},
		{name: "other names and types untouched", existing: []double.DORecord{
			{Type: "A", Name: "blog", Data: "198.51.100.8", TTL: 60},
			{Type: "TXT", Name: "shop", Data: "v=spf1 -all", TTL: 60},
		}, want: Created, wantPOST: 1},
		{name: "5xx and 429 retried", faults: double.Faults{ServerErrors: 2, RateLimited: 1}, want: Created, wantPOST: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := double.NewDigitalOceanDouble(testToken)
			t.Cleanup(d.Close)
			d.AddDomain("example.com", tt.existing...)
			before := d.Records("example.com")
			d.SetFaults(tt.faults)
			logs := &logBuf{}
			o := fast
			o.Logf = logs.Logf
			u, err := New(api.DigitalOcean, testToken, d.URL(), o)
			if err != nil {
				t.Fatal(err)
			}
			got, err := u.UpsertA(context.Background(), "example.com", "shop", newIP, 60)
			if err != nil || got != tt.want {
				t.Fatalf("UpsertA = %q, %v; want %q\nlogs:\n%s", got, err, tt.want, logs)
			}
			var shop []double.DORecord
			for _, r := range d.Records("example.com") {
				if r.Type == "A" && r.Name == "shop" {
					shop = append(shop, r)
				}
			}
			if len(shop) != 1 || shop[0].Data != newIP.String() || shop[0].TTL != 60 {
				t.Errorf("A shop records after upsert: %+v, want exactly one 203.0.113.50 ttl 60", shop)
			}
			if len(d.Records("example.com")) != len(before)-tt.wantDEL+tt.wantPOST {
				t.Errorf("records now %+v (before %+v)", d.Records("example.com"), before)
			}
			for method, want := range map[string]int{"POST": tt.wantPOST, "PUT": tt.wantPUT, "DELETE": tt.wantDEL} {
				if n := d.CountRequests(method, "/v2/domains/example.com/records"); n != want {
					t.Errorf("%d %s requests, want %d: %v", n, method, want, d.Requests())
				}
			}
			if strings.Contains(logs.String(), testToken) {
				t.Errorf("token in logs")
			}
		})
	}
}

func TestDigitalOceanUpsertAUnknownZone(t *testing.T) {
	d := double.NewDigitalOceanDouble(testToken)
	t.Cleanup(d.Close)
	u, _ := New(api.DigitalOcean, testToken, d.URL(), fast)
	_, err := u.UpsertA(context.Background(), "example.org", "shop", newIP, 60)
	if err == nil || !strings.Contains(err.Error(), "404") || len(d.Requests()) != 1 {
		t.Fatalf("err = %v after %d requests; want a 404 without retries", err, len(d.Requests()))
	}
}

func TestHetznerUpsertA(t *testing.T) {
	const zoneID = 77
	tests := []struct {
		name    string
		name2   string // record name passed to UpsertA
		values  []string
		ttl     int // existing TTL, 0 = zone default
		exists  bool
		faults  double.Faults
		want    Outcome
		wantSet int
		wantTTL int
	}{
		{name: "create", name2: "shop", want: Created},
		{name: "create apex", name2: "@", want: Created},
		{name: "no-op", name2: "shop", exists: true, values: []string{"203.0.113.50"}, ttl: 60, want: Unchanged},
		{name: "update address", name2: "shop", exists: true, values: []string{"198.51.100.7"}, ttl: 60, want: Updated, wantSet: 1},
		{name: "collapse round robin", name2: "shop", exists: true, values: []string{"198.51.100.7", "203.0.113.50"}, ttl: 60, want: Updated, wantSet: 1},
		{name: "zone-default ttl pinned", name2: "shop", exists: true, values: []string{"203.0.113.50"}, want: Updated, wantTTL: 1},
		{name: "both, after locked zone and slow actions", name2: "shop", exists: true, values: []string{"198.51.100.7"}, ttl: 3600,
			faults: double.Faults{PendingActions: 1, ActionPolls: 2}, want: Updated, wantSet: 2, wantTTL: 1},
		{name: "failed action retried", name2: "shop", exists: true, values: []string{"198.51.100.7"}, ttl: 60,
			faults: double.Faults{FailActions: 1}, want: Updated, wantSet: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := double.NewHetznerDouble(testToken)
			t.Cleanup(h.Close)
			h.AddZone(zoneID, "example.com", 3600)
			if tt.exists {
				h.SetRRSet(zoneID, tt.name2, "A", tt.ttl, tt.values...)
			}
			h.SetRRSet(zoneID, "blog", "A", 0, "198.51.100.8")
			h.SetFaults(tt.faults)
			logs := &logBuf{}
			o := fast
			o.Logf = logs.Logf
			u, _ := New(api.Hetzner, testToken, h.URL(), o)
			got, err := u.UpsertA(context.Background(), "example.com", tt.name2, newIP, 60)
			if err != nil || got != tt.want {
				t.Fatalf("UpsertA = %q, %v; want %q\nlogs:\n%s", got, err, tt.want, logs)
			}
			vals, ttl, ok := h.RRSet(zoneID, tt.name2, "A")
			if !ok || len(vals) != 1 || vals[0] != newIP.String() || ttl != 60 {
				t.Errorf("RRSet after upsert: %v ttl %d (exists %v); want [203.0.113.50] ttl 60", vals, ttl, ok)
			}
			if vals, _, _ := h.RRSet(zoneID, "blog", "A"); len(vals) != 1 || vals[0] != "198.51.100.8" {
				t.Errorf("unrelated RRSet changed: %v", vals)
			}
			prefix := "/v1/zones/77/rrsets/" + tt.name2 + "/A/actions/"
			if n := h.CountRequests("POST", prefix+"set_records"); n != tt.wantSet {
				t.Errorf("%d set_records, want %d: %v", n, tt.wantSet, h.Requests())
			}
			if n := h.CountRequests("POST", prefix+"change_ttl"); n != tt.wantTTL {
				t.Errorf("%d change_ttl, want %d", n, tt.wantTTL)
			}
		})
	}
}

func TestHetznerUpsertAUnknownZone(t *testing.T) {
	h := double.NewHetznerDouble(testToken)
	t.Cleanup(h.Close)
	u, _ := New(api.Hetzner, testToken, h.URL(), fast)
	_, err := u.UpsertA(context.Background(), "example.org", "shop", newIP, 60)
	if err == nil || !strings.Contains(err.Error(), "zone example.org: not found") {
		t.Fatalf("err = %v", err)
	}
}
