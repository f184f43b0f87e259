package router

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
)

// RoutesFile is the last snapshot router-sync pushed to nginx
// (RenderRoutes), which nginx loads when it starts with empty dicts.
const RoutesFile = "routes.txt"

// Routes is a snapshot's shop → target: its cell, or CellFrozen.
type Routes map[string]string

// RoutesOf returns the routes of m.
func RoutesOf(m Mapping) Routes {
	r := make(Routes, len(m.Shops))
	for _, s := range m.Shops {
		r[s.Domain] = target(s)
	}
	return r
}

func target(s Shop) string {
	if s.State == Frozen {
		return CellFrozen
	}
	return s.Cell
}

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
	lines, id := routeLines(m)
	var b bytes.Buffer
	fmt.Fprintf(&b, "belay-routes 1\nid %s\n", id)
	b.Write(lines)
	fmt.Fprintf(&b, "end %d\n", len(m.Shops))
	return b.Bytes(), id
}

// RenderDiff returns the changes from the snapshot base (loaded in nginx as
// baseID) to m, which nginx applies only while it routes by baseID; the
// resulting id is RenderRoutes(m)'s:
//
//	belay-routes-diff 1
//	base VERSION DIGEST
//	id VERSION DIGEST
//	DOMAIN CELL | DOMAIN -    (a new or changed route; a removed shop)
//	end COUNT
func RenderDiff(base Routes, baseID string, m Mapping) (body []byte, id string) {
	_, id = routeLines(m)
	var b bytes.Buffer
	fmt.Fprintf(&b, "belay-routes-diff 1\nbase %s\nid %s\n", baseID, id)
	n := 0
	seen := make(map[string]bool, len(m.Shops))
	for _, s := range sortedShops(m.Shops) {
		seen[s.Domain] = true
		if t := target(s); base[s.Domain] != t {
			fmt.Fprintf(&b, "%s %s\n", s.Domain, t)
			n++
		}
	}
	var gone []string
	for d := range base {
		if !seen[d] {
			gone = append(gone, d)
		}
	}
	sort.Strings(gone)
	for _, d := range gone {
		fmt.Fprintf(&b, "%s -\n", d)
		n++
	}
	fmt.Fprintf(&b, "end %d\n", n)
	return b.Bytes(), id
}

func routeLines(m Mapping) ([]byte, string) {
	var routes bytes.Buffer
	for _, s := range sortedShops(m.Shops) {
		fmt.Fprintf(&routes, "%s %s\n", s.Domain, target(s))
	}
	sum := sha256.Sum256(routes.Bytes())
	return routes.Bytes(), fmt.Sprintf("%d %s", m.Version, hex.EncodeToString(sum[:8]))
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
