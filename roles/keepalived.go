package roles

// keepalived: the VRRP group member config (apps and routers) and boot-time
// peer discovery from the provider API.

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/belay-sh/belay/internal/shq"
)

// addKeepalived renders the VRRP group member: keepalived.conf, its script
// user, the provider tokens, and (DigitalOcean) boot-time peer discovery.
func addKeepalived(s *Spec, c *CloudConfig) {
	addKeepalivedWith(s, c, s.App.VRRP, keepalivedConf(s))
}

// addKeepalivedWith renders a VRRP member with its keepalived.conf conf.
func addKeepalivedWith(s *Spec, c *CloudConfig, v *VRRP, conf string) {
	c.Users = append(c.Users, User{
		Name: KeepalivedScriptUser, Gecos: "keepalived track/notify scripts", Shell: "/usr/sbin/nologin",
		System: true, LockPasswd: true, HomeDir: "/nonexistent", NoCreateHome: true,
	})
	c.WriteFiles = append(c.WriteFiles, File{Path: "/etc/keepalived/keepalived.conf", Content: conf, Owner: "root:root", Permissions: "0644"})
	if v.ClaimToken != "" {
		c.WriteFiles = append(c.WriteFiles, File{Path: ClaimTokenFile, Content: v.ClaimToken + "\n", Owner: "root:" + KeepalivedScriptUser, Permissions: "0640", Defer: true})
	}
	if d := v.PeerDiscovery; d != nil {
		c.WriteFiles = append(c.WriteFiles,
			File{Path: DiscoveryTokenFile, Content: d.Token + "\n", Owner: "root:root", Permissions: "0600"},
			File{Path: "/usr/local/bin/belay-vrrp-peers", Content: peersScript(acmeApp(s), d), Owner: "root:root", Permissions: "0755"},
			File{Path: "/etc/systemd/system/belay-vrrp-peers.service", Content: peersService, Owner: "root:root", Permissions: "0644"},
			File{Path: "/etc/systemd/system/belay-vrrp-peers-refresh.service", Content: peersRefreshService, Owner: "root:root", Permissions: "0644"},
			File{Path: "/etc/systemd/system/belay-vrrp-peers-refresh.timer", Content: peersRefreshTimer, Owner: "root:root", Permissions: "0644"},
			File{Path: "/etc/systemd/system/keepalived.service.d/10-belay-peers.conf", Content: keepalivedPeersDropIn, Owner: "root:root", Permissions: "0644"},
		)
		c.Runcmd = append(c.Runcmd,
			[]string{"systemctl", "daemon-reload"},
			[]string{"systemctl", "enable", "belay-vrrp-peers.service", "belay-vrrp-peers-refresh.timer"},
			[]string{"systemctl", "start", "belay-vrrp-peers.service"},
			[]string{"systemctl", "start", "belay-vrrp-peers-refresh.timer"},
		)
	}
	c.Runcmd = append(c.Runcmd,
		[]string{"systemctl", "enable", "keepalived.service"},
		[]string{"systemctl", "restart", "keepalived.service"},
	)
}

func keepalivedConf(s *Spec) string {
	a := s.App
	return vrrpConf(s, a.VRRP, strings.ReplaceAll(a.Name, "-", "_"), "app "+a.Name, true, AppHealthHost(a.Name), a.HealthPath)
}

