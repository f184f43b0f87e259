package router

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// RoutesFile is the last snapshot router-sync pushed to nginx
// (RenderRoutes), which nginx loads when it starts with empty dicts.
const RoutesFile = "routes.txt"

// RenderRoutes returns the routes snapshot nginx loads into its shared dict
// for a validated mapping (call Validate first: it trusts its input):
//
//	belay-routes 1
//	id VERSION DIGEST     (DIGEST: the first 16 hex of the routes' SHA-256)
//	DOMAIN CELL           (one a shop, sorted; CellFrozen for a frozen shop)
//	end COUNT             (a snapshot cut short is refused)
//
// Unknown shops are not listed: nginx sends them to the default cell or
// answers them itself (Render). The id is what nginx reports as loaded.
func RenderRoutes(m Mapping) (body []byte, id string) {
	var routes bytes.Buffer
	for _, s := range sortedShops(m.Shops) {
		to := s.Cell
		if s.State == Frozen {
			to = CellFrozen
		}
		fmt.Fprintf(&routes, "%s %s\n", s.Domain, to)
	}
	sum := sha256.Sum256(routes.Bytes())
	id = fmt.Sprintf("%d %s", m.Version, hex.EncodeToString(sum[:8]))
	var b bytes.Buffer
	fmt.Fprintf(&b, "belay-routes 1\nid %s\n", id)
	b.Write(routes.Bytes())
	fmt.Fprintf(&b, "end %d\n", len(m.Shops))
	return b.Bytes(), id
}

// FrozenShops lists the frozen shops of m, sorted.
func FrozenShops(m Mapping) []string {
	var out []string
	for _, s := range sortedShops(m.Shops) {
		if s.State == Frozen {
			out = append(out, s.Domain)
		}
	}
	return out
}
