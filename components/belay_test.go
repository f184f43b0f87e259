package components

import (
	"sort"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/belay-sh/belay/config"
	"github.com/belay-sh/belay/hostspec"
	"github.com/belay-sh/belay/inventory"
)

// providerTypes are the resource type tokens of one provider.
type providerTypes struct {
	server, floatingIP, assignment, firewall, network string
	serverField                                       string // the assignment's server field
}

var types = map[config.Provider]providerTypes{
	config.DigitalOcean: {
		server: "digitalocean:index/droplet:Droplet", floatingIP: "digitalocean:index/reservedIp:ReservedIp",
		assignment: "digitalocean:index/reservedIpAssignment:ReservedIpAssignment", firewall: "digitalocean:index/firewall:Firewall",
		network: "digitalocean:index/vpc:Vpc", serverField: "dropletId",
	},
	config.Hetzner: {
		server: "hcloud:index/server:Server", floatingIP: "hcloud:index/floatingIp:FloatingIp",
		assignment: "hcloud:index/floatingIpAssignment:FloatingIpAssignment", firewall: "hcloud:index/firewall:Firewall",
		network: "hcloud:index/network:Network", serverField: "serverId",
	},
}

var directions = []struct {
	name             string
	primary, standby config.Provider
}{
	{"hetzner->digitalocean", config.Hetzner, config.DigitalOcean},
	{"digitalocean->hetzner", config.DigitalOcean, config.Hetzner},
}

// servers returns every server registration of both providers, by host name.
func servers(t *testing.T, m *mocks) map[string]registration {
	t.Helper()
	out := map[string]registration{}
	for _, p := range []config.Provider{config.DigitalOcean, config.Hetzner} {
		for _, r := range m.byType(types[p].server) {
			if _, dup := out[r.Name]; dup {
				t.Fatalf("server %s registered twice", r.Name)
			}
			out[r.Name] = r
		}
	}
	return out
}

// groupsOf lists a server's tags (DO) or label keys (Hetzner).
func groupsOf(r registration) []string {
	var out []string
	if v, ok := r.Inputs["tags"]; ok && v.IsArray() {
		for _, x := range v.ArrayValue() {
			out = append(out, x.StringValue())
		}
	}
	if v, ok := r.Inputs["labels"]; ok && v.IsObject() {
		for k := range v.ObjectValue() {
			out = append(out, string(k))
		}
	}
	sort.Strings(out)
	return out
}

func has(list []string, x string) bool {
	for _, y := range list {
		if y == x {
			return true
		}
	}
	return false
}

// parentComponent is the type and name of a registration's parent component.
func parentComponent(r registration) string {
	// URN: urn:pulumi:stack::project::parent$types::name
	i := strings.LastIndex(r.Parent, "::")
	j := strings.LastIndex(r.Parent[:i], "$")
	return r.Parent[j+1:i] + "/" + r.Parent[i+2:]
}

