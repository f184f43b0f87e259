// Package inventory is the contract between provisioning and everything after it:
// the stack output `inventory` (and the file `belay lab up` writes) listing every
// host with its roles, addresses and pinned SSH host key. The deployer, the drills
// and the failover commands read nothing else. See docs/inventory.md.
package inventory

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"sort"
	"strings"

	"golang.org/x/crypto/ssh"
)

// Version is the inventory format version this package reads and writes.
const Version = 1

// Role is one job a host does. A host may have several (the lab's small machines do).
type Role string

// The roles belay renders cloud-init for.
const (
	RoleApp        Role = "app"         // an app server in the app's VRRP group (primary site)
	RoleDB         Role = "db"          // a PostgreSQL data node (primary or replica; the HA engine decides)
	RoleDBMonitor  Role = "db-monitor"  // the HA engine's monitor/witness (primary site)
	RoleStandbyApp Role = "standby-app" // an app server on the standby site
	RoleStandbyDB  Role = "standby-db"  // PostgreSQL standby restored from the backup archive (standby site)
	RoleBackupRepo Role = "backup-repo" // pgBackRest + restic repository (standby site)
	// RoleRouter is a router of an app with cells (primary site): nginx maps
	// each shop to its cell; keepalived holds the router tier's floating IP.
	RoleRouter Role = "router"
	// RoleStandbyRouter is the router of an app with cells on the standby site.
	RoleStandbyRouter Role = "standby-router"
)

// Roles lists every role, in pipeline order.
var Roles = []Role{RoleApp, RoleDB, RoleDBMonitor, RoleStandbyApp, RoleStandbyDB, RoleBackupRepo, RoleRouter, RoleStandbyRouter}

// SiteName is "primary" or "standby".
type SiteName string

// The two sites.
const (
	Primary SiteName = "primary"
	Standby SiteName = "standby"
)

// Inventory is the whole stack as the deployer sees it.
type Inventory struct {
	Version  int               `json:"version"`
	Stack    string            `json:"stack"`
	Sites    map[SiteName]Site `json:"sites"`
	Hosts    []Host            `json:"hosts"`
	Apps     []App             `json:"apps"`
	Database Database          `json:"database"`
	Backup   Backup            `json:"backup"`
	// Deploy carries the stack's belay:deploy keys to the deployer: the
	// defaults of `belay deploy --keep/--shop-*` (absent in old inventories).
	Deploy *Deploy `json:"deploy,omitempty"`
}

// Deploy is belay:deploy as the deployer reads it.
type Deploy struct {
	KeepReleases int    `json:"keepReleases"`
	ShopParam    string `json:"shopParam"`
	ShopHeader   string `json:"shopHeader"`
	ShopCookie   string `json:"shopCookie"`
}

// Site is one provider region and its private network.
type Site struct {
	Provider string `json:"provider"`
	Region   string `json:"region"`
	CIDR     string `json:"cidr"`
}

// Host is one server.
type Host struct {
	Name     string   `json:"name"`
	Site     SiteName `json:"site"`
	Provider string   `json:"provider"`
	Roles    []Role   `json:"roles"`
	App      string   `json:"app,omitempty"`
	// Cell is the cell an app server serves ("" outside cells).
	Cell           string `json:"cell,omitempty"`
	PublicAddress  string `json:"publicAddress,omitempty"`
	PrivateAddress string `json:"privateAddress"`
	// SSHAddress is where the deployer connects (public address in a cloud, the lab address in the lab).
	SSHAddress string `json:"sshAddress"`
	SSHPort    int    `json:"sshPort"`
	DeployUser string `json:"deployUser"`
	// HostKey is the pinned SSH host public key, in authorized_keys format.
	HostKey string `json:"hostKey"`
	// ProviderID is the cloud's numeric server ID ("" in the lab).
	ProviderID string `json:"providerId,omitempty"`
}

// App is one app's serving topology.
type App struct {
	Name       string   `json:"name"`
	VIP        string   `json:"vip"`
	Port       int      `json:"port"`
	HealthPath string   `json:"healthPath"`
	Domains    []string `json:"domains"`
	Hosts      []string `json:"hosts"`
	Standby    string   `json:"standbyHost"`
	// TLS is how the app's nginx serves HTTPS: "acme" or "custom"; empty
	// serves plain HTTP only (belay:apps[i].tls.mode off). Probes through the
	// VIP (drills, the site switch's checks) use HTTPS when it is set.
	TLS string `json:"tls,omitempty"`
	// Cells are the app's cells (empty for an app without cells, whose
	// servers are Hosts); an app with cells has no Hosts and its VIP is the
	// router tier's.
	Cells []Cell `json:"cells,omitempty"`
	// Router is the router tier of an app with cells.
	Router *Router `json:"router,omitempty"`
}

// Database names the PostgreSQL endpoints.
type Database struct {
	Name    string   `json:"name"`
	Port    int      `json:"port"`
	Nodes   []string `json:"nodes"`
	Monitor string   `json:"monitor"`
	Standby string   `json:"standbyHost"`
	// WriterURL is a libpq URL that always reaches the current primary
	// (all data nodes, target_session_attrs=read-write); no password in it.
	WriterURL   string `json:"writerUrl"`
	Synchronous bool   `json:"synchronous"`
}

