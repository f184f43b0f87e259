package roles

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
)

// Paths every host gets.
const (
	sshdDropIn     = "/etc/ssh/sshd_config.d/10-belay.conf"
	nftablesConf   = "/etc/nftables.conf"
	journaldDropIn = "/etc/systemd/journald.conf.d/10-belay.conf"
	timesyncDropIn = "/etc/systemd/timesyncd.conf.d/10-belay.conf"
	belayStateDir  = "/var/lib/belay"
)

// addCommon renders what every host has: hostname, the deploy user, key-only
// sshd with the pinned host key, the host firewall, journald and time sync.
func addCommon(s *Spec, c *CloudConfig) error {
	c.Hostname = s.Hostname
	addDataVolume(s, c)
	c.PreserveHostname = false
	c.ManageEtcHosts = true
	// Key-only SSH: cloud-init's own switches, plus an sshd drop-in below so the
	// policy holds even if a later package upgrade rewrites sshd_config.
	c.SSHPwauth = false
	c.DisableRoot = true
	// The host key is the seed-derived one pinned in the inventory: delete the
	// image's keys; with ssh_keys given cloud-init generates none. The schema
	// refuses an empty ssh_genkeytypes, so it names the one pinned type: were
	// ssh_keys ever missing, no RSA/ECDSA key would appear beside it either.
	c.SSHDeletekeys = true
	c.SSHGenkeytypes = []string{"ed25519"}
	c.SSHKeys = &SSHKeys{Ed25519Private: s.HostKey.PrivatePEM, Ed25519Public: strings.TrimSpace(s.HostKey.Public)}
	// Listing users replaces the image's default user (debian, with sudo), which
	// would otherwise be a second, unmanaged login.
	c.Users = append(c.Users, User{
		Name:              s.DeployUser,
		Gecos:             "belay deploy user",
		Shell:             "/bin/bash",
		LockPasswd:        true,
		SSHAuthorizedKeys: append([]string(nil), s.AdminKeys...),
	})
	c.WriteFiles = append(c.WriteFiles,
		File{Path: sshdDropIn, Content: sshdConfig(), Owner: "root:root", Permissions: "0644"},
		File{Path: nftablesConf, Content: nftRuleset(s), Owner: "root:root", Permissions: "0755"},
		File{Path: journaldDropIn, Content: journaldConf, Owner: "root:root", Permissions: "0644"},
		File{Path: timesyncDropIn, Content: timesyncConf, Owner: "root:root", Permissions: "0644"},
	)
	addPackagesAndAgent(s, c)
	c.Runcmd = append(c.Runcmd,
		[]string{"install", "-d", "-m", "0755", "-o", "root", "-g", "root", belayStateDir},
		// The ruleset file was just written; load it now and on every boot.
		[]string{"systemctl", "enable", "nftables.service"},
		[]string{"systemctl", "restart", "nftables.service"},
		[]string{"systemctl", "restart", "systemd-journald.service"},
		// timesyncd is a separate package on Debian 12 and refuses to run in
		// containers (the lab); enable it only where it exists.
		[]string{"sh", "-c", "if systemctl cat systemd-timesyncd.service >/dev/null 2>&1; then systemctl enable --now systemd-timesyncd.service; systemctl restart systemd-timesyncd.service; fi"},
		// sshd started before runcmd with the drop-in already in place (write_files
		// runs in cloud-init's init stage); reload so a changed drop-in applies too.
		[]string{"systemctl", "reload-or-restart", "ssh.service"},
	)
	return nil
}

// finishCommon adds what must come after every role's commands.
func finishCommon(s *Spec, c *CloudConfig) {
	// The user data's secrets are not needed after this boot (userdata.go).
	c.Runcmd = append(c.Runcmd, scrubUserData())
	// A marker the lab and drills wait for: every runcmd above has run.
	c.Runcmd = append(c.Runcmd, []string{"sh", "-c", "date -u +%Y-%m-%dT%H:%M:%SZ > " + belayStateDir + "/cloud-init-done"})
	c.FinalMessage = fmt.Sprintf("belay %s/%s (%s) ready after $UPTIME s", s.Stack, s.Hostname, roleList(s))
}