func TestProgramBothDirections(t *testing.T) {
	for _, d := range directions {
		t.Run(d.name, func(t *testing.T) {
			const nApps = 3
			res := runProgram(t, values(testDoc(d.primary, d.standby, nApps)))
			if res.err != nil {
				t.Fatalf("program: %v", res.err)
			}
			pt, st := types[d.primary], types[d.standby]
			srv := servers(t, res.m)

			t.Run("each app has its own HA servers", func(t *testing.T) {
				seen := map[string]string{} // server -> app
				for _, a := range res.cfg.Apps {
					var mine []string
					for name, r := range srv {
						if parentComponent(r) == "belay:index:AppPair/"+a.Name {
							mine = append(mine, name)
							if r.Type != pt.server {
								t.Errorf("%s: type %s, expected the primary provider's %s", name, r.Type, pt.server)
							}
							if prev, ok := seen[name]; ok {
								t.Errorf("server %s serves %s and %s", name, prev, a.Name)
							}
							seen[name] = a.Name
						}
					}
					if len(mine) < 2 {
						t.Errorf("app %s has %d servers, expected at least 2", a.Name, len(mine))
					}
				}
				// The VRRP group tag/label: exactly one app's per server.
				for name, r := range srv {
					var appGroups []string
					for _, a := range res.cfg.Apps {
						if has(groupsOf(r), hostspec.GroupTag("test", a.Name)) {
							appGroups = append(appGroups, a.Name)
						}
					}
					want := 0
					if _, ok := seen[name]; ok {
						want = 1
					}
					if len(appGroups) != want {
						t.Errorf("server %s is in the VRRP groups of %v, expected %d", name, appGroups, want)
					}
				}
			})

			t.Run("database servers are not app servers", func(t *testing.T) {
				for _, n := range []string{"db-1", "db-2", "db-monitor"} {
					r, ok := srv[n]
					if !ok {
						t.Fatalf("%s not registered", n)
					}
					if got := parentComponent(r); got != "belay:index:Database/database" {
						t.Errorf("%s: parent %s, expected the Database component", n, got)
					}
					if r.Type != pt.server {
						t.Errorf("%s: type %s, expected %s", n, r.Type, pt.server)
					}
					if has(groupsOf(r), groupName("test", groupApp)) {
						t.Errorf("%s carries the app group", n)
					}
				}
			})

			t.Run("standby servers are at the other provider", func(t *testing.T) {
				want := []string{"backup", "db-standby"}
				for _, a := range res.cfg.Apps {
					want = append(want, a.Name+"-standby")
				}
				for _, n := range want {
					r, ok := srv[n]
					if !ok {
						t.Fatalf("%s not registered", n)
					}
					if r.Type != st.server {
						t.Errorf("%s: type %s, expected the standby provider's %s", n, r.Type, st.server)
					}
				}
				if len(res.m.byType(pt.network)) != 1 || len(res.m.byType(st.network)) != 1 {
					t.Errorf("expected one network per site")
				}
			})

			t.Run("no firewall admits the internet to 22 or 5432", func(t *testing.T) {
				fws := append(res.m.byType(pt.firewall), res.m.byType(st.firewall)...)
				if len(fws) == 0 {
					t.Fatal("no firewalls")
				}
				for _, fw := range fws {
					for _, rule := range firewallRules(fw) {
						for _, src := range rule.sources {
							if (rule.port == "22" || rule.port == "5432") && (src == "0.0.0.0/0" || src == "::/0") {
								t.Errorf("firewall %s admits %s to port %s", fw.Name, src, rule.port)
							}
							if rule.port == "5432" {
								t.Errorf("firewall %s admits the network %s to 5432, expected only site-network groups", fw.Name, src)
							}
						}
					}
				}
			})

			t.Run("every floating IP has one assignment whose server is ignored", func(t *testing.T) {
				fips := res.m.byType(pt.floatingIP)
				asg := map[string]registration{}
				for _, r := range res.m.byType(pt.assignment) {
					if strings.HasSuffix(r.Name, "-vip") {
						asg[strings.TrimSuffix(r.Name, "-vip")] = r
					} else if has(r.IgnoreChanges, pt.serverField) {
						t.Errorf("static IP assignment %s ignores %s: a replaced server would lose its address", r.Name, pt.serverField)
					}
				}
				for _, a := range res.cfg.Apps {
					var fip *registration
					for i := range fips {
						if fips[i].Name == a.Name+"-vip" {
							fip = &fips[i]
						}
					}
					if fip == nil {
						t.Fatalf("app %s: no floating IP", a.Name)
					}
					if !has(fip.IgnoreChanges, pt.serverField) {
						t.Errorf("app %s: floating IP ignores %v, expected %s", a.Name, fip.IgnoreChanges, pt.serverField)
					}
					r, ok := asg[a.Name]
					if d.primary == config.DigitalOcean {
						// DigitalOcean: no Pulumi-owned assignment (refresh would drop it
						// and the next up move the address back); keepalived claims it.
						if ok {
							t.Errorf("app %s: a ReservedIpAssignment owns the VIP; refresh would drop it once keepalived moves the address", a.Name)
						}
						continue
					}
					if !ok {
						t.Fatalf("app %s: no assignment", a.Name)
					}
					if !has(r.IgnoreChanges, pt.serverField) {
						t.Errorf("app %s: assignment ignores %v, expected %s (keepalived moves the address)", a.Name, r.IgnoreChanges, pt.serverField)
					}
					if !r.DeleteFirst {
						t.Errorf("app %s: assignment is not delete-before-replace", a.Name)
					}
					// The assignment points at this app's floating IP and its first server.
					ref := str(r.Inputs, "ipAddress")
					if ref == "" {
						ref = str(r.Inputs, "floatingIpId")
						if ref != fip.ID {
							t.Errorf("app %s: assignment of floating IP %s, expected %s", a.Name, ref, fip.ID)
						}
					} else if ref != str(fip.Outputs, "ipAddress") {
						t.Errorf("app %s: assignment of %s, expected %s", a.Name, ref, str(fip.Outputs, "ipAddress"))
					}
					first := srv[a.Name+"-1"]
					if got := str(r.Inputs, pt.serverField); got != first.ID {
						t.Errorf("app %s: assigned to server %s, expected %s (%s-1)", a.Name, got, first.ID, a.Name)
					}
				}
			})

			t.Run("user data is secret and carries the pinned host key", func(t *testing.T) {
				for name, r := range srv {
					ud, ok := r.Inputs["userData"]
					if !ok {
						t.Errorf("%s: no user data", name)
						continue
					}
					if !ud.IsSecret() {
						t.Errorf("%s: user data is not a secret", name)
						continue
					}
					text := ud.SecretValue().Element.StringValue()
					if !strings.HasPrefix(text, "#cloud-config") {
						t.Errorf("%s: user data does not start with #cloud-config", name)
					}
					k, err := hostspec.HostKey(res.cfg, "test", name)
					if err != nil {
						t.Fatal(err)
					}
					if !strings.Contains(text, "OPENSSH PRIVATE KEY") || !strings.Contains(text, strings.Fields(k.Public)[1]) {
						t.Errorf("%s: user data lacks its pinned host key", name)
					}
				}
			})

			t.Run("inventory lists every server once and parses", func(t *testing.T) {
				inv, err := inventory.Parse([]byte(res.inventory))
				if err != nil {
					t.Fatalf("inventory.Parse: %v\n%s", err, res.inventory)
				}
				if len(inv.Hosts) != len(srv) {
					t.Errorf("inventory has %d hosts, %d servers were registered", len(inv.Hosts), len(srv))
				}
				count := map[string]int{}
				for _, h := range inv.Hosts {
					count[h.Name]++
					r, ok := srv[h.Name]
					if !ok {
						t.Errorf("inventory host %s has no server", h.Name)
						continue
					}
					if h.ProviderID != r.ID {
						t.Errorf("%s: providerId %q, expected %q", h.Name, h.ProviderID, r.ID)
					}
					k, _ := hostspec.HostKey(res.cfg, "test", h.Name)
					if h.HostKey != k.Public {
						t.Errorf("%s: hostKey %q, expected the derived %q", h.Name, h.HostKey, k.Public)
					}
					if h.SSHAddress == "" || h.SSHAddress != h.PublicAddress || h.SSHPort != 22 || h.DeployUser != "deploy" {
						t.Errorf("%s: ssh %s:%d as %s (public %s)", h.Name, h.SSHAddress, h.SSHPort, h.DeployUser, h.PublicAddress)
					}
					wantProvider := d.primary
					if h.Site == inventory.Standby {
						wantProvider = d.standby
					}
					if h.Provider != string(wantProvider) {
						t.Errorf("%s: provider %s, expected %s", h.Name, h.Provider, wantProvider)
					}
					wantPriv := str(r.Outputs, "ipv4AddressPrivate")
					if r.Type == types[config.Hetzner].server {
						nets := r.Inputs["networks"].ArrayValue()
						wantPriv = str(nets[0].ObjectValue(), "ip")
					}
					if h.PrivateAddress != wantPriv {
						t.Errorf("%s: privateAddress %s, expected %s", h.Name, h.PrivateAddress, wantPriv)
					}
				}
				for name := range srv {
					if count[name] != 1 {
						t.Errorf("server %s listed %d times in the inventory", name, count[name])
					}
				}
				// The hosts the other site names are reached at their static IPs.
				static := map[string]string{}
				for _, typ := range []string{"digitalocean:index/reservedIp:ReservedIp", "hcloud:index/primaryIp:PrimaryIp"} {
					for _, r := range res.m.byType(typ) {
						if h, ok := strings.CutSuffix(r.Name, "-ip"); ok {
							static[h] = str(r.Outputs, "ipAddress")
						}
					}
				}
				for _, n := range []string{"db-1", "db-2", "backup"} {
					if h := inv.Host(n); h == nil || static[n] == "" || h.PublicAddress != static[n] {
						t.Errorf("%s: public address %+v, expected its static IP %q", n, h, static[n])
					}
				}
				for _, a := range res.cfg.Apps {
					ia := inv.App(a.Name)
					if ia == nil || ia.VIP == "" || len(ia.Hosts) < 2 || ia.Standby != a.Name+"-standby" {
						t.Errorf("app %s: inventory entry %+v", a.Name, ia)
					}
				}
				if strings.Contains(inv.Database.WriterURL, ":"+"@") || !strings.Contains(inv.Database.WriterURL, "target_session_attrs=read-write") {
					t.Errorf("writerUrl %q: expected no password and target_session_attrs=read-write", inv.Database.WriterURL)
				}
				for _, n := range inv.Database.Nodes {
					if !strings.Contains(inv.Database.WriterURL, inv.Host(n).PrivateAddress+":5432") {
						t.Errorf("writerUrl %q lacks %s's private address", inv.Database.WriterURL, n)
					}
				}
			})

			t.Run("one A record per domain at the app's VIP", func(t *testing.T) {
				recs := res.m.byType("digitalocean:index/dnsRecord:DnsRecord")
				inv, err := inventory.Parse([]byte(res.inventory))
				if err != nil {
					t.Fatal(err)
				}
				want := 0
				for _, a := range res.cfg.Apps {
					want += len(a.Domains)
					for _, dom := range a.Domains {
						name := strings.TrimSuffix(dom, ".example.com")
						found := 0
						for _, r := range recs {
							if str(r.Inputs, "name") == name {
								found++
								if str(r.Inputs, "value") != inv.App(a.Name).VIP || str(r.Inputs, "ttl") != "60" || str(r.Inputs, "type") != "A" || str(r.Inputs, "domain") != "example.com" {
									t.Errorf("record %s: %v", dom, r.Inputs)
								}
							}
						}
						if found != 1 {
							t.Errorf("domain %s has %d records", dom, found)
						}
					}
				}
				if len(recs) != want {
					t.Errorf("%d records, expected %d", len(recs), want)
				}
			})

			t.Run("hetzner servers are replaced delete-first", func(t *testing.T) {
				// The pinned private address and the name belong to the old server.
				for name, r := range srv {
					if r.Type == types[config.Hetzner].server && !r.DeleteFirst {
						t.Errorf("%s: not delete-before-replace", name)
					}
				}
			})

			t.Run("components parent their children", func(t *testing.T) {
				for _, r := range res.m.all() {
					if r.Type == "belay:index:Belay" {
						continue
					}
					if r.Parent == "" || strings.HasSuffix(r.Parent, "pulumi:pulumi:Stack::belay-test") {
						t.Errorf("%s %s is not inside a belay component (parent %q)", r.Type, r.Name, r.Parent)
					}
				}
			})
		})
	}
}

