package lab

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
)

// The lab's fixed address plan. Everything lives in LabCIDR; nothing routes off the box.
var (
	// LabCIDR is the only network the lab uses.
	LabCIDR = netip.MustParsePrefix("10.213.0.0/24")
	// PrimaryCIDR and StandbyCIDR are the two sites (the stack's network.primaryCidr / standbyCidr).
	PrimaryCIDR = netip.MustParsePrefix("10.213.0.0/25")
	StandbyCIDR = netip.MustParsePrefix("10.213.0.128/25")
)

// Names of the host objects the lab creates; `lab down` removes exactly these.
const (
	PrimaryBridge = "belay-p"
	StandbyBridge = "belay-s"
	RouterNS      = "belay-router"
	// routerPrimaryVeth/routerStandbyVeth are the router's legs, host side (in the bridges).
	routerPrimaryVeth = "belay-rp"
	routerStandbyVeth = "belay-rs"
)

// Segment is one site's layer-2 network: a bridge, the router's address on it
// (the machines' gateway to the other site) and the deployer's leg.
type Segment struct {
	Site    string
	Bridge  string
	CIDR    netip.Prefix
	Router  netip.Addr // .1 / .129
	HostLeg netip.Addr // .126 / .254
	// routerVeth is the host-side name of the router's leg; routerIf its name inside the namespace.
	routerVeth, routerIf string
	mac                  string
}

// Segments is the lab's two sites, primary first.
func Segments() []Segment {
	return []Segment{
		{Site: "primary", Bridge: PrimaryBridge, CIDR: PrimaryCIDR, Router: mustNth(PrimaryCIDR, 1), HostLeg: mustNth(PrimaryCIDR, 126), routerVeth: routerPrimaryVeth, routerIf: "p0", mac: "02:62:6c:00:00:01"},
		{Site: "standby", Bridge: StandbyBridge, CIDR: StandbyCIDR, Router: mustNth(StandbyCIDR, 1), HostLeg: mustNth(StandbyCIDR, 126), routerVeth: routerStandbyVeth, routerIf: "s0", mac: "02:62:6c:00:00:02"},
	}
}

// SegmentFor returns the segment whose network holds addr.
func SegmentFor(addr netip.Addr) (Segment, error) {
	for _, s := range Segments() {
		if s.CIDR.Contains(addr) {
			return s, nil
		}
	}
	return Segment{}, fmt.Errorf("address %s is outside the lab's sites %s and %s", addr, PrimaryCIDR, StandbyCIDR)
}

func mustNth(p netip.Prefix, n int) netip.Addr {
	a := p.Addr()
	for i := 0; i < n; i++ {
		a = a.Next()
	}
	return a
}

// networkUpCmds builds the lab network: two bridges with the deployer's legs,
// and a router namespace joining them. Forwarding is turned on inside the
// namespace only, so the host never routes lab traffic and nothing reaches
// beyond 10.213.0.0/24 (the namespace has no default route and no uplink).
func networkUpCmds() []Cmd {
	var cmds []Cmd
	cmds = append(cmds, cmd("ip", "netns", "add", RouterNS),
		cmd("ip", "-n", RouterNS, "link", "set", "lo", "up"))
	for _, s := range Segments() {
		cmds = append(cmds,
			// A fixed MAC: a bridge otherwise takes its lowest port's, which changes
			// when a machine's link is cut, leaving stale ARP entries for the host leg.
			cmd("ip", "link", "add", s.Bridge, "address", s.mac, "type", "bridge"),
			// No IPv6 on the lab: the plan is IPv4 only and the host must not autoconfigure.
			cmd("sysctl", "-qw", "net.ipv6.conf."+s.Bridge+".disable_ipv6=1"),
			cmd("ip", "addr", "add", fmt.Sprintf("%s/%d", s.HostLeg, s.CIDR.Bits()), "dev", s.Bridge),
			cmd("ip", "link", "set", s.Bridge, "up"),
			cmd("ip", "link", "add", s.routerVeth, "type", "veth", "peer", "name", s.routerIf, "netns", RouterNS),
			cmd("ip", "link", "set", s.routerVeth, "master", s.Bridge),
			cmd("ip", "link", "set", s.routerVeth, "up"),
			cmd("ip", "-n", RouterNS, "addr", "add", fmt.Sprintf("%s/%d", s.Router, s.CIDR.Bits()), "dev", s.routerIf),
			cmd("ip", "-n", RouterNS, "link", "set", s.routerIf, "up"),
		)
	}
	cmds = append(cmds, routerForwardCmd(true))
	return cmds
}

