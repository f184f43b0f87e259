package config

// Validation of the apps (names, domains, TLS, the names the topology
// reserves) and their DNS.

import (
	"fmt"
	"slices"
	"strings"

	"github.com/belay-sh/belay/internal/safe"
)

func (v *validator) reserved() []string {
	names := slices.Clone(builtinNames)
	for _, n := range plannerNames {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	return names
}

func (v *validator) apps() {
	c := v.c
	if len(c.Apps) == 0 {
		v.add(KeyApps, "empty, expected at least one app")
		return
	}
	names := map[string]int{}
	domains := map[string]string{}
	reserved := v.reserved()
	for i, a := range c.Apps {
		p := fmt.Sprintf("%s[%d]", KeyApps, i)
		switch {
		case a.Name == "":
			v.add(p+".name", "missing, expected a DNS label such as \"web\"")
		case len(a.Name) > maxAppNameLen || safe.Name(a.Name) != nil:
			v.add(p+".name", "got %q, expected a DNS label: lowercase letters, digits and '-', starting with a letter, at most %d characters (so %q fits 63)", a.Name, maxAppNameLen, "<name>-standby")
		case slices.Contains(reserved, a.Name):
			v.add(p+".name", "got %q, a name belay uses for its own servers (%s), expected another name", a.Name, strings.Join(reserved, ", "))
		default:
			if j, dup := names[a.Name]; dup {
				v.add(p+".name", "got %q, already the name of %s[%d], expected unique app names", a.Name, KeyApps, j)
			} else {
				names[a.Name] = i
			}
		}
		v.size(p+".size", a.Size, "primary", true)
		v.size(p+".standbySize", a.StandbySize, "standby", true)
		if a.Replicas < DefaultReplicas {
			v.add(p+".replicas", "%d, expected at least %d (an HA pair; omit it for %d)", a.Replicas, DefaultReplicas, DefaultReplicas)
		}
		switch {
		case a.Port < 1024 || a.Port > 65534:
			v.add(p+".port", "%d, expected 1024..65534 (port+1 is the canary's; ports below 1024 need root)", a.Port)
		}
		switch {
		case a.HealthPath == "":
			v.add(p+".healthPath", "empty, expected a path starting with \"/\" (default %q)", DefaultHealthPath)
		default:
			// The rule every entrance shares (inventory, roles): the path
			// reaches curl in shell commands on the hosts and keepalived's check.
			if err := safe.HealthPath(a.HealthPath); err != nil {
				v.add(p+".healthPath", "got %v", err)
			}
		}
		if len(a.Domains) == 0 {
			v.add(p+".domains", "missing, expected at least one host name inside belay:dns.zone, e.g. \"www.%s\"", zoneOr(c.DNS.Zone))
		}
		for j, d := range a.Domains {
			dp := fmt.Sprintf("%s.domains[%d]", p, j)
			if err := checkHostname(d, true); err != "" {
				v.add(dp, "got %q, expected a host name (%s)", d, err)
				continue
			}
			if z := c.DNS.Zone; z != "" && checkHostname(z, false) == "" && !inZone(d, z) {
				v.add(dp, "got %q, expected a host name inside belay:dns.zone %q", d, z)
				continue
			}
			if other, dup := domains[d]; dup {
				v.add(dp, "got %q, already used by %s, expected each domain once", d, other)
				continue
			}
			domains[d] = dp
		}
		v.tls(p, a)
		v.cells(p, a)
	}
	v.tlsCertificatesApps()
	v.cellDatabases()
}

func zoneOr(z string) string {
	if z == "" {
		return "example.com"
	}
	return z
}

// inZone reports whether host is zone itself or a name below it.
func inZone(host, zone string) bool {
	host = strings.TrimPrefix(host, "*.")
	return host == zone || strings.HasSuffix(host, "."+zone)
}

// checkHostname returns why name is not a valid lowercase host name ("" if it is).
// A leading "*." wildcard label is allowed when wildcard is set.
func checkHostname(name string, wildcard bool) string {
	if wildcard {
		name = strings.TrimPrefix(name, "*.")
	}
	if name == "" {
		return "empty"
	}
	if len(name) > 253 {
		return "longer than 253 characters"
	}
	labels := strings.Split(name, ".")
	if len(labels) < 2 {
		return "at least two labels such as example.com"
	}
	for _, l := range labels {
		if !dnsLabel.MatchString(l) {
			return fmt.Sprintf("label %q must be 1-63 lowercase letters, digits or '-', not starting or ending with '-'", l)
		}
	}
	return ""
}

func (v *validator) dns() {
	d := v.c.DNS
	const k = KeyDNS
	v.provider(k+".provider", d.Provider)
	switch {
	case d.Zone == "":
		v.add(k+".zone", "missing, expected the DNS zone the apps' domains live in, e.g. \"example.com\"")
	default:
		if why := checkHostname(d.Zone, false); why != "" {
			v.add(k+".zone", "got %q, expected a domain name (%s)", d.Zone, why)
		}
	}
	if d.TTL < 30 || d.TTL > 86400 {
		v.add(k+".ttl", "%d, expected 30..86400 seconds", d.TTL)
	}
}