// fwRule is one inbound rule as a provider receives it.
type fwRule struct {
	port    string
	sources []string
	tags    []string
}

func firewallRules(r registration) []fwRule {
	var out []fwRule
	arr := func(pm resource.PropertyMap, k string) []string {
		var s []string
		if v, ok := pm[resource.PropertyKey(k)]; ok && v.IsArray() {
			for _, x := range v.ArrayValue() {
				s = append(s, x.StringValue())
			}
		}
		return s
	}
	for _, key := range []string{"inboundRules", "rules"} {
		v, ok := r.Inputs[resource.PropertyKey(key)]
		if !ok {
			continue
		}
		for _, x := range v.ArrayValue() {
			o := x.ObjectValue()
			rule := fwRule{port: str(o, "portRange") + str(o, "port")}
			rule.sources = append(arr(o, "sourceAddresses"), arr(o, "sourceIps")...)
			rule.tags = arr(o, "sourceTags")
			out = append(out, rule)
		}
	}
	return out
}

func TestFirewallRulesPerProvider(t *testing.T) {
	for _, d := range directions {
		t.Run(d.name, func(t *testing.T) {
			res := runProgram(t, values(testDoc(d.primary, d.standby, 2)))
			if res.err != nil {
				t.Fatal(res.err)
			}
			srv := servers(t, res.m)
			inv, err := inventory.Parse([]byte(res.inventory))
			if err != nil {
				t.Fatal(err)
			}
			rules := map[string][]fwRule{}
			for _, p := range []config.Provider{config.DigitalOcean, config.Hetzner} {
				for _, r := range res.m.byType(types[p].firewall) {
					// "<name>-hosts" holds the rules naming servers' /32s (created after them).
					name := strings.TrimSuffix(r.Name, "-hosts")
					rules[name] = append(rules[name], firewallRules(r)...)
				}
			}
			find := func(fw, port string) []fwRule {
				var out []fwRule
				for _, r := range rules[fw] {
					if r.port == port {
						out = append(out, r)
					}
				}
				return out
			}
			// The DB nodes admit SSH from the backup host's own (outbound) address.
			backupOut := str(srv["backup"].Outputs, "ipv4Address")
			ok := false
			for _, r := range find("primary-db", "22") {
				ok = ok || has(r.sources, backupOut+"/32")
			}
			if !ok {
				t.Errorf("primary-db: no SSH rule from the backup host %s/32: %+v", backupOut, rules["primary-db"])
			}
			// The backup host admits SSH from each DB node and app server, by /32.
			var need []string
			need = append(need, inv.Database.Nodes...)
			for _, a := range inv.Apps {
				need = append(need, a.Hosts...)
			}
			for _, n := range need {
				addr := str(srv[n].Outputs, "ipv4Address") + "/32"
				found := false
				for _, r := range find("standby-backup", "22") {
					found = found || has(r.sources, addr)
				}
				if !found {
					t.Errorf("standby-backup: %s (%s) may not reach SSH", n, addr)
				}
			}
			// 5432: on DigitalOcean only by tag; Hetzner firewalls do not filter
			// the private network, so they carry no 5432 rule at all.
			for fw, rs := range rules {
				for _, r := range rs {
					if r.port == "5432" && len(r.tags) == 0 {
						t.Errorf("%s: 5432 rule without source tags: %+v", fw, r)
					}
				}
			}
			if d.primary == config.DigitalOcean {
				pg := find("primary-db", "5432")
				if len(pg) != 1 || !has(pg[0].tags, groupName("test", groupApp)) {
					t.Errorf("primary-db on DigitalOcean: 5432 rules %+v, expected one from the app tag", pg)
				}
				if _, ok := rules["primary-app"]; ok {
					t.Errorf("primary-app firewall on DigitalOcean would drop keepalived's VRRP")
				}
			} else {
				web := append(find("primary-app", "80"), find("primary-app", "443")...)
				if len(web) != 2 {
					t.Errorf("primary-app on Hetzner: web rules %+v", web)
				}
			}
		})
	}
}

