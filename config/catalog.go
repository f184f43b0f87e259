package config

import (
	"slices"
	"strings"
)

// The catalogs below are static on purpose: validation must work offline and
// before any provider credentials are known. They list sizes and regions that
// accept new servers; a slug missing here fails fast with the list of valid ones.

// doRegions are DigitalOcean regions open to new droplets (nyc2, ams2 and sfo1
// are closed to new droplets and so are not offered).
var doRegions = []string{"ams3", "atl1", "blr1", "fra1", "lon1", "nyc1", "nyc3", "sfo2", "sfo3", "sgp1", "syd1", "tor1"}

// doSizes are DigitalOcean droplet size slugs (all x86-64).
var doSizes = []string{
	// Basic (shared CPU).
	"s-1vcpu-512mb-10gb", "s-1vcpu-1gb", "s-1vcpu-2gb", "s-2vcpu-2gb", "s-2vcpu-4gb", "s-4vcpu-8gb", "s-8vcpu-16gb",
	// Basic premium AMD / Intel.
	"s-1vcpu-1gb-amd", "s-1vcpu-2gb-amd", "s-2vcpu-2gb-amd", "s-2vcpu-4gb-amd", "s-2vcpu-8gb-amd", "s-4vcpu-8gb-amd", "s-4vcpu-16gb-amd", "s-8vcpu-16gb-amd", "s-8vcpu-32gb-amd",
	"s-1vcpu-1gb-intel", "s-1vcpu-2gb-intel", "s-2vcpu-2gb-intel", "s-2vcpu-4gb-intel", "s-2vcpu-8gb-intel", "s-4vcpu-8gb-intel", "s-4vcpu-16gb-intel", "s-8vcpu-16gb-intel", "s-8vcpu-32gb-intel",
	"s-1vcpu-1gb-35gb-intel", "s-1vcpu-2gb-70gb-intel", "s-2vcpu-2gb-90gb-intel", "s-2vcpu-4gb-120gb-intel", "s-2vcpu-8gb-160gb-intel", "s-4vcpu-8gb-240gb-intel", "s-4vcpu-16gb-320gb-intel", "s-8vcpu-16gb-480gb-intel", "s-8vcpu-32gb-640gb-intel",
	// General purpose (dedicated CPU).
	"g-2vcpu-8gb", "g-4vcpu-16gb", "g-8vcpu-32gb", "g-16vcpu-64gb", "g-32vcpu-128gb", "g-40vcpu-160gb",
	"gd-2vcpu-8gb", "gd-4vcpu-16gb", "gd-8vcpu-32gb", "gd-16vcpu-64gb", "gd-32vcpu-128gb", "gd-40vcpu-160gb",
	"g-2vcpu-8gb-intel", "g-4vcpu-16gb-intel", "g-8vcpu-32gb-intel", "g-16vcpu-64gb-intel", "g-32vcpu-128gb-intel",
	// CPU optimized.
	"c-2", "c-4", "c-8", "c-16", "c-32", "c-48",
	"c2-2vcpu-4gb", "c2-4vcpu-8gb", "c2-8vcpu-16gb", "c2-16vcpu-32gb", "c2-32vcpu-64gb", "c2-48vcpu-96gb",
	"c-2-intel", "c-4-intel", "c-8-intel", "c-16-intel", "c-32-intel", "c-48-intel",
	// Memory optimized.
	"m-2vcpu-16gb", "m-4vcpu-32gb", "m-8vcpu-64gb", "m-16vcpu-128gb", "m-24vcpu-192gb", "m-32vcpu-256gb",
	"m3-2vcpu-16gb", "m3-4vcpu-32gb", "m3-8vcpu-64gb", "m3-16vcpu-128gb", "m3-24vcpu-192gb", "m3-32vcpu-256gb",
	"m6-2vcpu-16gb", "m6-4vcpu-32gb", "m6-8vcpu-64gb", "m6-16vcpu-128gb", "m6-24vcpu-192gb", "m6-32vcpu-256gb",
	// Storage optimized.
	"so-2vcpu-16gb", "so-4vcpu-32gb", "so-8vcpu-64gb", "so-16vcpu-128gb", "so-24vcpu-192gb", "so-32vcpu-256gb",
	"so1_5-2vcpu-16gb", "so1_5-4vcpu-32gb", "so1_5-8vcpu-64gb", "so1_5-16vcpu-128gb", "so1_5-24vcpu-192gb", "so1_5-32vcpu-256gb",
}

// hetznerEU are Hetzner's European locations; the US and Singapore ones offer fewer server types.
var hetznerEU = []string{"fsn1", "hel1", "nbg1"}

