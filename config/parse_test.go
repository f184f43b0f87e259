package config_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/belay-sh/belay/config"
	// Linking topology registers its address plan and reserved names with config,
	// as every program that provisions a stack does.
	_ "github.com/belay-sh/belay/topology"
)

const (
	testSeed = "0123456789abcdef0123456789abcdef0123456789abcdef"
	keyAlice = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB9mey9oU7VkcpFN0XUf5au8ZhSXBHw0I3j7l7ZQ4FKT alice@laptop"
	keyBob   = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOf5euFnRz2oXekM3HWUuPGWAuC30GMzHWzJN0IbtTtf bob@laptop"
	// A 1024-bit RSA key: parses, but is too weak.
	keyRSA1024 = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQC/PJv47JecYX3lsNojnc2K9PVgg2ybREnFE6XoziZdWCU5eFyF7gFE2xRLcEThmbbw716yX0kF9+S/H5MR7vuSgReX8cq2sTw2dFRgrrtmNsalAYKjDdvGF1WSEgMGr/T/BzmwEmxJNQPvYXO0FbmcBe33sAWOk2ZvZmJIpymBLQ== weak@old"
)

// doc is one stack's belay config as Go values; each test mutates a fresh copy.
type doc map[string]any

// valid is a complete, valid configuration (primary Hetzner, standby DigitalOcean).
func valid() doc {
	return doc{
		"sites": map[string]any{
			"primary": map[string]any{"provider": "hetzner", "region": "fsn1"},
			"standby": map[string]any{"provider": "digitalocean", "region": "ams3"},
		},
		"admin": map[string]any{
			"sshKeys":  []any{keyAlice},
			"sshCidrs": []any{"203.0.113.0/28"},
		},
		"apps": []any{
			map[string]any{"name": "web", "size": "cx33", "standbySize": "s-2vcpu-4gb", "port": 3000, "healthPath": "/up", "domains": []any{"www.example.com"}, "tls": map[string]any{"email": "ops@example.com"}},
			map[string]any{"name": "api", "size": "cx23", "standbySize": "s-1vcpu-2gb", "replicas": 3, "port": 4000, "healthPath": "/healthz", "domains": []any{"api.example.com"}, "tls": map[string]any{"email": "ops@example.com"}},
		},
		"database":    map[string]any{"size": "ccx23", "standbySize": "g-2vcpu-8gb", "synchronous": true},
		"backups":     map[string]any{"fullEvery": "weekly", "retentionDays": 14, "repoSize": "s-2vcpu-4gb"},
		"dns":         map[string]any{"provider": "digitalocean", "zone": "example.com", "ttl": 60},
		"agent":       map[string]any{"url": "https://github.com/belay-sh/belay/releases/download/v0.1.0/belay-linux-amd64", "sha256": "3f1c1a5e6b2d4c8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f"},
		"hostKeySeed": testSeed,
	}
}

// values renders d as Pulumi passes it: full keys, JSON text for objects and lists.
func (d doc) values(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for k, v := range d {
		if s, ok := v.(string); ok {
			out["belay:"+k] = s
			continue
		}
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		out["belay:"+k] = string(b)
	}
	return out
}

func obj(d doc, key string) map[string]any { return d[key].(map[string]any) }
func app(d doc, i int) map[string]any      { return d["apps"].([]any)[i].(map[string]any) }

func parse(t *testing.T, d doc, opts ...config.Option) (*config.Config, error) {
	t.Helper()
	return config.Parse(d.values(t), opts...)
}

func TestValidConfigParses(t *testing.T) {
	cfg, err := parse(t, valid())
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if cfg.Sites.Primary.Provider != config.Hetzner || cfg.Sites.Standby.Provider != config.DigitalOcean {
		t.Errorf("sites = %+v", cfg.Sites)
	}
	if len(cfg.Apps) != 2 || cfg.Apps[1].Replicas != 3 {
		t.Errorf("apps = %+v", cfg.Apps)
	}
	if cfg.HostKeySeed != testSeed {
		t.Errorf("seed not kept")
	}
	if a := cfg.App("api"); a == nil || a.Port != 4000 {
		t.Errorf("App(api) = %+v", a)
	}
	if cfg.App("nope") != nil || cfg.Site("standby").Region != "ams3" || cfg.Site("x") != nil {
		t.Error("lookups wrong")
	}
}