func TestAddressesReachUserData(t *testing.T) {
	// DigitalOcean assigns VPC addresses: the app servers' DATABASE_URL and the
	// DB nodes' monitor address must be the assigned ones, not the plan's.
	res := runProgram(t, values(testDoc(config.DigitalOcean, config.Hetzner, 2)))
	if res.err != nil {
		t.Fatal(res.err)
	}
	srv := servers(t, res.m)
	ud := func(n string) string { return srv[n].Inputs["userData"].SecretValue().Element.StringValue() }
	priv := func(n string) string { return str(srv[n].Outputs, "ipv4AddressPrivate") }
	for _, n := range []string{"db-1", "db-2"} {
		if !strings.Contains(ud("shop0-1"), priv(n)+":5432") {
			t.Errorf("shop0-1's user data lacks %s's assigned address %s", n, priv(n))
		}
	}
	if !strings.Contains(ud("db-1"), priv("db-monitor")) {
		t.Errorf("db-1's user data lacks the monitor's assigned address %s", priv("db-monitor"))
	}
	// Cross-site references use the static IPs.
	var backupIP string
	for _, r := range res.m.byType("hcloud:index/primaryIp:PrimaryIp") {
		if r.Name == "backup-ip" {
			backupIP = str(r.Outputs, "ipAddress")
		}
	}
	if backupIP == "" || !strings.Contains(ud("shop0-1"), "@"+backupIP+":") || !strings.Contains(ud("db-1"), backupIP) {
		t.Errorf("backup's static IP %q is not what the primary site's user data names", backupIP)
	}
}

