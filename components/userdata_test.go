package components

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/belay-sh/belay/config"
	"github.com/belay-sh/belay/hostspec"
	"github.com/belay-sh/belay/topology"
)

// TestPlaceholdersNeverReachUserData checks the dependency table of
// userdata.go: where the provider assigns private addresses (DigitalOcean),
// a group is rendered with planned addresses standing in for hosts it does not
// depend on (hostspec.Build builds every host). Moving those stand-ins must
// not change a byte of the group's user data; if it did, a server would boot
// with an address that is not the real one.
func TestPlaceholdersNeverReachUserData(t *testing.T) {
	for _, d := range directions {
		t.Run(d.name, func(t *testing.T) {
			cfg, err := config.Parse(values(testDoc(d.primary, d.standby, 2)))
			if err != nil {
				t.Fatal(err)
			}
			p, err := newPlan("test", cfg)
			if err != nil {
				t.Fatal(err)
			}
			// The "real" addresses a provider would have assigned, and static IPs and VIPs.
			real := hostspec.Resolved{}
			for i, h := range p.topo.Hosts {
				real["priv/"+h.Name] = moved(h.PrivateAddress, 100)
				real["pub/"+h.Name] = fmt.Sprintf("198.18.0.%d", 10+i)
			}
			for i, h := range hostspec.StaticHosts(p.topo) {
				real["static/"+h] = fmt.Sprintf("198.19.0.%d", 10+i)
			}
			for i, a := range cfg.Apps {
				real["vip/"+a.Name] = fmt.Sprintf("198.19.1.%d", 10+i)
			}
			// The same plan with every stand-in moved elsewhere in its site network.
			shifted := *p.topo
			shifted.Hosts = append([]topology.Host{}, p.topo.Hosts...)
			for i := range shifted.Hosts {
				shifted.Hosts[i].PrivateAddress = netip.MustParseAddr(moved(shifted.Hosts[i].PrivateAddress, 50))
			}
			unpinned := map[string]bool{}
			for _, h := range p.topo.Hosts {
				site := cfg.Sites.Primary
				if h.Site == "standby" {
					site = cfg.Sites.Standby
				}
				unpinned[h.Name] = site.Provider == config.DigitalOcean
			}
			for g := hostspec.UDFirst; g < hostspec.NumUserDataGroups; g++ {
				hosts := hostspec.GroupHosts(g, p.topo)
				if len(hosts) == 0 {
					continue
				}
				// render passes group g only its part of real (hostspec.UserDataKeys).
				r := real
				a, err := p.userData.render(g, r)
				if err != nil {
					t.Fatalf("group %d: %v", g, err)
				}
				other := *p.userData
				other.topo = &shifted
				// Pinned sites really use their planned addresses: keep those.
				for i := range shifted.Hosts {
					if !unpinned[shifted.Hosts[i].Name] {
						shifted.Hosts[i].PrivateAddress = p.topo.Hosts[i].PrivateAddress
					}
				}
				b, err := other.render(g, r)
				if err != nil {
					t.Fatalf("group %d (moved stand-ins): %v", g, err)
				}
				for _, h := range hosts {
					if a[h] != b[h] {
						t.Errorf("%s: user data depends on a stand-in address (add the host it names to hostspec.UserDataDeps)", h)
					}
				}
			}
		})
	}
}

// moved is a with its third octet raised by n (inside the tests' /16 networks).
func moved(a netip.Addr, n byte) string {
	b := a.As4()
	b[2] += n
	return netip.AddrFrom4(b).String()
}