// hetznerRegions are Hetzner Cloud locations.
var hetznerRegions = []string{"ash", "fsn1", "hel1", "hil", "nbg1", "sin"}

// hetznerType is one Hetzner server type and where it can be ordered.
type hetznerType struct {
	name   string
	arm    bool // Ampere (arm64): cannot run the x86-64 release the other site runs
	euOnly bool // orderable in fsn1/nbg1/hel1 only
}

var hetznerTypes = []hetznerType{
	// Shared vCPU, Intel/AMD (cost optimized), EU only.
	{"cx22", false, true}, {"cx32", false, true}, {"cx42", false, true}, {"cx52", false, true},
	{"cx23", false, true}, {"cx33", false, true}, {"cx43", false, true}, {"cx53", false, true},
	// Shared vCPU, AMD (regular performance).
	{"cpx11", false, false}, {"cpx21", false, false}, {"cpx31", false, false}, {"cpx41", false, false}, {"cpx51", false, false},
	{"cpx12", false, true}, {"cpx22", false, true}, {"cpx32", false, true}, {"cpx42", false, true}, {"cpx52", false, true}, {"cpx62", false, true},
	// Shared vCPU, Ampere arm64, EU only.
	{"cax11", true, true}, {"cax21", true, true}, {"cax31", true, true}, {"cax41", true, true},
	// Dedicated vCPU.
	{"ccx13", false, false}, {"ccx23", false, false}, {"ccx33", false, false}, {"ccx43", false, false}, {"ccx53", false, false}, {"ccx63", false, false},
}

// hetznerDeprecated are server types Hetzner has deprecated (no longer
// orderable once their end-of-sale passes), each with the type that replaces it.
// A stack that still names one is refused with the replacement, so the change
// is a deliberate resize rather than a create that fails half-way through an up.
var hetznerDeprecated = map[string]string{
	"cx22": "cx23", "cx32": "cx33", "cx42": "cx43", "cx52": "cx53",
}

// Deprecated returns the replacement of a deprecated server type of p, or "".
func Deprecated(p Provider, size string) string {
	if p != Hetzner {
		return ""
	}
	return hetznerDeprecated[size]
}

// Regions returns the regions belay accepts for provider p (nil for the lab, which has none).
func Regions(p Provider) []string {
	switch p {
	case DigitalOcean:
		return slices.Clone(doRegions)
	case Hetzner:
		return slices.Clone(hetznerRegions)
	}
	return nil
}

// Sizes returns the server sizes orderable at provider p in region (all of the
// provider's sizes if region is unknown).
func Sizes(p Provider, region string) []string {
	switch p {
	case DigitalOcean:
		return slices.Clone(doSizes)
	case Hetzner:
		eu := slices.Contains(hetznerEU, region) || !slices.Contains(hetznerRegions, region)
		var out []string
		for _, t := range hetznerTypes {
			if (eu || !t.euOnly) && hetznerDeprecated[t.name] == "" {
				out = append(out, t.name)
			}
		}
		return out
	}
	return nil
}

// SmallestSize is the cheapest size of p in region able to run a PostgreSQL node
// (the default for belay:database.monitorSize); "" for the lab.
func SmallestSize(p Provider, region string) string {
	switch p {
	case DigitalOcean:
		// s-1vcpu-512mb-10gb is smaller but too small for PostgreSQL plus the agents.
		return "s-1vcpu-1gb"
	case Hetzner:
		if slices.Contains(hetznerEU, region) {
			return "cx23"
		}
		return "cpx11"
	}
	return ""
}

// IsARM reports whether size is an arm64 server type.
func IsARM(p Provider, size string) bool {
	if p != Hetzner {
		return false
	}
	for _, t := range hetznerTypes {
		if t.name == size {
			return t.arm
		}
	}
	return false
}

// Title is the provider's name as its users spell it.
func (p Provider) Title() string {
	switch p {
	case DigitalOcean:
		return "DigitalOcean"
	case Hetzner:
		return "Hetzner"
	case Lab:
		return "lab"
	}
	return string(p)
}

// sizeHint lists a few valid sizes for an error message (the full list is long).
func sizeHint(p Provider, region string) string {
	sizes := Sizes(p, region)
	if p == DigitalOcean {
		return "a DigitalOcean droplet size slug such as s-1vcpu-1gb, s-2vcpu-4gb, g-2vcpu-8gb (see `doctl compute size list`)"
	}
	where := ""
	if region != "" {
		where = " in " + region
	}
	return "a Hetzner server type orderable" + where + ": " + strings.Join(sizes, ", ")
}