func TestDefaults(t *testing.T) {
	cfg, err := parse(t, valid())
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name string
		got  any
		want any
	}{
		{"replicas", cfg.Apps[0].Replicas, 2},
		{"healthPath", cfg.Apps[0].HealthPath, "/up"},
		{"deployUser", cfg.Admin.DeployUser, "deploy"},
		{"database.name", cfg.Database.Name, "app"},
		{"postgresVersion", cfg.Database.PostgresVersion, 15},
		{"monitorSize (hetzner fsn1)", cfg.Database.MonitorSize, "cx23"},
		{"archiveTimeoutSeconds", cfg.Backups.ArchiveTimeoutSeconds, 30},
		{"ttl", cfg.DNS.TTL, 60},
		{"primaryCidr", cfg.Network.PrimaryCIDR, "10.10.0.0/24"},
		{"standbyCidr", cfg.Network.StandbyCIDR, "10.20.0.0/24"},
		{"keepReleases", cfg.Deploy.KeepReleases, 5},
		{"shopParam", cfg.Deploy.ShopParam, "shop"},
		{"shopHeader", cfg.Deploy.ShopHeader, "X-Shop-Domain"},
		{"shopCookie", cfg.Deploy.ShopCookie, "shop"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}

	// Dependent and partial defaults.
	d := valid()
	d["sites"] = map[string]any{
		"primary": map[string]any{"provider": "digitalocean", "region": "nyc3"},
		"standby": map[string]any{"provider": "hetzner", "region": "ash"},
	}
	for i := range d["apps"].([]any) {
		app(d, i)["size"], app(d, i)["standbySize"] = "s-1vcpu-1gb", "cpx11"
	}
	obj(d, "database")["size"], obj(d, "database")["standbySize"] = "s-1vcpu-1gb", "cpx11"
	delete(obj(d, "database"), "synchronous")
	obj(d, "backups")["repoSize"] = "cpx11"
	d["deploy"] = map[string]any{"keepReleases": 3}
	d["network"] = map[string]any{"standbyCidr": "10.30.0.0/24"}
	cfg, err = parse(t, d)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Database.MonitorSize != "s-1vcpu-1gb" {
		t.Errorf("monitorSize on DigitalOcean = %q, want s-1vcpu-1gb", cfg.Database.MonitorSize)
	}
	if !cfg.Database.Synchronous {
		t.Errorf("synchronous default = false, want true")
	}
	if cfg.Deploy.KeepReleases != 3 || cfg.Deploy.ShopHeader != "X-Shop-Domain" {
		t.Errorf("partial deploy = %+v, want keepReleases 3 and other defaults", cfg.Deploy)
	}
	if cfg.Network.PrimaryCIDR != "10.10.0.0/24" || cfg.Network.StandbyCIDR != "10.30.0.0/24" {
		t.Errorf("partial network = %+v", cfg.Network)
	}
}

func TestNormalization(t *testing.T) {
	d := valid()
	app(d, 0)["domains"] = []any{"WWW.Example.COM."}
	obj(d, "dns")["zone"] = "Example.com."
	obj(d, "admin")["sshCidrs"] = []any{"198.51.100.7", "203.0.113.9"}
	cfg, err := parse(t, d)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Apps[0].Domains[0]; got != "www.example.com" {
		t.Errorf("domain = %q, want www.example.com", got)
	}
	if cfg.DNS.Zone != "example.com" {
		t.Errorf("zone = %q", cfg.DNS.Zone)
	}
	if got := strings.Join(cfg.Admin.SSHCidrs, ","); got != "198.51.100.7/32,203.0.113.9/32" {
		t.Errorf("sshCidrs = %s", got)
	}
}

func TestOtherNamespacesIgnoredAndLegacyKeys(t *testing.T) {
	v := valid().values(t)
	v["digitalocean:token"] = "dop_v1_x"
	v["hcloud:token"] = "y"
	v["belay:config:dns"] = v["belay:dns"] // the legacy spelling of the same key
	delete(v, "belay:dns")
	if _, err := config.Parse(v); err != nil {
		t.Fatalf("Parse: %v", err)
	}
}

