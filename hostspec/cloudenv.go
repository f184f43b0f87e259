package hostspec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/belay-sh/belay/config"
	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/roles"
	"github.com/belay-sh/belay/topology"
)

// A cloud stack's Specs need addresses the providers assign (DigitalOcean
// private IPs, public IPs, static and floating IPs). The Pulumi program
// resolves them while it creates servers and renders user data; `belay
// converge` reads the same addresses from the stack's `addresses` output. Both
// turn (config, topology, addresses) into Specs here, so they render the same
// bytes.
//
// User data is rendered per group of hosts that depend on the same addresses,
// so every address a host's user data names exists before the host is created
// (no cycles, and a host never waits for itself):
//
//	first:        db-monitor, backup  — static IPs only (created before any server)
//	db:           db-1, db-2          — the monitor's and backup's addresses
//	standby-db:   db-standby, dedicated cells' <app>-<cell>-standby-db — the backup host's address
//	apps:         primary app servers — the DB nodes' addresses and the app VIPs
//	standby-apps: standby app servers — db-standby's and the backup host's addresses
//
// Cross-site references go to static IPs: the backup host and the DB nodes
// keep their public address when replaced, so replacing one never changes
// (and so never replaces) a server on the other site.
type UserDataGroup int

// The user-data groups, in creation order.
const (
	UDFirst UserDataGroup = iota
	UDDB
	UDStandbyDB
	UDApps
	UDStandbyApps
	UDRouters
	UDStandbyRouters
	NumUserDataGroups
)

// UserDataGroupOf is the group a host's user data is rendered in.
func UserDataGroupOf(h topology.Host) UserDataGroup {
	for _, r := range h.Roles {
		switch r {
		case inventory.RoleApp:
			return UDApps
		case inventory.RoleStandbyApp:
			return UDStandbyApps
		case inventory.RoleDB:
			return UDDB
		case inventory.RoleStandbyDB:
			return UDStandbyDB
		case inventory.RoleRouter:
			return UDRouters
		case inventory.RoleStandbyRouter:
			return UDStandbyRouters
		}
	}
	return UDFirst
}

// UserDataDeps are the hosts whose addresses group g's user data names.
func UserDataDeps(g UserDataGroup, t *topology.Topology) []string {
	switch g {
	case UDDB:
		return []string{t.DBMonitor, t.BackupRepo}
	case UDStandbyDB:
		return []string{t.BackupRepo}
	case UDApps:
		// Dedicated cells' servers name their own pair.
		return append(append([]string{}, t.DBNodes...), t.CellDBNodes()...)
	case UDStandbyApps:
		// Dedicated cells' standby servers name their own standby database.
		return append([]string{t.StandbyDB, t.BackupRepo}, t.CellStandbyDBs()...)
	case UDRouters:
		// The sync service reads the mapping from the cluster.
		return append([]string{}, t.DBNodes...)
	case UDStandbyRouters:
		// Standby routers proxy to the standby cells' servers.
		deps := []string{t.StandbyDB}
		apps := make([]string, 0, len(t.Cells))
		for app := range t.Cells {
			apps = append(apps, app)
		}
		sort.Strings(apps)
		for _, app := range apps {
			for _, c := range t.Cells[app] {
				deps = append(deps, c.Standby)
			}
		}
		return deps
	}
	return nil
}

// StaticHosts are the hosts other sites' user data names: they get static IPs.
func StaticHosts(t *topology.Topology) []string {
	// Dedicated cells' data nodes are appended after the backup host: the
	// order of the existing ones never changes when a cell is added.
	return append(append(append([]string{}, t.DBNodes...), t.BackupRepo), t.CellDBNodes()...)
}

// VRRPGroups lists every HA group with its own floating IP, in registration
// order: an app without cells, or an app's router tier and each of its cells.
func VRRPGroups(cfg *config.Config, t *topology.Topology) []string {
	var out []string
	for _, a := range cfg.Apps {
		if !a.HasCells() {
			out = append(out, a.Name)
			continue
		}
		out = append(out, t.Routers[a.Name].Group)
		for _, c := range t.Cells[a.Name] {
			out = append(out, c.Group)
		}
	}
	return out
}

// PrimaryEgress is what the standby site's host firewalls admit from the
// primary site on SSH. The primary's outbound addresses are not known before
// its servers exist (DigitalOcean cannot reserve them at all), so the host
// firewall admits any source there and the backup host's cloud firewall —
// created after the servers — admits exactly their /32s.
var PrimaryEgress = []string{"0.0.0.0/0"}