func TestUserDataIsStableAcrossRuns(t *testing.T) {
	for _, d := range directions {
		t.Run(d.name, func(t *testing.T) {
			vals := values(testDoc(d.primary, d.standby, 3))
			a, b := runProgram(t, vals), runProgram(t, vals)
			if a.err != nil || b.err != nil {
				t.Fatal(a.err, b.err)
			}
			sa, sb := servers(t, a.m), servers(t, b.m)
			if len(sa) != len(sb) {
				t.Fatalf("%d vs %d servers", len(sa), len(sb))
			}
			for name, r := range sa {
				x := r.Inputs["userData"].SecretValue().Element.StringValue()
				y := sb[name].Inputs["userData"].SecretValue().Element.StringValue()
				if x != y {
					t.Errorf("%s: user data differs between two evaluations (the server would be replaced on every up)", name)
				}
			}
			if a.inventory != b.inventory {
				t.Errorf("inventory differs between two evaluations")
			}
		})
	}
}

func TestBadConfigRegistersNothing(t *testing.T) {
	cases := []struct {
		name string
		edit func(doc map[string]any)
		want string
	}{
		{"same provider twice", func(d map[string]any) {
			d["sites"].(map[string]any)["standby"] = d["sites"].(map[string]any)["primary"]
		}, "belay:sites.standby.provider"},
		{"no host api token", func(d map[string]any) { delete(d, "hostApiTokens") }, "belay:hostApiTokens.hetzner"},
		{"ssh from the internet", func(d map[string]any) {
			d["admin"].(map[string]any)["sshCidrs"] = []any{"0.0.0.0/0"}
		}, "belay:admin.sshCidrs"},
		{"short seed", func(d map[string]any) { d["hostKeySeed"] = "short" }, "belay:hostKeySeed"},
		{"lab provider", func(d map[string]any) {
			d["sites"] = map[string]any{"primary": map[string]any{"provider": "lab", "region": "lab"}, "standby": map[string]any{"provider": "lab", "region": "lab"}}
		}, "belay:sites.primary.provider"},
		{"no apps", func(d map[string]any) { d["apps"] = []any{} }, "belay:apps"},
		{"too many replicas for a spread group", func(d map[string]any) {
			d["apps"].([]any)[0].(map[string]any)["replicas"] = 11
		}, "belay:apps[0].replicas"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			doc := testDoc(config.Hetzner, config.DigitalOcean, 2)
			c.edit(doc)
			res := runProgram(t, values(doc))
			if res.err == nil {
				t.Fatalf("program accepted the config")
			}
			t.Logf("refused: %v", res.err)
			if !strings.Contains(res.err.Error(), c.want) {
				t.Errorf("error %q does not name %s", res.err, c.want)
			}
			if regs := res.m.all(); len(regs) != 0 {
				t.Errorf("%d resources registered before the error, expected none (first: %s %s)", len(regs), regs[0].Type, regs[0].Name)
			}
		})
	}
}