// TestErrors has one case per refused input: each must name the key path and
// say what was expected.
func TestErrors(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(d doc)
		opts   []config.Option
		path   string // the error must start with "<path>: "
		want   string // and contain this
	}{
		// Missing keys.
		{"missing sites", func(d doc) { delete(d, "sites") }, nil, "belay:sites", "missing, expected an object {primary"},
		{"missing admin", func(d doc) { delete(d, "admin") }, nil, "belay:admin", "missing, expected"},
		{"missing apps", func(d doc) { delete(d, "apps") }, nil, "belay:apps", "missing, expected a list of apps"},
		{"missing database", func(d doc) { delete(d, "database") }, nil, "belay:database", "missing, expected"},
		{"missing backups", func(d doc) { delete(d, "backups") }, nil, "belay:backups", "missing, expected"},
		{"missing dns", func(d doc) { delete(d, "dns") }, nil, "belay:dns", "missing, expected an object {provider, zone, ttl}"},
		{"missing seed", func(d doc) { delete(d, "hostKeySeed") }, nil, "belay:hostKeySeed", "missing, expected a secret of at least 32"},
		{"missing standby site", func(d doc) { delete(obj(d, "sites"), "standby") }, nil, "belay:sites.standby", "missing, expected an object {provider, region}"},

		// Unknown keys and fields.
		{"unknown key", func(d doc) { d["colour"] = "blue" }, nil, "belay:colour", "unknown key, expected one of belay:sites"},
		{"unknown key case", func(d doc) { d["DNS"] = map[string]any{} }, nil, "belay:DNS", "did you mean belay:dns?"},
		{"unknown site field", func(d doc) { obj(d, "sites")["primary"].(map[string]any)["zone"] = "x" }, nil, "belay:sites.primary.zone", "unknown field, expected one of provider, region"},
		{"unknown app field", func(d doc) { app(d, 1)["replica"] = 3 }, nil, "belay:apps[1].replica", "unknown field, expected one of name, size, standbySize, replicas"},
		{"unknown database field", func(d doc) { obj(d, "database")["version"] = 16 }, nil, "belay:database.version", "unknown field"},
		{"unknown deploy field", func(d doc) { d["deploy"] = map[string]any{"keep": 3} }, nil, "belay:deploy.keep", "unknown field, expected one of keepReleases"},
		{"unknown token field", func(d doc) { d["hostApiTokens"] = map[string]any{"aws": "x"} }, nil, "belay:hostApiTokens.aws", "unknown field, expected one of digitalocean, hetzner"},

		// Types.
		{"invalid JSON", func(d doc) { d["sites"] = "{primary:" }, nil, "belay:sites", "not valid JSON"},
		{"plain string for object", func(d doc) { d["dns"] = "example.com" }, nil, "belay:dns", `got string "example.com", expected an object {provider, zone, ttl}`},
		{"sites not object", func(d doc) { d["sites"] = []any{} }, nil, "belay:sites", "got a list, expected an object"},
		{"apps not list", func(d doc) { d["apps"] = map[string]any{} }, nil, "belay:apps", "got an object, expected a list of apps"},
		{"replicas not integer", func(d doc) { app(d, 0)["replicas"] = "two" }, nil, "belay:apps[0].replicas", `got string "two", expected an integer`},
		{"replicas fraction", func(d doc) { app(d, 0)["replicas"] = 2.5 }, nil, "belay:apps[0].replicas", "got number 2.5, expected an integer"},
		{"synchronous not bool", func(d doc) { obj(d, "database")["synchronous"] = "yes" }, nil, "belay:database.synchronous", "expected true or false"},
		{"domains not list", func(d doc) { app(d, 0)["domains"] = "www.example.com" }, nil, "belay:apps[0].domains", "expected a list of strings"},
		{"domain not string", func(d doc) { app(d, 0)["domains"] = []any{7} }, nil, "belay:apps[0].domains[0]", "got number 7, expected a string"},

		// Sites.
		{"bad provider", func(d doc) { obj(d, "sites")["primary"].(map[string]any)["provider"] = "aws" }, nil, "belay:sites.primary.provider", `got "aws", expected digitalocean or hetzner`},
		{"lab without lab mode", func(d doc) { labSites(d) }, nil, "belay:sites.primary.provider", `"lab" is only valid for the local lab`},
		{"lab on one site only", func(d doc) { obj(d, "sites")["standby"] = map[string]any{"provider": "lab"} }, []config.Option{config.WithLab()}, "belay:sites.primary.provider", `got "hetzner", expected "lab" like the standby`},
		{"lab primary only", func(d doc) { obj(d, "sites")["primary"] = map[string]any{"provider": "lab"} }, []config.Option{config.WithLab()}, "belay:sites.standby.provider", `got "digitalocean", expected "lab" like the primary`},
		{"same provider", func(d doc) {
			obj(d, "sites")["standby"] = map[string]any{"provider": "hetzner", "region": "hel1"}
		}, nil, "belay:sites.standby.provider", `got "hetzner", the primary's provider too, expected digitalocean`},
		{"bad DO region", func(d doc) { obj(d, "sites")["standby"].(map[string]any)["region"] = "fsn1" }, nil, "belay:sites.standby.region", `got "fsn1", expected a DigitalOcean region: ams3`},
		{"bad Hetzner region", func(d doc) { obj(d, "sites")["primary"].(map[string]any)["region"] = "nyc1" }, nil, "belay:sites.primary.region", `got "nyc1", expected a Hetzner region: ash, fsn1`},
		{"missing region", func(d doc) { delete(obj(d, "sites")["primary"].(map[string]any), "region") }, nil, "belay:sites.primary.region", "missing, expected a Hetzner region"},

		// Sizes.
		{"DO size at Hetzner", func(d doc) { app(d, 0)["size"] = "s-2vcpu-4gb" }, nil, "belay:apps[0].size", `got "s-2vcpu-4gb", expected a Hetzner server type orderable in fsn1: cx23`},
		{"Hetzner size at DO", func(d doc) { app(d, 1)["standbySize"] = "cx22" }, nil, "belay:apps[1].standbySize", `got "cx22", expected a DigitalOcean droplet size slug`},
		{"deprecated Hetzner type", func(d doc) { obj(d, "database")["size"] = "cx32" }, nil, "belay:database.size", `got "cx32", a server type Hetzner has deprecated, expected its replacement "cx33"`},
		{"missing size", func(d doc) { delete(app(d, 0), "size") }, nil, "belay:apps[0].size", "missing, expected a Hetzner server type"},
		{"EU-only type in Ashburn", func(d doc) {
			obj(d, "sites")["primary"].(map[string]any)["region"] = "ash"
			obj(d, "database")["monitorSize"] = "cpx11"
		}, nil, "belay:apps[0].size", `got "cx33", not orderable in ash (EU-only type)`},
		{"arm app", func(d doc) { app(d, 0)["size"] = "cax21" }, nil, "belay:apps[0].size", `an arm64 type, expected an x86-64 type`},
		{"bad db size", func(d doc) { obj(d, "database")["size"] = "huge" }, nil, "belay:database.size", `got "huge", expected a Hetzner server type`},
		{"bad db standby size", func(d doc) { obj(d, "database")["standbySize"] = "ccx23" }, nil, "belay:database.standbySize", "expected a DigitalOcean droplet size"},
		{"bad monitor size", func(d doc) { obj(d, "database")["monitorSize"] = "s-1vcpu-1gb" }, nil, "belay:database.monitorSize", "expected a Hetzner server type"},
		{"bad repo size", func(d doc) { obj(d, "backups")["repoSize"] = "cx22" }, nil, "belay:backups.repoSize", "expected a DigitalOcean droplet size"},
		{"missing repo size", func(d doc) { delete(obj(d, "backups"), "repoSize") }, nil, "belay:backups.repoSize", "missing, expected a DigitalOcean droplet size"},

		// Apps.
		{"no apps", func(d doc) { d["apps"] = []any{} }, nil, "belay:apps", "empty, expected at least one app"},
		{"replicas 1", func(d doc) { app(d, 1)["replicas"] = 1 }, nil, "belay:apps[1].replicas", "1, expected at least 2"},
		{"replicas 0", func(d doc) { app(d, 1)["replicas"] = 0 }, nil, "belay:apps[1].replicas", "0, expected at least 2"},
		{"duplicate app", func(d doc) { app(d, 1)["name"] = "web" }, nil, "belay:apps[1].name", `got "web", already the name of belay:apps[0], expected unique app names`},
		{"app name uppercase", func(d doc) { app(d, 0)["name"] = "Web" }, nil, "belay:apps[0].name", "expected a DNS label"},
		{"app name underscore", func(d doc) { app(d, 0)["name"] = "my_app" }, nil, "belay:apps[0].name", "expected a DNS label"},
		{"app name digit first", func(d doc) { app(d, 0)["name"] = "1web" }, nil, "belay:apps[0].name", "starting with a letter"},
		{"app name too long", func(d doc) { app(d, 0)["name"] = strings.Repeat("a", 56) }, nil, "belay:apps[0].name", "at most 55 characters"},
		{"app name missing", func(d doc) { delete(app(d, 0), "name") }, nil, "belay:apps[0].name", "missing, expected a DNS label"},
		{"app name reserved db", func(d doc) { app(d, 0)["name"] = "db" }, nil, "belay:apps[0].name", `got "db", a name belay uses for its own servers`},
		{"app name reserved backup", func(d doc) { app(d, 0)["name"] = "backup" }, nil, "belay:apps[0].name", "a name belay uses"},
		{"port low", func(d doc) { app(d, 0)["port"] = 80 }, nil, "belay:apps[0].port", "80, expected 1024..65534"},
		{"port high", func(d doc) { app(d, 0)["port"] = 65535 }, nil, "belay:apps[0].port", "65535, expected 1024..65534 (port+1 is the canary's"},
		{"port missing", func(d doc) { delete(app(d, 0), "port") }, nil, "belay:apps[0].port", "missing, expected the port the app listens on"},
		{"healthPath relative", func(d doc) { app(d, 0)["healthPath"] = "up" }, nil, "belay:apps[0].healthPath", `got "up", expected a plain URL path like /healthz`},
		{"healthPath space", func(d doc) { app(d, 0)["healthPath"] = "/up now" }, nil, "belay:apps[0].healthPath", `got "/up now", expected a plain URL path`},
		{"healthPath injection", func(d doc) { app(d, 0)["healthPath"] = "/up;id" }, nil, "belay:apps[0].healthPath", `got "/up;id", expected a plain URL path like /healthz`},
		{"healthPath query", func(d doc) { app(d, 0)["healthPath"] = "/up?a=1&b=2" }, nil, "belay:apps[0].healthPath", `got "/up?a=1&b=2", expected a plain URL path`},
		{"no domains", func(d doc) { app(d, 0)["domains"] = []any{} }, nil, "belay:apps[0].domains", "missing, expected at least one host name inside belay:dns.zone"},
		{"domain outside zone", func(d doc) { app(d, 1)["domains"] = []any{"api.example.org"} }, nil, "belay:apps[1].domains[0]", `got "api.example.org", expected a host name inside belay:dns.zone "example.com"`},
		{"domain suffix trick", func(d doc) { app(d, 1)["domains"] = []any{"notexample.com"} }, nil, "belay:apps[1].domains[0]", "inside belay:dns.zone"},
		{"domain invalid", func(d doc) { app(d, 1)["domains"] = []any{"bad_name.example.com"} }, nil, "belay:apps[1].domains[0]", `expected a host name (label "bad_name"`},
		{"domain duplicate", func(d doc) { app(d, 1)["domains"] = []any{"www.example.com"} }, nil, "belay:apps[1].domains[0]", "already used by belay:apps[0].domains[0]"},

		// Admin.
		{"no ssh keys", func(d doc) { obj(d, "admin")["sshKeys"] = []any{} }, nil, "belay:admin.sshKeys", "missing, expected at least one SSH public key"},
		{"bad ssh key", func(d doc) { obj(d, "admin")["sshKeys"] = []any{"ssh-ed25519 notbase64"} }, nil, "belay:admin.sshKeys[0]", "not an SSH public key"},
		{"ssh key with options", func(d doc) { obj(d, "admin")["sshKeys"] = []any{`command="x" ` + keyAlice} }, nil, "belay:admin.sshKeys[0]", "expected a plain public key"},
		{"weak rsa key", func(d doc) { obj(d, "admin")["sshKeys"] = []any{keyRSA1024} }, nil, "belay:admin.sshKeys[0]", "1024-bit RSA key, expected at least 2048 bits"},
		{"duplicate ssh key", func(d doc) { obj(d, "admin")["sshKeys"] = []any{keyAlice, keyBob, keyAlice} }, nil, "belay:admin.sshKeys[2]", "same key as belay:admin.sshKeys[0]"},
		{"no ssh cidrs", func(d doc) { delete(obj(d, "admin"), "sshCidrs") }, nil, "belay:admin.sshCidrs", "missing, expected at least one network allowed to reach port 22"},
		{"bad ssh cidr", func(d doc) { obj(d, "admin")["sshCidrs"] = []any{"office"} }, nil, "belay:admin.sshCidrs[0]", "expected a network in CIDR notation"},
		{"ssh cidr whole internet", func(d doc) { obj(d, "admin")["sshCidrs"] = []any{"203.0.113.0/28", "0.0.0.0/0"} }, nil, "belay:admin.sshCidrs[1]", `got "0.0.0.0/0", wider than a /8: expected a narrower network, or set belay:admin.allowWideSshCidrs: true`},
		{"ssh cidr /7", func(d doc) { obj(d, "admin")["sshCidrs"] = []any{"10.0.0.0/7"} }, nil, "belay:admin.sshCidrs[0]", "allowWideSshCidrs"},
		{"ssh cidr ipv6 everything", func(d doc) { obj(d, "admin")["sshCidrs"] = []any{"::/0"} }, nil, "belay:admin.sshCidrs[0]", "expected an IPv4 network"},
		{"allowWideSshCidrs not a bool", func(d doc) { obj(d, "admin")["allowWideSshCidrs"] = "yes" }, nil, "belay:admin.allowWideSshCidrs", "expected true or false"},
		{"ssh cidr host bits", func(d doc) { obj(d, "admin")["sshCidrs"] = []any{"203.0.113.9/24"} }, nil, "belay:admin.sshCidrs[0]", `expected the network address "203.0.113.0/24"`},
		{"deploy user root", func(d doc) { obj(d, "admin")["deployUser"] = "root" }, nil, "belay:admin.deployUser", `got "root", a system account`},
		{"deploy user invalid", func(d doc) { obj(d, "admin")["deployUser"] = "Deploy User" }, nil, "belay:admin.deployUser", "expected a Linux user name"},

		// Database.
		{"postgres 16", func(d doc) { obj(d, "database")["postgresVersion"] = 16 }, nil, "belay:database.postgresVersion", "16, expected 15: the servers run Debian 12, which ships PostgreSQL 15"},
		{"db name reserved", func(d doc) { obj(d, "database")["name"] = "postgres" }, nil, "belay:database.name", "a database PostgreSQL or pg_auto_failover uses itself"},
		{"db name invalid", func(d doc) { obj(d, "database")["name"] = "my-db" }, nil, "belay:database.name", "expected a lowercase PostgreSQL identifier"},

		// Backups.
		{"fullEvery monthly", func(d doc) { obj(d, "backups")["fullEvery"] = "monthly" }, nil, "belay:backups.fullEvery", `got "monthly", expected daily or weekly`},
		{"fullEvery missing", func(d doc) { delete(obj(d, "backups"), "fullEvery") }, nil, "belay:backups.fullEvery", "missing, expected daily or weekly"},
		{"retention 0", func(d doc) { obj(d, "backups")["retentionDays"] = 0 }, nil, "belay:backups.retentionDays", "0, expected a number of days to keep backups, at least 1"},
		{"retention missing", func(d doc) { delete(obj(d, "backups"), "retentionDays") }, nil, "belay:backups.retentionDays", "missing, expected a number of days"},
		{"archive timeout low", func(d doc) { obj(d, "backups")["archiveTimeoutSeconds"] = 1 }, nil, "belay:backups.archiveTimeoutSeconds", "1, expected 10..3600 seconds"},

		// DNS.
		{"dns provider", func(d doc) { obj(d, "dns")["provider"] = "cloudflare" }, nil, "belay:dns.provider", `got "cloudflare", expected digitalocean or hetzner`},
		{"dns zone invalid", func(d doc) { obj(d, "dns")["zone"] = "localhost" }, nil, "belay:dns.zone", `got "localhost", expected a domain name (at least two labels`},
		{"dns zone missing", func(d doc) { delete(obj(d, "dns"), "zone") }, nil, "belay:dns.zone", "missing, expected the DNS zone"},
		{"ttl low", func(d doc) { obj(d, "dns")["ttl"] = 10 }, nil, "belay:dns.ttl", "10, expected 30..86400 seconds"},
		{"ttl high", func(d doc) { obj(d, "dns")["ttl"] = 86401 }, nil, "belay:dns.ttl", "86401, expected 30..86400 seconds"},

		// Network.
		{"cidr invalid", func(d doc) { d["network"] = map[string]any{"primaryCidr": "10.10.0.0"} }, nil, "belay:network.primaryCidr", "expected a private IPv4 network in CIDR notation"},
		{"cidr public", func(d doc) { d["network"] = map[string]any{"primaryCidr": "8.8.8.0/24"} }, nil, "belay:network.primaryCidr", "expected a private (RFC 1918) network"},
		{"cidr host bits", func(d doc) { d["network"] = map[string]any{"primaryCidr": "10.10.0.5/24"} }, nil, "belay:network.primaryCidr", `expected the network address "10.10.0.0/24"`},
		{"cidr too big", func(d doc) { d["network"] = map[string]any{"primaryCidr": "10.0.0.0/8"} }, nil, "belay:network.primaryCidr", "between /16 and /28"},
		{"cidr overlap", func(d doc) { d["network"] = map[string]any{"standbyCidr": "10.10.0.0/23"} }, nil, "belay:network.standbyCidr", `overlaps primaryCidr "10.10.0.0/24"`},
		{"DO VPC smaller than /24", func(d doc) { d["network"] = map[string]any{"standbyCidr": "10.30.0.0/25"} }, nil, "belay:network.standbyCidr", "between /16 and /24 (DigitalOcean VPC ranges)"},
		{"cidr DO reserved", func(d doc) { d["network"] = map[string]any{"standbyCidr": "10.244.1.0/24"} }, nil, "belay:network.standbyCidr", "DigitalOcean reserves"},
		{"plan overflow", func(d doc) {
			d["network"] = map[string]any{"primaryCidr": "10.10.0.0/28"}
		}, nil, "belay:network.primaryCidr", "use a larger network"},

		// Deploy.
		{"agent missing", func(d doc) { delete(d, "agent") }, nil, "belay:agent.url", "missing, expected the https URL"},
		{"agent plain http", func(d doc) { obj(d, "agent")["url"] = "http://example.com/belay" }, nil, "belay:agent.url", "expected an https URL"},
		{"agent bad checksum", func(d doc) { obj(d, "agent")["sha256"] = "abc" }, nil, "belay:agent.sha256", "64 lowercase hex digits"},
		{"agent unknown field", func(d doc) { obj(d, "agent")["sha512"] = "x" }, nil, "belay:agent.sha512", "unknown field"},
		{"ipv6 admin network", func(d doc) { obj(d, "admin")["sshCidrs"] = []any{"2001:db8::/48"} }, nil, "belay:admin.sshCidrs[0]", "expected an IPv4 network"},
		{"keepReleases 1", func(d doc) { d["deploy"] = map[string]any{"keepReleases": 1} }, nil, "belay:deploy.keepReleases", "1, expected 2..100"},
		{"shopParam dash", func(d doc) { d["deploy"] = map[string]any{"shopParam": "shop-id"} }, nil, "belay:deploy.shopParam", "$arg_<name>"},
		{"shopHeader underscore", func(d doc) { d["deploy"] = map[string]any{"shopHeader": "X_Shop"} }, nil, "belay:deploy.shopHeader", "nginx drops headers with '_'"},
		{"shopCookie empty", func(d doc) { d["deploy"] = map[string]any{"shopCookie": ""} }, nil, "belay:deploy.shopCookie", "expected 1-64 letters"},

		// Secrets.
		{"seed short", func(d doc) { d["hostKeySeed"] = "hunter2" }, nil, "belay:hostKeySeed", "7 characters, expected at least 32"},
		{"seed in plain text", func(d doc) {}, []config.Option{config.WithSecretKeys([]string{})}, "belay:hostKeySeed", "stored in plain text, expected a secret"},
		{"tokens in plain text", func(d doc) { d["hostApiTokens"] = map[string]any{"hetzner": "tok"} }, []config.Option{config.WithSecretKeys([]string{"belay:hostKeySeed"})}, "belay:hostApiTokens", "stored in plain text, expected a secret"},
		{"token with newline", func(d doc) { d["hostApiTokens"] = map[string]any{"hetzner": "tok\n"} }, nil, "belay:hostApiTokens.hetzner", "expected the API token alone"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := valid()
			tc.mutate(d)
			_, err := parse(t, d, tc.opts...)
			if err == nil {
				t.Fatalf("Parse accepted the config, want an error at %s", tc.path)
			}
			line := findLine(err, tc.path)
			if line == "" {
				t.Fatalf("no error names %s; got:\n%v", tc.path, err)
			}
			if !strings.Contains(line, tc.want) {
				t.Errorf("error for %s = %q, want it to contain %q", tc.path, line, tc.want)
			}
			if !strings.Contains(line, "expected") {
				t.Errorf("error %q does not say what was expected", line)
			}
		})
	}
}

