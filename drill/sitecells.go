package drill

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/router"
)

// SiteShopsPerCell is how many mapped shops of each cell the site drill
// asks through the router on each site.
const SiteShopsPerCell = 5

// siteCells is what the site drill measures of one app with cells: shops
// mapped before the fault, asked through the standby router after the switch
// and through the router VIP after the way back.
type siteCells struct {
	app   *inventory.App
	shops []CellShop
}

// siteCellShops reads each app-with-cells' mapping on its first primary
// router (router-sync's cached copy) and picks up to perCell active shops
// of every cell. An app without a mapped shop is an error: the drill could
// not show that the standby router routes its shops.
func siteCellShops(ctx context.Context, env *Env, perCell int) ([]siteCells, error) {
	var out []siteCells
	for i := range env.Inv.Apps {
		a := &env.Inv.Apps[i]
		if a.Router == nil {
			continue
		}
		if len(a.Router.Hosts) == 0 || a.Router.Standby == "" {
			return nil, fmt.Errorf("app %s: router hosts %v, standby router %q: the site drill measures through both", a.Name, a.Router.Hosts, a.Router.Standby)
		}
		b, err := env.Hosts.Run(ctx, a.Router.Hosts[0], MappingCommand(a.Name))
		if err != nil {
			return nil, fmt.Errorf("app %s: read the mapping on router %s: %w", a.Name, a.Router.Hosts[0], err)
		}
		shops, err := pickSiteShops(b, a, perCell)
		if err != nil {
			return nil, err
		}
		out = append(out, siteCells{app: a, shops: shops})
	}
	return out, nil
}

// pickSiteShops picks up to perCell active shops of each cell of a from a
// router's mapping (router.Mapping JSON), spread over its sorted domains.
func pickSiteShops(mappingJSON []byte, a *inventory.App, perCell int) ([]CellShop, error) {
	var m router.Mapping
	if err := json.Unmarshal(mappingJSON, &m); err != nil {
		return nil, fmt.Errorf("app %s: router mapping %s: %w (is belay-router-sync@%s running on the router?)", a.Name, router.CacheFile, err, a.Name)
	}
	byCell := map[string][]string{}
	for _, s := range m.Shops {
		if s.State == router.Active && a.Cell(s.Cell) != nil {
			byCell[s.Cell] = append(byCell[s.Cell], s.Domain)
		}
	}
	var out []CellShop
	for _, c := range a.Cells {
		ds := byCell[c.Name]
		sort.Strings(ds)
		for _, d := range spread(ds, perCell) {
			out = append(out, CellShop{Domain: d, Cell: c.Name})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("app %s: no active shop is mapped: the site drill measures an app with cells through its router with mapped shops (belay shop assign DOMAIN --app %s --cell C)", a.Name, a.Name)
	}
	return out, nil
}

// askCellShops GETs / of every shop through addr (host:port) until each
// answers from its own cell (ClassifyCellAnswer) or timeout passes; it
// returns a note of what answered.
func askCellShops(ctx context.Context, addr string, shops []CellShop, timeout time.Duration) (string, error) {
	client := newCellClient(ProbeTimeout)
	defer client.CloseIdleConnections()
	pending := append([]CellShop(nil), shops...)
	var last []string
	err := poll(ctx, 500*time.Millisecond, timeout, func(ctx context.Context) (bool, error) {
		var still []CellShop
		last = nil
		for _, s := range pending {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/", nil)
			if err != nil {
				return false, fatal(err)
			}
			req.Host = s.Domain
			class, reason := CellError, ""
			resp, err := client.Do(req)
			if err == nil {
				_, _ = drain(resp)
				class, reason = ClassifyCellAnswer(resp.StatusCode, resp.Header, s.Cell)
			} else {
				reason = classifyErr(err)
			}
			if class != CellOK {
				still = append(still, s)
				last = append(last, fmt.Sprintf("%s (cell %s): %s %s", s.Domain, s.Cell, class, reason))
			}
		}
		pending = still
		if len(pending) > 0 {
			return false, errors.New(strings.Join(last, "; "))
		}
		return true, nil
	})
	if err != nil {
		return "", fmt.Errorf("%d of %d mapped shops do not answer from their cell through %s: %w", len(pending), len(shops), addr, err)
	}
	cells := map[string]int{}
	for _, s := range shops {
		cells[s.Cell]++
	}
	return fmt.Sprintf("%d mapped shops of %d cells answered from their cell through %s", len(shops), len(cells), addr), nil
}

// hostHTTP is host's address for HTTP from this machine on port 80: its
// public address in a cloud, its SSH (lab) address otherwise.
func hostHTTP(inv *inventory.Inventory, name string) (string, error) {
	h := inv.Host(name)
	if h == nil {
		return "", fmt.Errorf("host %q is not in the inventory", name)
	}
	a := h.PublicAddress
	if a == "" {
		a = h.SSHAddress
	}
	return net.JoinHostPort(a, "80"), nil
}