// routerForwardCmd turns forwarding in the router namespace on or off: off is a
// clean partition of the two sites (packets between them are dropped, not rejected).
func routerForwardCmd(on bool) Cmd {
	v := "0"
	if on {
		v = "1"
	}
	return cmd("ip", "netns", "exec", RouterNS, "sysctl", "-qw", "net.ipv4.ip_forward="+v)
}

// networkDownCmds removes everything networkUpCmds made; each step tolerates "already gone".
func networkDownCmds() []Cmd {
	var cmds []Cmd
	for _, s := range Segments() {
		cmds = append(cmds, tryCmd("ip", "link", "del", s.routerVeth), tryCmd("ip", "link", "del", s.Bridge))
	}
	return append(cmds, tryCmd("ip", "netns", "del", RouterNS))
}

// networkState reports how much of the lab network exists: "up" (all), "down" (none) or "partial".
func networkState() string {
	n, total := 0, 0
	for _, s := range Segments() {
		for _, name := range []string{s.Bridge, s.routerVeth} {
			total++
			if _, err := net.InterfaceByName(name); err == nil {
				n++
			}
		}
	}
	total++
	if _, err := os.Stat("/run/netns/" + RouterNS); err == nil {
		n++
	}
	switch n {
	case 0:
		return "down"
	case total:
		return "up"
	}
	return "partial"
}

// conflicts lists addresses or routes of this host inside LabCIDR that the lab did not make.
func conflicts() ([]string, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	ours := map[string]bool{PrimaryBridge: true, StandbyBridge: true}
	var out []string
	for _, ifc := range ifs {
		if ours[ifc.Name] {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			p, ok := netip.AddrFromSlice(ipn.IP)
			if !ok {
				continue
			}
			ones, _ := ipn.Mask.Size()
			pfx := netip.PrefixFrom(p.Unmap(), ones).Masked()
			if pfx.Overlaps(LabCIDR) {
				out = append(out, fmt.Sprintf("interface %s has %s", ifc.Name, a))
			}
		}
	}
	routes, err := os.ReadFile("/proc/net/route")
	if err == nil {
		for _, line := range strings.Split(string(routes), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 8 || ours[f[0]] {
				continue
			}
			dst, mask := hexAddr(f[1]), hexAddr(f[7])
			if !dst.IsValid() || !mask.IsValid() {
				continue
			}
			bits := maskBits(mask)
			if bits == 0 {
				continue // the default route overlaps everything; it is not a claim on the lab network
			}
			if netip.PrefixFrom(dst, bits).Overlaps(LabCIDR) {
				out = append(out, fmt.Sprintf("route %s/%d via interface %s", dst, bits, f[0]))
			}
		}
	}
	return out, nil
}

// hexAddr decodes /proc/net/route's little-endian hex IPv4 address.
func hexAddr(h string) netip.Addr {
	var v uint32
	if _, err := fmt.Sscanf(h, "%08X", &v); err != nil {
		return netip.Addr{}
	}
	return netip.AddrFrom4([4]byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)})
}

func maskBits(m netip.Addr) int {
	b := m.As4()
	n := 0
	for _, x := range b {
		for i := 7; i >= 0; i-- {
			if x&(1<<i) != 0 {
				n++
			}
		}
	}
	return n
}