// findLine returns the first error line about exactly path.
func findLine(err error, path string) string {
	for _, l := range strings.Split(err.Error(), "\n") {
		if strings.HasPrefix(l, path+": ") {
			return l
		}
	}
	return ""
}

func labSites(d doc) {
	d["sites"] = map[string]any{"primary": map[string]any{"provider": "lab"}, "standby": map[string]any{"provider": "lab"}}
}

// TestAllErrorsAtOnce checks every problem is reported in one run, in a stable order.
func TestAllErrorsAtOnce(t *testing.T) {
	d := valid()
	app(d, 1)["replicas"] = 1
	obj(d, "dns")["ttl"] = 5
	obj(d, "sites")["standby"].(map[string]any)["region"] = "mars"
	d["hostKeySeed"] = "short"
	d["extra"] = 1.0
	_, err := parse(t, d)
	if err == nil {
		t.Fatal("Parse accepted the config")
	}
	want := []string{
		"belay:sites.standby.region: ",
		"belay:apps[1].replicas: 1, expected at least 2",
		"belay:dns.ttl: ",
		"belay:hostKeySeed: ",
		"belay:extra: ",
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%v", len(lines), len(want), err)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("error %d = %q, want prefix %q", i, lines[i], w)
		}
	}
	for i := 0; i < 20; i++ {
		_, again := parse(t, d)
		if again.Error() != err.Error() {
			t.Fatalf("error order not stable:\n%v\nvs\n%v", err, again)
		}
	}
	var fe *config.FieldError
	if !errors.As(err, &fe) || fe.Path != "belay:sites.standby.region" {
		t.Errorf("errors.As FieldError = %+v", fe)
	}
}

