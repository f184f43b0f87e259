package config

// Validation of the providers, sites, regions and server sizes.

import (
	"slices"
	"strings"
)

func (v *validator) providers() string {
	if v.o.lab {
		return "digitalocean, hetzner or lab"
	}
	return "digitalocean or hetzner"
}

func (v *validator) provider(path string, p Provider) bool {
	switch {
	case p == "":
		v.add(path, "missing, expected %s", v.providers())
	case p == DigitalOcean || p == Hetzner:
		return true
	case p == Lab && v.o.lab:
		return true
	case p == Lab:
		v.add(path, `"lab" is only valid for the local lab (belay lab), expected digitalocean or hetzner`)
	default:
		v.add(path, "got %q, expected %s", string(p), v.providers())
	}
	return false
}

func (v *validator) sites() {
	s := v.c.Sites
	const pk, sk = KeySites + ".primary", KeySites + ".standby"
	pOK := v.provider(pk+".provider", s.Primary.Provider)
	sOK := v.provider(sk+".provider", s.Standby.Provider)
	if pOK {
		v.region(pk+".region", s.Primary)
	}
	if sOK {
		v.region(sk+".region", s.Standby)
	}
	if !pOK || !sOK {
		return
	}
	switch {
	case (s.Primary.Provider == Lab) != (s.Standby.Provider == Lab):
		if s.Standby.Provider == Lab {
			v.add(pk+".provider", "got %q, expected \"lab\" like the standby (the lab runs both sites locally)", string(s.Primary.Provider))
		} else {
			v.add(sk+".provider", "got %q, expected \"lab\" like the primary (the lab runs both sites locally)", string(s.Standby.Provider))
		}
	case s.Primary.Provider == s.Standby.Provider && s.Primary.Provider != Lab:
		other := DigitalOcean
		if s.Primary.Provider == DigitalOcean {
			other = Hetzner
		}
		v.add(sk+".provider", "got %q, the primary's provider too, expected %s: the standby must survive an outage of the primary's provider", string(s.Standby.Provider), other)
	}
}

func (v *validator) region(path string, s Site) {
	if s.Provider == Lab {
		return
	}
	regions := Regions(s.Provider)
	switch {
	case s.Region == "":
		v.add(path, "missing, expected a %s region: %s", s.Provider.Title(), strings.Join(regions, ", "))
	case !slices.Contains(regions, s.Region):
		v.add(path, "got %q, expected a %s region: %s", s.Region, s.Provider.Title(), strings.Join(regions, ", "))
	}
}

// size checks a server size against the site's provider and region. Sizes are
// ignored in the lab and when the site itself is already refused.
func (v *validator) size(path, size, site string, app bool) {
	s := v.c.Sites.Primary
	if site == "standby" {
		s = v.c.Sites.Standby
	}
	if s.Provider == Lab || (s.Provider != DigitalOcean && s.Provider != Hetzner) {
		return
	}
	// A refused site would make the size's error misleading (the user may have
	// meant the other provider); fix the site first.
	if v.e.under(KeySites + "." + site) {
		return
	}
	if !slices.Contains(Regions(s.Provider), s.Region) {
		s.Region = ""
	}
	if size == "" {
		v.add(path, "missing, expected %s", sizeHint(s.Provider, s.Region))
		return
	}
	if repl := Deprecated(s.Provider, size); repl != "" {
		v.add(path, "got %q, a server type Hetzner has deprecated, expected its replacement %q (changing the type resizes the server in place)", size, repl)
		return
	}
	if !slices.Contains(Sizes(s.Provider, s.Region), size) {
		if s.Provider == Hetzner && slices.Contains(Sizes(Hetzner, ""), size) {
			v.add(path, "got %q, not orderable in %s (EU-only type), expected %s", size, s.Region, sizeHint(s.Provider, s.Region))
			return
		}
		v.add(path, "got %q, expected %s", size, sizeHint(s.Provider, s.Region))
		return
	}
	if app && IsARM(s.Provider, size) {
		v.add(path, "got %q, an arm64 type, expected an x86-64 type: one release artifact runs on every app server of both sites", size)
	}
}

// volumeSize checks a data volume size: both providers take 10 GB .. 10 TB
// (Hetzner's minimum is 10 GB, DigitalOcean's maximum 16 TiB).
func volumeSize(v *validator, path string, gb int) {
	if gb < 10 || gb > 10240 {
		v.add(path, "%d, expected a data volume size in GB between 10 and 10240", gb)
	}
}