// Backup names the repository host.
type Backup struct {
	Host   string `json:"host"`
	Stanza string `json:"stanza"`
}

// Load reads an inventory from a file; "-" reads standard input. It accepts both
// the bare inventory and the output of `pulumi stack output --json` (an object
// with an "inventory" key).
func Load(path string) (*Inventory, error) {
	var r io.Reader
	if path == "-" {
		r = os.Stdin
	} else {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("inventory: %w", err)
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("inventory %s: %w", path, err)
	}
	inv, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("inventory %s: %w", path, err)
	}
	return inv, nil
}

// Parse decodes and validates an inventory document.
func Parse(data []byte) (*Inventory, error) {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	if inner, ok := probe["inventory"]; ok {
		data = inner
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	var inv Inventory
	if err := dec.Decode(&inv); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	if err := inv.Validate(); err != nil {
		return nil, err
	}
	return &inv, nil
}

// Marshal renders the inventory as indented JSON with a trailing newline.
func (inv *Inventory) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(inv, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Validate checks the references and formats a deployer relies on, and that
// no value carries shell, nginx or path syntax (see checkValues).
func (inv *Inventory) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if inv.Version != Version {
		bad("version: got %d, this belay reads version %d", inv.Version, Version)
	}
	seen := map[string]bool{}
	for i, h := range inv.Hosts {
		where := fmt.Sprintf("hosts[%d] (%s)", i, h.Name)
		switch {
		case h.Name == "":
			bad("hosts[%d].name: empty", i)
		case seen[h.Name]:
			bad("%s.name: duplicate host name", where)
		}
		seen[h.Name] = true
		if h.Site != Primary && h.Site != Standby {
			bad("%s.site: %q, expected primary or standby", where, h.Site)
		}
		if len(h.Roles) == 0 {
			bad("%s.roles: empty", where)
		}
		for _, r := range h.Roles {
			if !validRole(r) {
				bad("%s.roles: unknown role %q", where, r)
			}
		}
		if _, err := netip.ParseAddr(h.PrivateAddress); err != nil {
			bad("%s.privateAddress: %q is not an IP address", where, h.PrivateAddress)
		}
		if h.SSHAddress == "" {
			bad("%s.sshAddress: empty", where)
		}
		if h.SSHPort <= 0 || h.SSHPort > 65535 {
			bad("%s.sshPort: %d, expected 1-65535", where, h.SSHPort)
		}
		if h.DeployUser == "" {
			bad("%s.deployUser: empty", where)
		}
		if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(h.HostKey)); err != nil {
			bad("%s.hostKey: not an SSH public key: %v", where, err)
		}
	}
	for i, a := range inv.Apps {
		if a.TLS != "" && a.TLS != TLSACME && a.TLS != TLSCustom {
			bad("apps[%d] (%s).tls: %q, expected acme, custom or absent (plain HTTP)", i, a.Name, a.TLS)
		}
		for _, hn := range a.Hosts {
			h := inv.Host(hn)
			if h == nil {
				bad("apps[%d] (%s).hosts: unknown host %q", i, a.Name, hn)
			} else if !h.Has(RoleApp) || h.App != a.Name {
				bad("apps[%d] (%s).hosts: host %q is not an app server of %s", i, a.Name, hn, a.Name)
			}
		}
		if a.Standby != "" && inv.Host(a.Standby) == nil {
			bad("apps[%d] (%s).standbyHost: unknown host %q", i, a.Name, a.Standby)
		}
	}
	for _, n := range inv.Database.Nodes {
		if inv.Host(n) == nil {
			bad("database.nodes: unknown host %q", n)
		}
	}
	errs = append(errs, inv.checkCells()...)
	errs = append(errs, inv.checkValues()...)
	return errors.Join(errs...)
}

func validRole(r Role) bool {
	for _, k := range Roles {
		if r == k {
			return true
		}
	}
	return false
}

// Host returns the named host, or nil.
func (inv *Inventory) Host(name string) *Host {
	for i := range inv.Hosts {
		if inv.Hosts[i].Name == name {
			return &inv.Hosts[i]
		}
	}
	return nil
}

// App returns the named app, or nil.
func (inv *Inventory) App(name string) *App {
	for i := range inv.Apps {
		if inv.Apps[i].Name == name {
			return &inv.Apps[i]
		}
	}
	return nil
}

// TLS modes of App.TLS.
const (
	TLSACME   = "acme"
	TLSCustom = "custom"
)

// WithRole lists the hosts that have role r, sorted by name.
func (inv *Inventory) WithRole(r Role) []Host {
	var out []Host
	for _, h := range inv.Hosts {
		if h.Has(r) {
			out = append(out, h)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Has reports whether the host has role r.
func (h Host) Has(r Role) bool {
	for _, x := range h.Roles {
		if x == r {
			return true
		}
	}
	return false
}

// HostPublicKey parses the pinned host key.
func (h Host) HostPublicKey() (ssh.PublicKey, error) {
	k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(h.HostKey))
	if err != nil {
		return nil, fmt.Errorf("host %s: pinned hostKey: %w", h.Name, err)
	}
	return k, nil
}
