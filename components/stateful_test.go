package components

import (
	"strings"
	"testing"

	"github.com/belay-sh/belay/config"
)

var volumeTypes = map[config.Provider]string{
	config.Hetzner:      "hcloud:index/volume:Volume",
	config.DigitalOcean: "digitalocean:index/volume:Volume",
}

// TestStatefulProtections: data volumes exist for the DB nodes, the standby
// and the backup host, are protected and retained; servers ignore user data;
// Hetzner's stateful servers, floating and primary IPs carry delete protection;
// every server waits for its site's firewalls.
func TestStatefulProtections(t *testing.T) {
	for _, d := range directions {
		t.Run(d.name, func(t *testing.T) {
			res := runProgram(t, values(testDoc(d.primary, d.standby, 2)))
			if res.err != nil {
				t.Fatal(res.err)
			}
			vols := map[string]registration{}
			for _, p := range []config.Provider{d.primary, d.standby} {
				for _, r := range res.m.byType(volumeTypes[p]) {
					vols[r.Name] = r
				}
			}
			for _, h := range []string{"db-1", "db-2", "db-standby", "backup"} {
				v, ok := vols[h+"-data"]
				if !ok {
					t.Errorf("%s: no data volume", h)
					continue
				}
				if !v.Protect || !v.Retain {
					t.Errorf("%s-data: protect=%v retainOnDelete=%v, want both", h, v.Protect, v.Retain)
				}
			}
			// A replaced server's attachment is replaced too (serverId/dropletId
			// are ForceNew): delete first, or DigitalOcean (whose droplets are
			// created before the old one goes) refuses to attach a volume that
			// is still attached to the old droplet (belay replace, docs/replace.md).
			for _, typ := range []string{"hcloud:index/volumeAttachment:VolumeAttachment", "digitalocean:index/volumeAttachment:VolumeAttachment"} {
				for _, r := range res.m.byType(typ) {
					if !r.DeleteFirst {
						t.Errorf("%s: volume attachment is not delete-before-replace", r.Name)
					}
				}
			}
			if len(vols) != 4 {
				t.Errorf("%d data volumes, want 4 (app servers and the monitor keep no data)", len(vols))
			}
			var firewalls []string
			for _, p := range []config.Provider{d.primary, d.standby} {
				for _, r := range res.m.byType(types[p].firewall) {
					if !strings.HasSuffix(r.Name, "-hosts") {
						firewalls = append(firewalls, r.Name)
					}
				}
			}
			for name, s := range servers(t, res.m) {
				ud := str(s.Inputs, "userData")
				mounts := strings.Contains(ud, "belay-data-volume")
				if want := vols[name+"-data"].Name != ""; mounts != want {
					t.Errorf("%s: user data mounts a data volume: %v, want %v", name, mounts, want)
				}
				if mounts && strings.HasPrefix(s.Type, "digitalocean:") && !strings.Contains(ud, "scsi-0DO_Volume_test-"+name+"-data") {
					t.Errorf("%s: user data does not name its DigitalOcean volume device", name)
				}
				if !has(s.IgnoreChanges, "userData") {
					t.Errorf("%s: ignoreChanges %v, want userData (it only bootstraps)", name, s.IgnoreChanges)
				}
				if len(s.Deps) < len(firewalls) {
					t.Errorf("%s depends on %d resources, want at least the %d firewalls created before servers", name, len(s.Deps), len(firewalls))
				}
				if strings.HasPrefix(s.Type, "hcloud:") {
					stateful := name == "db-1" || name == "db-2" || name == "db-monitor" || name == "db-standby" || name == "backup"
					if got := s.Inputs["deleteProtection"].IsBool() && s.Inputs["deleteProtection"].BoolValue(); got != stateful {
						t.Errorf("%s: deleteProtection=%v, want %v", name, got, stateful)
					}
					if str(s.Inputs, "location") == "" || s.Inputs.HasValue("datacenter") {
						t.Errorf("%s: location %q datacenter %v, want a location and no datacenter (removed from the Hetzner API)", name, s.Inputs["location"], s.Inputs["datacenter"])
					}
				}
			}
			for _, typ := range []string{"hcloud:index/floatingIp:FloatingIp", "hcloud:index/primaryIp:PrimaryIp"} {
				for _, r := range res.m.byType(typ) {
					if v := r.Inputs["deleteProtection"]; !v.IsBool() || !v.BoolValue() {
						t.Errorf("%s %s: no delete protection", typ, r.Name)
					}
					if typ == "hcloud:index/primaryIp:PrimaryIp" && (!r.Inputs.HasValue("location") || r.Inputs.HasValue("datacenter")) {
						t.Errorf("primary IP %s: want location and no datacenter", r.Name)
					}
				}
			}
		})
	}
}

// TestHetznerDNS: dns.provider hetzner creates ZoneRrsets whose records are
// ignored after creation (a site switch rewrites them).
func TestHetznerDNS(t *testing.T) {
	doc := testDoc(config.DigitalOcean, config.Hetzner, 1)
	doc["dns"].(map[string]any)["provider"] = "hetzner"
	res := runProgram(t, values(doc))
	if res.err != nil {
		t.Fatal(res.err)
	}
	rr := res.m.byType("hcloud:index/zoneRrset:ZoneRrset")
	if len(rr) != 2 {
		t.Fatalf("%d ZoneRrsets, want 2 (two domains)", len(rr))
	}
	for _, r := range rr {
		if str(r.Inputs, "zone") != "example.com" || str(r.Inputs, "type") != "A" {
			t.Errorf("%s: zone %q type %q", r.Name, str(r.Inputs, "zone"), str(r.Inputs, "type"))
		}
		if !has(r.IgnoreChanges, "records") {
			t.Errorf("%s: ignoreChanges %v, want records", r.Name, r.IgnoreChanges)
		}
	}
	if n := len(res.m.byType("digitalocean:index/dnsRecord:DnsRecord")); n != 0 {
		t.Errorf("%d DigitalOcean records with dns.provider hetzner", n)
	}
}
