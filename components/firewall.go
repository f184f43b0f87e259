package components

import (
	"fmt"
	"net/netip"

	"github.com/belay-sh/belay/config"
	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/topology"
)

// anywhere is every IPv4 and IPv6 source.
var anywhere = []string{"0.0.0.0/0", "::/0"}

// PostgresPort is the port every PostgreSQL node (and the monitor) listens on.
const PostgresPort = 5432

// firewallPolicy is one cloud firewall, provider-neutral and free of Pulumi
// types, so the rules can be tested as data.
type firewallPolicy struct {
	// Name is the Pulumi resource name.
	Name string
	Site inventory.SiteName
	// Group is the (unscoped) belay group whose servers the firewall applies to.
	Group string
	Rules []policyRule
}

// policyRule admits one TCP port (or ICMP) from static networks, from other
// belay hosts by their public address, and from belay groups over the site network.
type policyRule struct {
	Protocol    string
	Port        string
	CIDRs       []string
	Hosts       []string
	Groups      []string
	Description string
}

// firewallPolicies lays out every cloud firewall of the stack. appFirewall is
// false when the primary provider's firewalls would drop VRRP between app
// servers (DigitalOcean); those servers then rely on their host firewall alone.
//
// What crosses the public internet, and so what the rules admit:
//   - 80/443 to app servers, from anywhere;
//   - 22 from the admin networks, to every host;
//   - 22 to the backup host from the DB nodes (pgBackRest archive-push) and the
//     primary app servers (restic over sftp), by their public /32;
//   - 22 to the DB nodes from the backup host (pgBackRest backups over SSH).
//
// 5432 is only ever admitted by group (site network), never from a network.
func firewallPolicies(cfg *config.Config, t *topology.Topology, appFirewall bool) ([]firewallPolicy, error) {
	admin, err := adminCIDRs(cfg.Admin.SSHCidrs)
	if err != nil {
		return nil, err
	}
	sshAdmin := policyRule{Protocol: "tcp", Port: "22", CIDRs: admin, Description: "ssh from admin networks"}
	web := []policyRule{
		{Protocol: "tcp", Port: "80", CIDRs: anywhere, Description: "http"},
		{Protocol: "tcp", Port: "443", CIDRs: anywhere, Description: "https"},
	}
	pg := fmt.Sprint(PostgresPort)

	var appHosts []string
	for _, a := range cfg.Apps {
		appHosts = append(appHosts, t.AppHosts[a.Name]...)
		// Cells' servers back up like app servers; routers hold no data.
		for _, c := range t.Cells[a.Name] {
			appHosts = append(appHosts, c.Hosts...)
		}
	}

	var out []firewallPolicy
	if appFirewall {
		out = append(out, firewallPolicy{
			Name: "primary-app", Site: inventory.Primary, Group: groupApp,
			Rules: append(append([]policyRule{}, web...), sshAdmin),
		})
	}
	out = append(out,
		firewallPolicy{
			Name: "primary-db", Site: inventory.Primary, Group: groupDB,
			Rules: []policyRule{
				sshAdmin,
				{Protocol: "tcp", Port: "22", Hosts: []string{t.BackupRepo}, Description: "pgBackRest from the backup repository"},
				{Protocol: "tcp", Port: pg, Groups: []string{groupApp, groupDB, groupDBMonitor}, Description: "postgres from app servers, the peer node and the monitor (site network)"},
			},
		},
		firewallPolicy{
			Name: "primary-db-monitor", Site: inventory.Primary, Group: groupDBMonitor,
			Rules: []policyRule{
				sshAdmin,
				{Protocol: "tcp", Port: pg, Groups: []string{groupDB}, Description: "pg_auto_failover monitor from the data nodes (site network)"},
			},
		},
		firewallPolicy{
			Name: "standby-app", Site: inventory.Standby, Group: groupStandbyApp,
			Rules: append(append([]policyRule{}, web...), sshAdmin),
		},
		firewallPolicy{
			Name: "standby-backup", Site: inventory.Standby, Group: groupBackup,
			Rules: []policyRule{
				sshAdmin,
				// Dedicated cells' data nodes archive to their own stanzas here too.
				{Protocol: "tcp", Port: "22", Hosts: append(append(append([]string{}, t.DBNodes...), t.CellDBNodes()...), appHosts...), Description: "pgBackRest archive-push from the DB nodes, restic from the app servers"},
				{Protocol: "tcp", Port: "22", Groups: []string{groupStandbyDB, groupStandbyApp}, Description: "restores and backups from the standby site (site network)"},
			},
		},
		firewallPolicy{
			Name: "standby-db", Site: inventory.Standby, Group: groupStandbyDB,
			Rules: []policyRule{
				sshAdmin,
				{Protocol: "tcp", Port: pg, Groups: []string{groupStandbyApp}, Description: "postgres from the standby app servers (site network)"},
			},
		},
	)
	return out, nil
}

// adminCIDRs validates the admin networks: each must be a CIDR (a bare address
// becomes a /32 or /128) and none may be the whole internet, because SSH is
// the one door to every host.
func adminCIDRs(in []string) ([]string, error) {
	if len(in) == 0 {
		return nil, fmt.Errorf("%s.sshCidrs: empty, expected the networks allowed to reach SSH (e.g. [\"203.0.113.7/32\"])", config.KeyAdmin)
	}
	out := make([]string, 0, len(in))
	for i, s := range in {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return nil, fmt.Errorf("%s.sshCidrs[%d]: %q is not a CIDR or address", config.KeyAdmin, i, s)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if p.Bits() == 0 {
			return nil, fmt.Errorf("%s.sshCidrs[%d]: %q admits the whole internet to SSH, expected your own networks", config.KeyAdmin, i, s)
		}
		out = append(out, p.Masked().String())
	}
	return out, nil
}

// splitPolicies separates what can exist before any server (rules from
// networks and groups) from the rules that name other servers' public
// addresses. Each policy keeps its name in pre (so an existing firewall is
// updated, not replaced); its host rules go to a "<name>-hosts" firewall on
// the same group. Both providers admit the union of a server's firewalls.
func splitPolicies(in []firewallPolicy) (pre, post []firewallPolicy) {
	for _, p := range in {
		base, hosts := p, p
		base.Rules, hosts.Rules = nil, nil
		hosts.Name = p.Name + "-hosts"
		for _, r := range p.Rules {
			if len(r.Hosts) == 0 {
				base.Rules = append(base.Rules, r)
				continue
			}
			if len(r.CIDRs) > 0 {
				static := r
				static.Hosts = nil
				base.Rules = append(base.Rules, static)
			}
			h := r
			h.CIDRs = nil
			hosts.Rules = append(hosts.Rules, h)
		}
		pre = append(pre, base)
		if len(hosts.Rules) > 0 {
			post = append(post, hosts)
		}
	}
	return pre, post
}

// sitePolicies are the policies of one site.
func sitePolicies(in []firewallPolicy, site inventory.SiteName) []firewallPolicy {
	var out []firewallPolicy
	for _, p := range in {
		if p.Site == site {
			out = append(out, p)
		}
	}
	return out
}