func TestRecordName(t *testing.T) {
	cases := []struct{ zone, domain, want, err string }{
		{"example.com", "example.com", "@", ""},
		{"example.com", "www.example.com", "www", ""},
		{"example.com.", "A.B.Example.com", "a.b", ""},
		{"example.com", "badexample.com", "", "not in the zone"},
		{"example.com", "example.org", "", "not in the zone"},
	}
	for _, c := range cases {
		got, err := recordName(c.zone, c.domain)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("recordName(%q, %q) error %v, expected %q", c.zone, c.domain, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("recordName(%q, %q) = %q, %v; expected %q", c.zone, c.domain, got, err, c.want)
		}
	}
}

func TestAdminCIDRs(t *testing.T) {
	cases := []struct {
		in   []string
		want string
		err  string
	}{
		{[]string{"203.0.113.7/32", "2001:db8::/48"}, "203.0.113.7/32 2001:db8::/48", ""},
		{[]string{"203.0.113.7"}, "203.0.113.7/32", ""},
		{[]string{"0.0.0.0/0"}, "", "whole internet"},
		{[]string{"::/0"}, "", "whole internet"},
		{[]string{"nonsense"}, "", "not a CIDR"},
		{nil, "", "empty"},
	}
	for _, c := range cases {
		got, err := adminCIDRs(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) || !strings.Contains(err.Error(), "belay:admin.sshCidrs") {
				t.Errorf("adminCIDRs(%v) error %v, expected %q naming the key", c.in, err, c.err)
			}
			continue
		}
		if err != nil || strings.Join(got, " ") != c.want {
			t.Errorf("adminCIDRs(%v) = %v, %v; expected %s", c.in, got, err, c.want)
		}
	}
}

func TestIntID(t *testing.T) {
	cases := []struct {
		id   string
		want int
		err  bool
	}{{"4711", 4711, false}, {"abc", 0, true}, {"", 0, true}}
	for _, c := range cases {
		var got int
		err := pulumi.RunErr(func(ctx *pulumi.Context) error {
			out := intID(pulumi.ID(c.id).ToIDOutput()).ApplyT(func(n int) int { got = n; return n })
			ctx.Export("n", out)
			return nil
		}, pulumi.WithMocks("belay", "test", newMocks(nil)))
		if c.err {
			if err == nil || !strings.Contains(err.Error(), "numeric provider ID") {
				t.Errorf("intID(%q): error %v, expected a numeric-ID error", c.id, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("intID(%q) = %d, %v; expected %d", c.id, got, err, c.want)
		}
	}
}
