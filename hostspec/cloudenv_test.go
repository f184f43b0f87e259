package hostspec

import (
	"strings"
	"testing"

	"github.com/belay-sh/belay/config"
	"github.com/belay-sh/belay/topology"
)

func TestParseAddresses(t *testing.T) {
	doc := `{"version":1,"stack":"prod","private":{"db-1":"10.0.0.2"},"public":{"db-1":"203.0.113.2"},"static":{"db-1":"203.0.113.9"},"vips":{"shop":"198.51.100.1"}}`
	for _, in := range []string{doc, `{"inventory":{},"addresses":` + doc + `}`} {
		a, err := ParseAddresses([]byte(in), "prod")
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		r := a.Resolved()
		if r["priv/db-1"] != "10.0.0.2" || r["pub/db-1"] != "203.0.113.2" || r["static/db-1"] != "203.0.113.9" || r["vip/shop"] != "198.51.100.1" || len(r) != 4 {
			t.Errorf("resolved = %v", r)
		}
		back, err := AddressesFrom("prod", r)
		if err != nil || back.Private["db-1"] != "10.0.0.2" || back.VIPs["shop"] != "198.51.100.1" {
			t.Errorf("AddressesFrom = %+v, %v", back, err)
		}
	}
	bad := []struct{ in, stack, want string }{
		{`{"inventory":{}}`, "prod", `no "addresses" output`},
		{strings.Replace(doc, `"version":1`, `"version":2`, 1), "prod", "addresses.version: 2"},
		{doc, "staging", `addresses.stack: "prod", expected "staging"`},
		{strings.Replace(doc, `"10.0.0.2"`, `"[secret]"`, 1), "prod", `addresses.private.db-1: "[secret]", expected an IPv4 address`},
		{strings.Replace(doc, `"vips"`, `"extra":{},"vips"`, 1), "prod", `unknown field "extra"`},
		{`[]`, "prod", "not a JSON object"},
	}
	for _, b := range bad {
		if _, err := ParseAddresses([]byte(b.in), b.stack); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%s: err = %v, want %q", b.in, err, b.want)
		}
	}
}

// TestForGroupNamesMissing: a group's address that the outputs lack is an
// error naming it, never a stand-in.
func TestForGroupNamesMissing(t *testing.T) {
	cfg, topo := cloudPlan(t)
	r := Resolved{}
	for _, h := range StaticHosts(topo) {
		r["static/"+h] = "203.0.113.1"
	}
	if _, err := r.ForGroup(UDFirst, cfg, topo); err != nil {
		t.Errorf("first group needs only static IPs: %v", err)
	}
	_, err := r.ForGroup(UDDB, cfg, topo)
	if err == nil || !strings.Contains(err.Error(), "priv/"+topo.DBMonitor) {
		t.Errorf("db group without the monitor's address: %v", err)
	}
}

func cloudPlan(t *testing.T) (*config.Config, *topology.Topology) {
	t.Helper()
	cfg := exampleConfig(t)
	topo, err := topology.Plan(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cfg, topo
}
