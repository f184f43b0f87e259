package hostspec

import (
	"fmt"
	"net/netip"
	"sort"

	"github.com/belay-sh/belay/config"
	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/roles"
	"github.com/belay-sh/belay/topology"
)

// CellRouterID is the VRRP router ID of the cell in slot (topology.Cell.Slot):
// counted down from 255 so the apps' IDs (firstRouterID+i) and the cells'
// never move when either grows.
func CellRouterID(slot int) int { return 255 - slot }

// LabCellVIP is the address keepalived moves for the cell in slot in the lab
// (counted down from 10.213.0.125, below the deployer's leg at .126).
func LabCellVIP(slot int) string { return fmt.Sprintf("10.213.0.%d", 125-slot) }

// cellPassword is the purpose a cell's database password derives from.
func cellPassword(app, cell string) string { return "postgres/cell/" + app + "/" + cell }

// checkCellIDs refuses VRRP router IDs or lab VIPs that would collide.
func (b *builder) checkCellIDs() error {
	lowest := 256
	for _, cells := range b.topo.Cells {
		for _, c := range cells {
			if id := CellRouterID(c.Slot); id < lowest {
				lowest = id
			}
		}
	}
	if top := firstRouterID + len(b.cfg.Apps) - 1; lowest <= top {
		return fmt.Errorf("belay:apps: %d apps and the cells' VRRP router IDs (down to %d) collide, expected fewer apps or cells", len(b.cfg.Apps), lowest)
	}
	return nil
}

// cellDatabaseURL is a cell server's libpq URL: its own role and database.
func (b *builder) cellDatabaseURL(from inventory.SiteName, app, cell string) (string, error) {
	tc := b.topo.Cell(app, cell)
	if tc == nil {
		return "", fmt.Errorf("cell %s/%s is not in the topology", app, cell)
	}
	pw, err := b.password(cellPassword(app, cell))
	if err != nil {
		return "", err
	}
	var hosts string
	switch {
	case len(tc.DBNodes) > 0 && from == inventory.Primary:
		hosts, err = b.hostList(tc.DBNodes) // its own pair
	case len(tc.DBNodes) > 0:
		hosts, err = b.hostList([]string{tc.StandbyDB}) // its own standby database
	default:
		hosts, err = b.dbHosts(from)
	}
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("postgresql://%s:%s@%s/%s?target_session_attrs=read-write&connect_timeout=3", tc.Database, pw, hosts, tc.Database), nil
}

// cellVRRP sets a cell server's VRRP group: the cell's own members, router ID
// and floating IP.
func (b *builder) cellVRRP(h topology.Host, v *roles.VRRP) error {
	tc := b.topo.Cell(h.App, h.Cell)
	if tc == nil {
		return fmt.Errorf("cell %s/%s is not in the topology", h.App, h.Cell)
	}
	v.RouterID = CellRouterID(tc.Slot)
	return b.groupVRRP(h, v, tc.Group, tc.Hosts)
}

// groupVRRP fills the floating IP and the peers of a VRRP group member.
func (b *builder) groupVRRP(h topology.Host, v *roles.VRRP, group string, members []string) error {
	se := b.site(h)
	v.VIP, v.VIPInterface, v.ClaimCommand = "", "", ""
	v.Peers, v.PeerDiscovery = nil, nil
	if vip, ok := b.env.VIPs[group]; ok {
		v.VIP, v.VIPInterface, v.ClaimCommand = vip.Address, vip.Interface, vip.ClaimCommand
		if v.VIP != "" && v.VIPInterface == "" {
			v.VIPInterface = se.PublicInterface
		}
	}
	if !se.PinnedAddresses {
		v.PeerDiscovery = &roles.PeerDiscovery{Provider: string(se.Provider), Selector: GroupTag(b.stack, group), Token: se.DiscoveryToken}
		return nil
	}
	for _, peer := range members {
		if peer == h.Name {
			continue
		}
		a, err := b.addr(peer)
		if err != nil {
			return err
		}
		v.Peers = append(v.Peers, a)
	}
	return nil
}