func roleList(s *Spec) string {
	var out []string
	for _, r := range s.Roles {
		out = append(out, string(r))
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

// sshdConfig is the drop-in that makes SSH key-only. Debian 12 includes
// sshd_config.d/*.conf at the top of sshd_config and sshd keeps the first value
// it reads, so this early-sorting file wins over the main file and cloud-init's
// 50-cloud-init.conf.
func sshdConfig() string {
	return `# Rendered by belay: key-only SSH with the pinned ed25519 host key.
HostKey /etc/ssh/ssh_host_ed25519_key
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
AuthenticationMethods publickey
PubkeyAuthentication yes
PermitEmptyPasswords no
X11Forwarding no
AllowAgentForwarding no
ClientAliveInterval 30
ClientAliveCountMax 4
MaxStartups 30:50:100
`
}

const journaldConf = `# Rendered by belay: keep logs across reboots (failover forensics), bounded.
[Journal]
Storage=persistent
SystemMaxUse=1G
MaxRetentionSec=1month
`

const timesyncConf = `# Rendered by belay: TLS, VRRP logs and backup labels need a correct clock.
[Time]
FallbackNTP=0.debian.pool.ntp.org 1.debian.pool.ntp.org 2.debian.pool.ntp.org 3.debian.pool.ntp.org
`

// fwRule is one inbound allow rule of the host firewall.
type fwRule struct {
	comment string
	iface   string   // "" = any interface
	sources []string // addresses or CIDRs; nil = any source
	proto   string   // "tcp" or a numeric IP protocol
	ports   []int
}

// firewallRules derives the inbound allow list from the Spec itself, so the
// firewall can never disagree with what the roles listen on. Role files do not
// write /etc/nftables.conf.
func firewallRules(s *Spec) []fwRule {
	rules := []fwRule{{comment: "ssh", sources: s.SSHFrom, proto: "tcp", ports: []int{22}}}
	priv := s.Net.PrivateInterface
	if a := s.App; a != nil {
		rules = append(rules, fwRule{comment: "http " + a.Name, proto: "tcp", ports: []int{80}})
		if a.TLS != nil {
			rules = append(rules, fwRule{comment: "https " + a.Name, proto: "tcp", ports: []int{443}})
		}
		// Every group member's nginx proxies to every member's app (stable) and
		// canary port over the private network.
		rules = append(rules, fwRule{comment: "app " + a.Name + " upstreams", iface: priv, sources: []string{s.Net.SiteCIDR}, proto: "tcp", ports: []int{a.Port, a.Port + 1}})
		if v := a.VRRP; v != nil {
			src := v.Peers
			if len(src) == 0 {
				// Peers are found at boot (DO): accept adverts from the site
				// network; keepalived still only trusts authenticated ones.
				src = []string{s.Net.SiteCIDR}
			}
			rules = append(rules, fwRule{comment: "vrrp " + a.Name, iface: priv, sources: src, proto: "112"})
		}
	}
	if r := s.Router; r != nil {
		rules = append(rules, fwRule{comment: "http router " + r.App, proto: "tcp", ports: []int{80}})
		if r.TLS != nil {
			rules = append(rules, fwRule{comment: "https router " + r.App, proto: "tcp", ports: []int{443}})
		}
		if v := r.VRRP; v != nil {
			src := v.Peers
			if len(src) == 0 {
				src = []string{s.Net.SiteCIDR}
			}
			rules = append(rules, fwRule{comment: "vrrp router " + r.App, iface: priv, sources: src, proto: "112"})
		}
	}
	if d := s.DB; d != nil && d.Port > 0 {
		rules = append(rules, fwRule{comment: "postgresql", iface: priv, sources: d.AllowFrom, proto: "tcp", ports: []int{d.Port}})
	}
	if d := s.StandbyDB; d != nil && d.Port > 0 {
		rules = append(rules, fwRule{comment: "postgresql standby", iface: priv, sources: d.AllowFrom, proto: "tcp", ports: []int{d.Port}})
	}
	return rules
}

// MetadataAddress is the cloud providers' metadata service. Its user data holds
// every host secret and, on DigitalOcean and Hetzner, answers any local process.
const MetadataAddress = "169.254.169.254"

// metadataUsers may reach the metadata service: root (cloud-init, the agent's
// root services) and, on VRRP members, keepalived's script user, whose
// `belay vip claim` asks it for the server ID (unknown when user data is
// rendered). Names are resolved when nft loads the ruleset, so a user is only
// listed on hosts whose cloud-config creates it.
func metadataUsers(s *Spec) []string {
	users := []string{"root"}
	if (s.App != nil && s.App.VRRP != nil) || (s.Router != nil && s.Router.VRRP != nil) {
		users = append(users, KeepalivedScriptUser)
	}
	return users
}

// nftRuleset renders /etc/nftables.conf: inbound default drop; outbound open
// except the metadata service, which only metadataUsers reach.
func nftRuleset(s *Spec) string {
	var b strings.Builder
	fmt.Fprintf(&b, "#!/usr/sbin/nft -f\n# Rendered by belay for %s (%s): inbound default drop.\nflush ruleset\n\n", s.Hostname, roleList(s))
	b.WriteString("table inet belay {\n")
	b.WriteString("\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n")
	b.WriteString("\t\tiif \"lo\" accept\n")
	b.WriteString("\t\tct state established,related accept\n")
	b.WriteString("\t\tct state invalid drop\n")
	b.WriteString("\t\tmeta l4proto { icmp, ipv6-icmp } accept\n")
	for _, r := range firewallRules(s) {
		var parts []string
		if r.iface != "" {
			parts = append(parts, fmt.Sprintf("iifname %q", r.iface))
		}
		if r.sources != nil {
			set := sourceSet(r.sources)
			if set == "" {
				continue // no allowed source: the rule would match nothing
			}
			parts = append(parts, "ip saddr "+set)
		}
		if r.proto == "tcp" {
			parts = append(parts, "tcp dport "+portSet(r.ports))
		} else {
			parts = append(parts, "meta l4proto "+r.proto)
		}
		parts = append(parts, "accept", fmt.Sprintf("comment %q", r.comment))
		b.WriteString("\t\t" + strings.Join(parts, " ") + "\n")
	}
	b.WriteString("\t}\n")
	b.WriteString("\tchain forward {\n\t\ttype filter hook forward priority filter; policy drop;\n\t}\n")
	b.WriteString("\tchain output {\n\t\ttype filter hook output priority filter; policy accept;\n")
	users := metadataUsers(s)
	fmt.Fprintf(&b, "\t\tip daddr %s meta skuid != { %s } drop comment \"metadata service: only %s\"\n", MetadataAddress, strings.Join(users, ", "), strings.Join(users, " and "))
	b.WriteString("\t}\n")
	b.WriteString("}\n")
	return b.String()
}

// sourceSet renders addresses/CIDRs as a sorted, de-duplicated nft set.
// Entries that do not parse were refused by validation; they are skipped here.
func sourceSet(src []string) string {
	var ps []netip.Prefix
	seen := map[netip.Prefix]bool{}
	for _, s := range src {
		p, err := parseSource(s)
		if err != nil || seen[p] {
			continue
		}
		seen[p] = true
		ps = append(ps, p)
	}
	if len(ps) == 0 {
		return ""
	}
	// nft refuses overlapping elements in an anonymous set; drop networks
	// already covered by a larger one.
	sort.Slice(ps, func(i, j int) bool {
		if ps[i].Bits() != ps[j].Bits() {
			return ps[i].Bits() < ps[j].Bits()
		}
		return ps[i].Addr().Less(ps[j].Addr())
	})
	var keep []netip.Prefix
	for _, p := range ps {
		covered := false
		for _, k := range keep {
			covered = covered || k.Contains(p.Addr())
		}
		if !covered {
			keep = append(keep, p)
		}
	}
	sort.Slice(keep, func(i, j int) bool { return keep[i].Addr().Less(keep[j].Addr()) })
	var out []string
	for _, p := range keep {
		if p.Bits() == 32 {
			out = append(out, p.Addr().String())
		} else {
			out = append(out, p.String())
		}
	}
	return "{ " + strings.Join(out, ", ") + " }"
}

func portSet(ports []int) string {
	ps := append([]int(nil), ports...)
	sort.Ints(ps)
	var out []string
	for i, p := range ps {
		if i > 0 && p == ps[i-1] {
			continue
		}
		out = append(out, strconv.Itoa(p))
	}
	if len(out) == 1 {
		return out[0]
	}
	return "{ " + strings.Join(out, ", ") + " }"
}