// Resolved are provider-assigned addresses keyed "priv/<host>", "pub/<host>",
// "static/<host>" and "vip/<group>".
type Resolved map[string]string

// UserDataKeys are the Resolved keys group g's user data is rendered from:
// every static IP, its dependencies' private and public addresses, and (app
// servers and routers) every floating IP.
func UserDataKeys(g UserDataGroup, cfg *config.Config, t *topology.Topology) []string {
	var keys []string
	for _, h := range StaticHosts(t) {
		keys = append(keys, "static/"+h)
	}
	for _, n := range UserDataDeps(g, t) {
		keys = append(keys, "priv/"+n, "pub/"+n)
	}
	if g == UDApps || g == UDRouters {
		for _, name := range VRRPGroups(cfg, t) {
			keys = append(keys, "vip/"+name)
		}
	}
	return keys
}

// ForGroup is the part of r group g is rendered from. A missing or empty
// address is an error naming it: a server must never boot (or be converged)
// with a stand-in.
func (r Resolved) ForGroup(g UserDataGroup, cfg *config.Config, t *topology.Topology) (Resolved, error) {
	out := Resolved{}
	var missing []string
	for _, k := range UserDataKeys(g, cfg, t) {
		v := r[k]
		if v == "" {
			missing = append(missing, k)
			continue
		}
		out[k] = v
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("no address for %s", strings.Join(missing, ", "))
	}
	return out, nil
}

// CloudEnv is the Env of a cloud stack: the providers' interfaces, the API
// tokens the hosts use, the data volumes, and the resolved addresses r (one
// group's, see ForGroup).
func CloudEnv(cfg *config.Config, t *topology.Topology, stack string, r Resolved) (Env, error) {
	env, err := DefaultEnv(cfg, t, false)
	if err != nil {
		return Env{}, err
	}
	for name, se := range env.Sites {
		tok := cfg.HostAPITokens.Token(se.Provider)
		se.ClaimToken = tok
		if !se.PinnedAddresses {
			se.DiscoveryToken = tok
		}
		if name == inventory.Primary {
			se.EgressSources = PrimaryEgress
		}
		env.Sites[name] = se
	}
	env.DataVolumes = DataVolumes(cfg, t, stack)
	// Where the provider assigns private addresses, hosts a group does not
	// depend on get their planned address: it only fills specs that group
	// discards, and keeps Build (which builds every host) satisfied.
	for _, h := range t.Hosts {
		if _, ok := env.Addresses[h.Name]; !ok {
			env.Addresses[h.Name] = h.PrivateAddress.String()
		}
	}
	keys := make([]string, 0, len(r))
	for k := range r {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := r[k]
		kind, name, _ := strings.Cut(k, "/")
		switch kind {
		case "priv":
			env.Addresses[name] = v
		case "static":
			env.CrossSiteAddresses[name] = v
		case "pub":
			if name == t.BackupRepo {
				se := env.Sites[inventory.Standby]
				se.EgressSources = []string{v + "/32"}
				env.Sites[inventory.Standby] = se
			}
		case "vip":
			prov := cfg.Sites.Primary.Provider
			vip := VIP{ClaimCommand: ClaimCommand(prov, v), Public: v}
			if prov == config.Hetzner {
				// Hetzner routes a floating IP to the server but the server must
				// also hold it on its interface; DO's anchor IP needs no address.
				_, pub, err := Interfaces(prov)
				if err != nil {
					return env, err
				}
				vip.Address, vip.Interface = v, pub
			}
			env.VIPs[name] = vip
		default:
			return env, fmt.Errorf("resolved address %q: expected priv/, pub/, static/ or vip/", k)
		}
	}
	return env, nil
}

// GroupHosts are the hosts of group g, in plan order.
func GroupHosts(g UserDataGroup, t *topology.Topology) []string {
	var out []string
	for _, h := range t.Hosts {
		if UserDataGroupOf(h) == g {
			out = append(out, h.Name)
		}
	}
	return out
}

// GroupSpecs builds the Specs of group g's hosts from the addresses r (only
// g's part is used).
func GroupSpecs(cfg *config.Config, t *topology.Topology, stack string, g UserDataGroup, r Resolved) (map[string]*roles.Spec, error) {
	sub, err := r.ForGroup(g, cfg, t)
	if err != nil {
		return nil, err
	}
	env, err := CloudEnv(cfg, t, stack, sub)
	if err != nil {
		return nil, err
	}
	all, err := Build(cfg, t, stack, env)
	if err != nil {
		return nil, err
	}
	out := map[string]*roles.Spec{}
	for _, h := range GroupHosts(g, t) {
		s, ok := all[h]
		if !ok {
			return nil, fmt.Errorf("hostspec built no spec for %s", h)
		}
		out[h] = s
	}
	return out, nil
}