// router builds a router's Spec: the cells' addresses (their floating IPs on
// the primary site, their standby servers on the standby site), the unknown
// shop answer, the shop keys, and the VRRP group of the router tier.
func (b *builder) router(h topology.Host, s *roles.Spec) error {
	ac := b.appConfig(h.App)
	rt := b.topo.Routers[h.App]
	if ac == nil || rt == nil || ac.Router == nil {
		return fmt.Errorf("app %q has no router tier", h.App)
	}
	standby := h.Site == inventory.Standby
	dbURL, err := b.databaseURL(h.Site)
	if err != nil {
		return err
	}
	r := &roles.Router{
		App:         ac.Name,
		Standby:     standby,
		DefaultCell: ac.Router.DefaultCell,
		UnknownShop: ac.Router.UnknownShop,
		ShopParam:   b.cfg.Deploy.ShopParam,
		ShopHeader:  b.cfg.Deploy.ShopHeader,
		ShopCookie:  b.cfg.Deploy.ShopCookie,
		DatabaseURL: dbURL,
		// The app's domains point at the router tier: it terminates HTTPS.
		Domains: append([]string(nil), ac.Domains...),
		TLS:     b.tls(ac),
	}
	for _, c := range b.topo.Cells[ac.Name] {
		var addr string
		if standby {
			if addr, err = b.addr(c.Standby); err != nil {
				return err
			}
		} else {
			// Build makes every host's Spec whichever hosts a caller renders
			// (the Pulumi program renders groups of hosts as their
			// dependencies exist): a missing floating IP leaves the address
			// empty, which roles.Render refuses for this router only.
			addr = b.env.VIPs[c.Group].Public
		}
		r.Cells = append(r.Cells, roles.RouterCell{Name: c.Name, Address: addr, Port: 80})
	}
	if !standby {
		prio := topPriority - 10*h.Index
		if prio < 1 {
			prio = 1
		}
		auth, err := b.password("vrrp/" + rt.Group)
		if err != nil {
			return err
		}
		v := &roles.VRRP{RouterID: firstRouterID + b.appIndex(ac.Name), Priority: prio, ClaimToken: b.site(h).ClaimToken, AuthPass: auth[:8], AdvertInterval: AdvertInterval}
		if err := b.groupVRRP(h, v, rt.Group, rt.Hosts); err != nil {
			return err
		}
		r.VRRP = v
	}
	s.Router = r
	return nil
}

// tenants are the cells' databases a primary data node creates (and the
// stack's standby database admits), each open to its own cell's servers only.
func (b *builder) tenants(h topology.Host) ([]roles.DBTenant, error) {
	var out []roles.DBTenant
	for _, a := range b.cfg.Apps {
		for _, c := range b.topo.Cells[a.Name] {
			if len(c.DBNodes) > 0 {
				// Its database lives on its own pair and, on the standby
				// site, on its own standby database (dedicated.go): the
				// stack's stanza does not hold it.
				continue
			}
			pw, err := b.password(cellPassword(a.Name, c.Name))
			if err != nil {
				return nil, err
			}
			t := roles.DBTenant{Database: c.Database, User: c.Database, Password: pw}
			members := c.Hosts
			if h.Site == inventory.Standby {
				members = []string{c.Standby}
			}
			if b.site(h).PinnedAddresses {
				for _, n := range members {
					addr, err := b.addr(n)
					if err != nil {
						return nil, err
					}
					t.AllowFrom = append(t.AllowFrom, addr)
				}
				sort.Strings(t.AllowFrom)
			} else {
				t.AllowFrom = []string{b.cidr(h.Site)}
			}
			out = append(out, t)
		}
	}
	return out, nil
}

// cellAndRouterHosts are site's servers of cells and routers that reach the
// stack's PostgreSQL (cells their own database, routers the mapping); a
// dedicated cell's servers reach their own pair or standby database only.
func (b *builder) cellAndRouterHosts(site inventory.SiteName) []string {
	var out []string
	for _, a := range b.cfg.Apps {
		if rt := b.topo.Routers[a.Name]; rt != nil {
			if site == inventory.Primary {
				out = append(out, rt.Hosts...)
			} else {
				out = append(out, rt.Standby)
			}
		}
		for _, c := range b.topo.Cells[a.Name] {
			if len(c.DBNodes) > 0 {
				continue // they reach their own pair (standby database) only
			}
			if site == inventory.Primary {
				out = append(out, c.Hosts...)
			} else {
				out = append(out, c.Standby)
			}
		}
	}
	return out
}

// groupNames lists every VRRP group Env.VIPs may name: apps without cells,
// routers and cells.
func groupNames(cfg *config.Config, t *topology.Topology) map[string]bool {
	out := map[string]bool{}
	for _, a := range cfg.Apps {
		if !a.HasCells() {
			out[a.Name] = true
			continue
		}
		out[topology.RouterGroup(a.Name)] = true
		for _, c := range t.Cells[a.Name] {
			out[c.Group] = true
		}
	}
	return out
}

func validIPv4(s string) bool {
	a, err := netip.ParseAddr(s)
	return err == nil && a.Is4()
}