// TestSecretsNeverEchoed: error messages must not contain secret values.
func TestSecretsNeverEchoed(t *testing.T) {
	const seed, token = "s3cr3t-seed-short", "dop_v1_supersecrettoken"
	d := valid()
	d["hostKeySeed"] = seed
	d["hostApiTokens"] = map[string]any{"digitalocean": []any{token}, "hetzner": token + " x"}
	_, err := parse(t, d)
	if err == nil {
		t.Fatal("Parse accepted the config")
	}
	if strings.Contains(err.Error(), seed) || strings.Contains(err.Error(), "supersecret") {
		t.Fatalf("error leaks a secret: %v", err)
	}
	if findLine(err, "belay:hostApiTokens.digitalocean") == "" || findLine(err, "belay:hostApiTokens.hetzner") == "" {
		t.Errorf("token errors missing: %v", err)
	}
	d["hostApiTokens"] = token // a bare string where an object belongs
	_, err = parse(t, d)
	if err == nil || strings.Contains(err.Error(), "supersecret") {
		t.Fatalf("error = %v, want a refusal that does not echo the token", err)
	}
}

func TestLabMode(t *testing.T) {
	d := valid()
	labSites(d)
	for i := range d["apps"].([]any) {
		delete(app(d, i), "size")
		delete(app(d, i), "standbySize")
	}
	d["database"] = map[string]any{}
	delete(obj(d, "backups"), "repoSize")
	obj(d, "dns")["provider"] = "lab"
	cfg, err := parse(t, d, config.WithLab())
	if err != nil {
		t.Fatalf("Parse(lab): %v", err)
	}
	if cfg.Sites.Primary.Provider != config.Lab || cfg.Database.MonitorSize != "" {
		t.Errorf("lab config = %+v / %+v", cfg.Sites, cfg.Database)
	}
	// A real config is still fine in lab mode.
	if _, err := parse(t, valid(), config.WithLab()); err != nil {
		t.Errorf("Parse(real config, WithLab): %v", err)
	}
}

