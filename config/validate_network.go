package config

// Validation of the private network and its address ranges.

import "net/netip"

// doReserved are ranges DigitalOcean refuses for VPCs (used by its own services).
var doReserved = []netip.Prefix{
	netip.MustParsePrefix("10.244.0.0/16"),
	netip.MustParsePrefix("10.245.0.0/16"),
	netip.MustParsePrefix("10.246.0.0/24"),
}

var rfc1918 = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
}

func (v *validator) network() {
	n, s := v.c.Network, v.c.Sites
	const k = KeyNetwork
	check := func(field, cidr string, site Site) (netip.Prefix, bool) {
		path := k + "." + field
		p, err := netip.ParsePrefix(cidr)
		switch {
		case cidr == "":
			v.add(path, "empty, expected a private IPv4 network such as %q", DefaultPrimaryCIDR)
			return p, false
		case err != nil || !p.Addr().Is4():
			v.add(path, "got %q, expected a private IPv4 network in CIDR notation such as %q", cidr, DefaultPrimaryCIDR)
			return p, false
		case p.Masked() != p:
			v.add(path, "got %q, expected the network address %q (host bits must be zero)", cidr, p.Masked().String())
			return p, false
		case p.Bits() < 16 || p.Bits() > 28:
			v.add(path, "got %q, expected a prefix length between /16 and /28 (the providers' limits)", cidr)
			return p, false
		}
		private := false
		for _, r := range rfc1918 {
			if r.Overlaps(p) && r.Bits() <= p.Bits() {
				private = true
			}
		}
		if !private {
			v.add(path, "got %q, expected a private (RFC 1918) network inside 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16", cidr)
			return p, false
		}
		if site.Provider == DigitalOcean && p.Bits() > 24 {
			v.add(path, "got %q, expected a prefix length between /16 and /24 (DigitalOcean VPC ranges)", cidr)
			return p, false
		}
		if site.Provider == DigitalOcean {
			for _, r := range doReserved {
				if r.Overlaps(p) {
					v.add(path, "got %q, which overlaps %s that DigitalOcean reserves, expected another private network", cidr, r)
					return p, false
				}
			}
		}
		return p, true
	}
	p, pOK := check("primaryCidr", n.PrimaryCIDR, s.Primary)
	q, sOK := check("standbyCidr", n.StandbyCIDR, s.Standby)
	if pOK && sOK && p.Overlaps(q) {
		v.add(k+".standbyCidr", "got %q, which overlaps primaryCidr %q, expected a separate network (the sites are joined by a tunnel)", n.StandbyCIDR, n.PrimaryCIDR)
	}
}
