// Package topology turns a validated config into the list of servers a stack has:
// names, roles, sites, sizes and planned private addresses. The Pulumi components
// and the lab both start from this list, which is why the lab mirrors a real stack.
package topology

import (
	"fmt"
	"net/netip"

	"github.com/belay-sh/belay/config"
	"github.com/belay-sh/belay/inventory"
)

// Host offsets inside a site's private network. Fixed so an address plan is
// stable when apps are added (new apps only append).
const (
	offsetDB1       = 10
	offsetDB2       = 11
	offsetMonitor   = 12
	offsetBackup    = 10
	offsetStandbyDB = 11
	offsetApps      = 20
	// AppBlock is how many primary-site addresses each app owns, in config
	// order: app i's servers are offsetApps + i*AppBlock + j. Adding an app or
	// a replica never moves another server's address (it would rewrite their
	// keepalived peers and, on Hetzner, their network attachment).
	AppBlock = 10
)

// Host is one planned server.
type Host struct {
	Name  string
	Site  inventory.SiteName
	Roles []inventory.Role
	// App is the app this server serves ("" for database and backup servers).
	App string
	// Size is the provider's server type / droplet size.
	Size string
	// PrivateAddress is the planned address on the site network. Providers that
	// pin private addresses (Hetzner, the lab) use it; DigitalOcean assigns its own.
	PrivateAddress netip.Addr
	// Index is the position in the app's VRRP group (0 for the first), or in the DB pair.
	Index int
	// Cell is the cell this server serves ("" outside cells; see cells.go).
	Cell string
}

// Topology is every server of a stack plus the groups the roles need.
type Topology struct {
	Hosts []Host
	// AppHosts maps an app name to its primary-site servers, in VRRP priority order.
	AppHosts map[string][]string
	// StandbyApp maps an app name to its standby-site server.
	StandbyApp map[string]string
	DBNodes    []string
	DBMonitor  string
	StandbyDB  string
	BackupRepo string
	// Cells maps an app with cells to its cells, in config order (cells.go).
	Cells map[string][]Cell
	// Routers maps an app with cells to its router tier.
	Routers map[string]*Router
}

// ReservedNames are host names belay uses itself; an app may not produce them.
var ReservedNames = []string{"db", "backup", "db-monitor", "db-standby"}

// Plan lays out the servers of cfg. It fails if an address plan does not fit a
// site's network or two servers would get the same name.
func Plan(cfg *config.Config) (*Topology, error) {
	primary, err := netip.ParsePrefix(cfg.Network.PrimaryCIDR)
	if err != nil {
		return nil, fmt.Errorf("belay:network.primaryCidr: %w", err)
	}
	standby, err := netip.ParsePrefix(cfg.Network.StandbyCIDR)
	if err != nil {
		return nil, fmt.Errorf("belay:network.standbyCidr: %w", err)
	}
	t := &Topology{AppHosts: map[string][]string{}, StandbyApp: map[string]string{}, Cells: map[string][]Cell{}, Routers: map[string]*Router{}}
	names := map[string]bool{}
	add := func(h Host, prefix netip.Prefix, offset int, key string) error {
		if names[h.Name] {
			return fmt.Errorf("belay:apps: server name %q would be used twice (rename the app)", h.Name)
		}
		addr, err := nth(prefix, offset)
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		names[h.Name] = true
		h.PrivateAddress = addr
		t.Hosts = append(t.Hosts, h)
		return nil
	}
	db := cfg.Database
	pk, sk := "belay:network.primaryCidr", "belay:network.standbyCidr"
	for i, off := range []int{offsetDB1, offsetDB2} {
		name := fmt.Sprintf("db-%d", i+1)
		if err := add(Host{Name: name, Site: inventory.Primary, Roles: []inventory.Role{inventory.RoleDB}, Size: db.Size, Index: i}, primary, off, pk); err != nil {
			return nil, err
		}
		t.DBNodes = append(t.DBNodes, name)
	}
	t.DBMonitor = "db-monitor"
	if err := add(Host{Name: t.DBMonitor, Site: inventory.Primary, Roles: []inventory.Role{inventory.RoleDBMonitor}, Size: db.MonitorSize}, primary, offsetMonitor, pk); err != nil {
		return nil, err
	}
	t.BackupRepo = "backup"
	if err := add(Host{Name: t.BackupRepo, Site: inventory.Standby, Roles: []inventory.Role{inventory.RoleBackupRepo}, Size: cfg.Backups.RepoSize}, standby, offsetBackup, sk); err != nil {
		return nil, err
	}
	t.StandbyDB = "db-standby"
	if err := add(Host{Name: t.StandbyDB, Site: inventory.Standby, Roles: []inventory.Role{inventory.RoleStandbyDB}, Size: db.StandbySize}, standby, offsetStandbyDB, sk); err != nil {
		return nil, err
	}
	cellApps := 0
	for i, app := range cfg.Apps {
		if app.HasCells() {
			if err := planCells(t, add, cfg, i, cellApps, primary, standby); err != nil {
				return nil, err
			}
			cellApps++
			continue
		}
		if app.Replicas > AppBlock {
			return nil, fmt.Errorf("belay:apps[%d].replicas: %d, expected at most %d (each app owns a block of %d addresses)", i, app.Replicas, AppBlock, AppBlock)
		}
		next := offsetApps + i*AppBlock
		for j := 0; j < app.Replicas; j++ {
			name := fmt.Sprintf("%s-%d", app.Name, j+1)
			if err := add(Host{Name: name, Site: inventory.Primary, Roles: []inventory.Role{inventory.RoleApp}, App: app.Name, Size: app.Size, Index: j}, primary, next, pk); err != nil {
				return nil, err
			}
			t.AppHosts[app.Name] = append(t.AppHosts[app.Name], name)
			next++
		}
		name := app.Name + "-standby"
		if err := add(Host{Name: name, Site: inventory.Standby, Roles: []inventory.Role{inventory.RoleStandbyApp}, App: app.Name, Size: app.StandbySize}, standby, offsetApps+i, sk); err != nil {
			return nil, err
		}
		t.StandbyApp[app.Name] = name
	}
	if err := checkCellAreas(cfg, cellApps, primary, standby); err != nil {
		return nil, err
	}
	return t, nil
}

// Host returns the planned host with that name, or nil.
func (t *Topology) Host(name string) *Host {
	for i := range t.Hosts {
		if t.Hosts[i].Name == name {
			return &t.Hosts[i]
		}
	}
	return nil
}

// nth returns the address offset hosts past the network address, refusing the
// broadcast address and anything outside the prefix.
func nth(p netip.Prefix, offset int) (netip.Addr, error) {
	p = p.Masked()
	if !p.Addr().Is4() {
		return netip.Addr{}, fmt.Errorf("%s: expected an IPv4 network", p)
	}
	size := 1 << (32 - p.Bits())
	if offset >= size-1 {
		return netip.Addr{}, fmt.Errorf("%s has room for %d addresses, the plan needs offset %d (use a larger network)", p, size-2, offset)
	}
	b := p.Addr().As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v += uint32(offset)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), nil
}

// Nth is the exported form of the address plan: the address offset hosts into p.
func Nth(p netip.Prefix, offset int) (netip.Addr, error) { return nth(p, offset) }

// Has reports whether the host has role r.
func (h Host) Has(r inventory.Role) bool {
	for _, x := range h.Roles {
		if x == r {
			return true
		}
	}
	return false
}