// vrrpConf renders a keepalived.conf for VRRP group member v (instance
// belay_<instance>); with appCheck the member also tracks the app through its
// own nginx (Host healthHost, path healthPath), else only nginx itself.
func vrrpConf(s *Spec, v *VRRP, instance, what string, appCheck bool, healthHost, healthPath string) string {
	advert := v.AdvertInterval
	if advert == 0 {
		advert = 0.1
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Rendered by belay: %s in %s's VRRP group (VRRPv3, unicast, no preemption).\n", s.Hostname, what)
	fmt.Fprintf(&b, `global_defs {
    router_id %s
    vrrp_version 3
    # Scripts run as an unprivileged user and must not be writable by others.
    enable_script_security
    script_user %s
}

vrrp_script belay_nginx {
    script "/usr/bin/curl -fsS -m 1 -o /dev/null %s"
    interval 1
    timeout 2
    fall 2
    rise 2
}
`, s.Hostname, KeepalivedScriptUser, NginxHealthURL)
	if appCheck {
		fmt.Fprintf(&b, `
vrrp_script belay_app {
    script "/usr/bin/curl -fsS -m 1 -o /dev/null -H Host:%s http://127.0.0.2%s"
    interval 1
    timeout 2
    fall 3
    rise 2
}
`, healthHost, healthPath)
	}
	fmt.Fprintf(&b, `
vrrp_instance belay_%s {
    # All members start BACKUP with nopreempt: a recovered node never takes the
    # VIP back, so one failure moves it once.
    state BACKUP
    nopreempt
    interface %s
    virtual_router_id %d
    priority %d
    advert_int %s
`, instance, s.Net.PrivateInterface, v.RouterID, v.Priority, strconv.FormatFloat(advert, 'f', -1, 64))
	if s.Net.PrivateAddress != "" {
		fmt.Fprintf(&b, "    unicast_src_ip %s\n", s.Net.PrivateAddress)
	}
	// Adverts only count from the listed peers (VRRPv3 has no authentication).
	b.WriteString("    check_unicast_src\n    unicast_peer {\n")
	if v.PeerDiscovery != nil {
		fmt.Fprintf(&b, "        # Found at boot from the %s API (belay-vrrp-peers.service).\n        include %s\n", v.PeerDiscovery.Provider, PeersFile)
	}
	for _, p := range sortedAddrs(v.Peers) {
		fmt.Fprintf(&b, "        %s\n", p)
	}
	b.WriteString("    }\n")
	if v.VIP != "" {
		fmt.Fprintf(&b, "    virtual_ipaddress {\n        %s/32 dev %s\n    }\n", v.VIP, v.VIPInterface)
	} else {
		// The provider routes the floating IP (ClaimCommand), but keepalived
		// refuses an instance without an address: a link-local marker on lo
		// shows which member is MASTER (ip -br addr show lo) and reaches no network.
		fmt.Fprintf(&b, "    virtual_ipaddress {\n        %s/32 dev lo scope link\n    }\n", MasterMarker(v.RouterID))
	}
	if appCheck {
		b.WriteString("    # A sick node (nginx or the app failing) goes to FAULT and gives up the VIP.\n")
		b.WriteString("    track_script {\n        belay_nginx\n        belay_app\n    }\n")
	} else {
		b.WriteString("    # A sick node (nginx failing) goes to FAULT and gives up the VIP.\n")
		b.WriteString("    track_script {\n        belay_nginx\n    }\n")
	}
	if v.ClaimCommand != "" {
		fmt.Fprintf(&b, "    # Moves the provider's floating IP to this node.\n    notify_master \"%s\"\n", v.ClaimCommand)
	}
	b.WriteString("}\n")
	return b.String()
}

func sortedAddrs(in []string) []string {
	out := append([]string(nil), in...)
	sort.Slice(out, func(i, j int) bool {
		a, _ := netip.ParseAddr(out[i])
		b, _ := netip.ParseAddr(out[j])
		return a.Less(b)
	})
	return out
}

// peersScript asks the provider API for the group and installs the result
// atomically; keepalived is reloaded only when the member list changed.
func peersScript(acmeApp string, d *PeerDiscovery) string {
	acme := ""
	// The app (or router) with ACME: the same peers answer its challenges.
	if acmeApp != "" {
		acme = acmePeersRefresh(acmeApp)
	}
	return `#!/bin/sh
# Rendered by belay: refresh keepalived's unicast peers from the ` + d.Provider + ` API.
set -eu
tmp=$(mktemp ` + PeersFile + `.XXXXXX)
trap 'rm -f "$tmp"' EXIT
` + BelayBinary + ` vip peers --provider ` + d.Provider + ` --selector ` + shq.Quote(d.Selector) + ` --token-file ` + DiscoveryTokenFile + ` --write "$tmp"
chmod 0644 "$tmp"
if ! cmp -s "$tmp" ` + PeersFile + `; then
    mv "$tmp" ` + PeersFile + `
    if systemctl -q is-active keepalived.service; then
        systemctl reload keepalived.service
    fi
fi
` + acme
}

const peersService = `# Rendered by belay: keepalived needs its unicast peers before it starts.
[Unit]
Description=belay: find this app group's VRRP peers
Wants=network-online.target
After=network-online.target
Before=keepalived.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/bin/belay-vrrp-peers
Restart=on-failure
RestartSec=5

[Install]
WantedBy=multi-user.target
`

const peersRefreshService = `# Rendered by belay: pick up replaced group members.
[Unit]
Description=belay: refresh this app group's VRRP peers
After=network-online.target

[Service]
Type=oneshot
ExecStart=/usr/local/bin/belay-vrrp-peers
`

const peersRefreshTimer = `# Rendered by belay.
[Unit]
Description=belay: refresh VRRP peers every 5 minutes

[Timer]
OnBootSec=5min
OnUnitActiveSec=5min
RandomizedDelaySec=30

[Install]
WantedBy=timers.target
`

// keepalivedPeersDropIn keeps keepalived from starting alone (and so claiming
// the VIP next to a live master) before the peers are known.
const keepalivedPeersDropIn = `# Rendered by belay.
[Unit]
Requires=belay-vrrp-peers.service
After=belay-vrrp-peers.service
`

// MasterMarker is the link-local address keepalived puts on lo of the MASTER
// when the provider moves the floating IP without an interface address (DO).
func MasterMarker(routerID int) string { return fmt.Sprintf("169.254.213.%d", routerID) }