func TestValidateConfigBuiltInCode(t *testing.T) {
	err := (&config.Config{}).Validate()
	if err == nil {
		t.Fatal("zero Config validated")
	}
	for _, p := range []string{"belay:sites.primary.provider", "belay:admin.sshKeys", "belay:apps", "belay:database.postgresVersion", "belay:hostKeySeed"} {
		if findLine(err, p) == "" {
			t.Errorf("no error for %s in:\n%v", p, err)
		}
	}
	cfg, err := parse(t, valid())
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("Validate(parsed config) = %v", err)
	}
	cfg.Apps[0].Replicas = 1
	if err := cfg.Validate(); err == nil || findLine(err, "belay:apps[0].replicas") == "" {
		t.Errorf("Validate after edit = %v", err)
	}
}

func TestCatalog(t *testing.T) {
	for _, c := range []struct {
		p      config.Provider
		region string
		want   string
	}{
		{config.DigitalOcean, "fra1", "s-1vcpu-1gb"},
		{config.Hetzner, "nbg1", "cx23"},
		{config.Hetzner, "hil", "cpx11"},
		{config.Lab, "", ""},
	} {
		got := config.SmallestSize(c.p, c.region)
		if got != c.want {
			t.Errorf("SmallestSize(%s, %s) = %q, want %q", c.p, c.region, got, c.want)
		}
		if got != "" && !contains(config.Sizes(c.p, c.region), got) {
			t.Errorf("SmallestSize(%s, %s) = %q is not in Sizes", c.p, c.region, got)
		}
	}
	if contains(config.Sizes(config.Hetzner, "sin"), "cax11") {
		t.Error("cax11 offered in sin")
	}
	if !config.IsARM(config.Hetzner, "cax11") || config.IsARM(config.Hetzner, "cpx11") {
		t.Error("IsARM wrong")
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func Example() {
	_, err := config.Parse(map[string]string{"belay:sites": `{"primary": {"provider": "hetzner", "region": "fsn1"}, "standby": {"provider": "hetzner", "region": "hel1"}}`})
	fmt.Println(strings.Split(err.Error(), "\n")[0])
	// Output: belay:sites.standby.provider: got "hetzner", the primary's provider too, expected digitalocean: the standby must survive an outage of the primary's provider
}

// TestWideSSHCidrs: a /8 is accepted as is; wider networks only with the
// acknowledgement key, which also reaches the parsed config.
func TestWideSSHCidrs(t *testing.T) {
	for _, tc := range []struct {
		cidr  string
		allow any
		ok    bool
	}{
		{"10.0.0.0/8", nil, true},
		{"0.0.0.0/0", nil, false},
		{"0.0.0.0/0", false, false},
		{"0.0.0.0/0", true, true},
		{"0.0.0.0/0", "true", true},
		{"128.0.0.0/1", true, true},
	} {
		d := valid()
		obj(d, "admin")["sshCidrs"] = []any{tc.cidr}
		if tc.allow != nil {
			obj(d, "admin")["allowWideSshCidrs"] = tc.allow
		}
		cfg, err := parse(t, d)
		if (err == nil) != tc.ok {
			t.Errorf("%s allow=%v: %v", tc.cidr, tc.allow, err)
			continue
		}
		if err == nil && cfg.Admin.AllowWideSSHCidrs != (tc.allow == true || tc.allow == "true") {
			t.Errorf("%s allow=%v: AllowWideSSHCidrs = %v", tc.cidr, tc.allow, cfg.Admin.AllowWideSSHCidrs)
		}
	}
}