// CloudSpecs builds every host's Spec of a running cloud stack from the
// addresses its Pulumi program exported (Addresses), each host from exactly
// the addresses its user data was rendered from, so converge renders the
// bytes first boot did for an unchanged config.
func CloudSpecs(cfg *config.Config, t *topology.Topology, stack string, a Addresses) (map[string]*roles.Spec, error) {
	r := a.Resolved()
	out := map[string]*roles.Spec{}
	var errs []error
	for g := UDFirst; g < NumUserDataGroups; g++ {
		hosts := GroupHosts(g, t)
		if len(hosts) == 0 {
			continue
		}
		specs, err := GroupSpecs(cfg, t, stack, g, r)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", strings.Join(hosts, ", "), err))
			continue
		}
		for h, s := range specs {
			out[h] = s
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// AddressesVersion is the version of the `addresses` stack output's format.
const AddressesVersion = 1

// Addresses is the `addresses` stack output: what the providers assigned that
// hosts' files name, none of it secret. Maps are keyed by host name (VIPs by
// VRRP group).
type Addresses struct {
	Version int               `json:"version"`
	Stack   string            `json:"stack"`
	Private map[string]string `json:"private"`
	Public  map[string]string `json:"public"`
	Static  map[string]string `json:"static"`
	VIPs    map[string]string `json:"vips"`
}

// Resolved is a as Resolved keys.
func (a Addresses) Resolved() Resolved {
	r := Resolved{}
	for prefix, m := range map[string]map[string]string{"priv/": a.Private, "pub/": a.Public, "static/": a.Static, "vip/": a.VIPs} {
		for k, v := range m {
			r[prefix+k] = v
		}
	}
	return r
}

// AddressesFrom groups r (every key) into the output document.
func AddressesFrom(stack string, r Resolved) (Addresses, error) {
	a := Addresses{Version: AddressesVersion, Stack: stack, Private: map[string]string{}, Public: map[string]string{}, Static: map[string]string{}, VIPs: map[string]string{}}
	for k, v := range r {
		kind, name, _ := strings.Cut(k, "/")
		switch kind {
		case "priv":
			a.Private[name] = v
		case "pub":
			a.Public[name] = v
		case "static":
			a.Static[name] = v
		case "vip":
			a.VIPs[name] = v
		default:
			return a, fmt.Errorf("address key %q: expected priv/, pub/, static/ or vip/", k)
		}
	}
	return a, nil
}

// Check refuses an output document belay cannot use, naming the field.
func (a Addresses) Check(stack string) error {
	if a.Version != AddressesVersion {
		return fmt.Errorf("addresses.version: %d, expected %d (a belay of another version wrote it: run pulumi up with this one)", a.Version, AddressesVersion)
	}
	if a.Stack != stack {
		return fmt.Errorf("addresses.stack: %q, expected %q", a.Stack, stack)
	}
	// "[secret]" is what pulumi prints for a secret output: an address must
	// never reach a host's files as anything but an IPv4 address.
	var errs []error
	for field, m := range map[string]map[string]string{"private": a.Private, "public": a.Public, "static": a.Static, "vips": a.VIPs} {
		for k, v := range m {
			if ip, err := netip.ParseAddr(v); err != nil || !ip.Is4() {
				errs = append(errs, fmt.Errorf("addresses.%s.%s: %q, expected an IPv4 address", field, k, v))
			}
		}
	}
	sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
	return errors.Join(errs...)
}

// ParseAddresses reads the `addresses` output from `pulumi stack output
// --json` (every output, the document under "addresses") or from `pulumi
// stack output addresses --json` (the document itself), and checks it is for
// stack.
func ParseAddresses(b []byte, stack string) (Addresses, error) {
	var outer map[string]json.RawMessage
	if err := json.Unmarshal(b, &outer); err != nil {
		return Addresses{}, fmt.Errorf("stack outputs: not a JSON object: %w", err)
	}
	doc := b
	if raw, ok := outer["addresses"]; ok {
		doc = raw
	} else if _, ok := outer["version"]; !ok {
		return Addresses{}, errors.New("stack outputs: no \"addresses\" output (the stack was last updated by a belay without it: run pulumi up with this one)")
	}
	var a Addresses
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil {
		return Addresses{}, fmt.Errorf("addresses output: %w", err)
	}
	if err := a.Check(stack); err != nil {
		return Addresses{}, err
	}
	return a, nil
}
