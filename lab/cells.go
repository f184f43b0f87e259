package lab

import (
	"fmt"
	"net/netip"

	"github.com/belay-sh/belay/hostspec"
	"github.com/belay-sh/belay/topology"
)

// checkCellVIPs refuses a cells stack whose cells' lab floating addresses
// (hostspec.LabCellVIP, counted down from .125) would land on a machine, the
// deployer's leg or an app's (or router tier's) VIP.
func checkCellVIPs(topo *topology.Topology, apps int) error {
	used := map[netip.Addr]string{}
	for _, s := range Segments() {
		used[s.Router] = "the lab router"
		used[s.HostLeg] = "the deployer's leg"
	}
	for _, h := range topo.Hosts {
		used[h.PrivateAddress] = "host " + h.Name
	}
	for i := 0; i < apps; i++ {
		if a, err := netip.ParseAddr(hostspec.LabVIP(i)); err == nil {
			used[a] = fmt.Sprintf("app %d's VIP", i+1)
		}
	}
	for _, cells := range topo.Cells {
		for _, c := range cells {
			a, err := netip.ParseAddr(hostspec.LabCellVIP(c.Slot))
			if err != nil || !PrimaryCIDR.Contains(a) {
				return fmt.Errorf("cell %s: VIP %s is outside the primary site %s (too many cells for the lab)", c.Group, hostspec.LabCellVIP(c.Slot), PrimaryCIDR)
			}
			if what, ok := used[a]; ok {
				return fmt.Errorf("cell %s: VIP %s is already %s (too many apps or cells for the lab)", c.Group, a, what)
			}
			used[a] = "cell " + c.Group + "'s VIP"
		}
	}
	return nil
}
