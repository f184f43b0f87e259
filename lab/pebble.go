package lab

import (
	_ "embed"
	"net/netip"
)

// The lab's ACME CA: pebble's own HTTPS certificate and key (see pebble/README.md).
var (
	//go:embed pebble/api.pem
	PebbleAPICert string
	//go:embed pebble/api.key
	PebbleAPIKey string
)

// PebbleAddr is where the lab's pebble listens: the primary site's host leg,
// which every primary machine reaches.
func PebbleAddr() netip.Addr { return Segments()[0].HostLeg }
