package drill

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/belay-sh/belay/hostcmd"
	"github.com/belay-sh/belay/internal/shq"
	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/router"
)

// The cell drill (`belay drill cell APP --cell C`): kill one cell of an app
// with cells (both its app servers, or its database) while a load spreads
// over shops of every cell through the router VIP, and check the cells
// promise: the other cells' shops never see an error, the killed cell's
// shops get the router's clean 503, and the cell serves again after healing.

// Cell names the cell drill (its report's drill name is cell/<kill>).
const Cell Kind = "cell"

// What the cell drill kills.
const (
	CellKillApp = "app"
	CellKillDB  = "db"
)

// CellKills lists --kill's choices; the first is the default.
var CellKills = []string{CellKillApp, CellKillDB}

// Defaults of the cell drill.
const (
	// CellDuration is how long the cell stays down by default.
	CellDuration = 30 * time.Second
	// CellLoadInterval is the load's pace: one request every 20 ms (50 per
	// second), spread round-robin over the cells, then over each cell's shops.
	CellLoadInterval = 20 * time.Millisecond
	// CellSampleShops bounds the shops per cell the load visits when they come
	// from the mapping (evenly spread over the cell's sorted shops).
	CellSampleShops = 100
	// CellRecoverTimeout bounds the wait for the killed cell to serve again
	// after healing (a powered-off server boots, keepalived settles).
	CellRecoverTimeout = 5 * time.Minute
	// CellConfirmTimeout bounds the wait for the fault to show: the router's
	// clean 503 for the cell's shops (app) or the refused connection (db).
	CellConfirmTimeout = 30 * time.Second
)

// CellOptions are one cell drill invocation's choices.
type CellOptions struct {
	App  string
	Cell string
	// Kill is CellKillApp or CellKillDB ("" = app).
	Kill string
	// Duration is how long the cell stays down (0 = CellDuration).
	Duration time.Duration
	// Shops is a sample of domains to load ("" = CellSampleShops per cell
	// from the router's mapping); each must be mapped and active.
	Shops []string
	// Path is what the load requests (default "/"): a page that reads the
	// database shows a database kill, "/" of an app that serves it without
	// the database does not.
	Path string
	// URL is where the load goes (default http://<router VIP>); tests point
	// it at a loopback server.
	URL string
	// Interval paces the load (0 = CellLoadInterval).
	Interval time.Duration
	// RecoverTimeout bounds the wait for recovery (0 = CellRecoverTimeout).
	RecoverTimeout time.Duration
}

// CellShop is one shop the load visits and the cell the mapping puts it in.
type CellShop struct {
	Domain string `json:"domain"`
	Cell   string `json:"cell"`
}

// cellTarget resolves app and cell in inv: the app must have cells and a router.
func cellTarget(inv *inventory.Inventory, app, cell string) (*inventory.App, *inventory.Cell, error) {
	if app == "" {
		return nil, nil, fmt.Errorf("APP: missing, expected an app with cells")
	}
	a := inv.App(app)
	if a == nil {
		return nil, nil, fmt.Errorf("APP %q: not in the inventory of stack %s", app, inv.Stack)
	}
	var names []string
	for _, c := range a.Cells {
		names = append(names, c.Name)
	}
	if len(a.Cells) < 2 || a.Router == nil || len(a.Router.Hosts) == 0 {
		return nil, nil, fmt.Errorf("APP %s: has %d cell(s) and %s; the cell drill needs an app with at least two cells behind a router pair", app, len(a.Cells), map[bool]string{true: "a router", false: "no router"}[a.Router != nil])
	}
	c := a.Cell(cell)
	if c == nil {
		return nil, nil, fmt.Errorf("--cell %q: not a cell of %s, expected one of %s", cell, app, strings.Join(names, ", "))
	}
	if len(c.Hosts) == 0 {
		return nil, nil, fmt.Errorf("cell %s of %s: no app servers in the inventory", cell, app)
	}
	return a, c, nil
}

// CheckCellKill returns the kill to run (the default for "") or an error naming the choices.
func CheckCellKill(k string) (string, error) {
	if k == "" {
		return CellKills[0], nil
	}
	for _, x := range CellKills {
		if x == k {
			return k, nil
		}
	}
	return "", fmt.Errorf("--kill %q: expected one of %s", k, strings.Join(CellKills, ", "))
}

// MappingCommand reads a router's cached mapping (router-sync's last good
// one, 0644): the shops the routers actually route, without the database.
func MappingCommand(app string) string {
	return shq.Join("cat", router.Dir(app)+"/"+router.CacheFile)
}

// SelectCellShops picks the shops the load visits from a router's mapping
// (router.Mapping JSON). With sample set, exactly those domains (each must be
// mapped to a known cell and active); otherwise up to perCell active shops of
// each cell, spread evenly over its sorted domains. The failed cell and at
// least one other cell must have a shop. notes says what was left out.
func SelectCellShops(mappingJSON []byte, a *inventory.App, failed string, sample []string, perCell int) (shops []CellShop, notes []string, err error) {
	var m router.Mapping
	if err := json.Unmarshal(mappingJSON, &m); err != nil {
		return nil, nil, fmt.Errorf("router mapping %s: %w (is belay-router-sync@%s running on the router?)", router.CacheFile, err, a.Name)
	}
	if m.App != "" && m.App != a.Name {
		return nil, nil, fmt.Errorf("router mapping %s: app %q, expected %s", router.CacheFile, m.App, a.Name)
	}
	byDomain := map[string]router.Shop{}
	byCell := map[string][]string{}
	frozen, unknown := 0, 0
	for _, s := range m.Shops {
		byDomain[s.Domain] = s
		switch {
		case a.Cell(s.Cell) == nil:
			unknown++
		case s.State != router.Active:
			frozen++
		default:
			byCell[s.Cell] = append(byCell[s.Cell], s.Domain)
		}
	}
	if len(sample) > 0 {
		for _, d := range sample {
			dom, err := router.NormalizeDomain(d)
			if err != nil {
				return nil, nil, fmt.Errorf("--shops: %w", err)
			}
			s, ok := byDomain[dom]
			switch {
			case !ok:
				return nil, nil, fmt.Errorf("--shops %s: not in the router's mapping (assign it: belay shop assign %s --app %s --cell C)", dom, dom, a.Name)
			case a.Cell(s.Cell) == nil:
				return nil, nil, fmt.Errorf("--shops %s: mapped to cell %q, which app %s does not have", dom, s.Cell, a.Name)
			case s.State != router.Active:
				return nil, nil, fmt.Errorf("--shops %s: %s (a move is in progress), expected active", dom, s.State)
			}
			shops = append(shops, CellShop{Domain: dom, Cell: s.Cell})
		}
	} else {
		if perCell < 1 {
			perCell = CellSampleShops
		}
		for _, c := range a.Cells {
			ds := byCell[c.Name]
			sort.Strings(ds)
			for _, d := range spread(ds, perCell) {
				shops = append(shops, CellShop{Domain: d, Cell: c.Name})
			}
			if len(ds) > perCell {
				notes = append(notes, fmt.Sprintf("cell %s: %d of its %d shops in the load", c.Name, perCell, len(ds)))
			}
		}
		if frozen > 0 {
			notes = append(notes, fmt.Sprintf("%d frozen shop(s) (being moved) left out of the load", frozen))
		}
		if unknown > 0 {
			notes = append(notes, fmt.Sprintf("%d shop(s) mapped to cells %s does not have left out of the load", unknown, a.Name))
		}
	}
	have := map[string]int{}
	for _, s := range shops {
		have[s.Cell]++
	}
	if have[failed] == 0 {
		return nil, nil, fmt.Errorf("cell %s: no active shop in the load, nothing would show the clean 503 (assign shops to it, or name some with --shops)", failed)
	}
	if len(have) < 2 {
		return nil, nil, fmt.Errorf("only cell %s has shops in the load: the drill must show the other cells unaffected (assign shops to another cell, or name some with --shops)", failed)
	}
	return interleave(shops, a), notes, nil
}

// spread picks n elements of ds evenly (all of them when there are fewer).
func spread(ds []string, n int) []string {
	if len(ds) <= n {
		return ds
	}
	out := make([]string, 0, n)
	for i := 0; i < n; i++ {
		out = append(out, ds[i*len(ds)/n])
	}
	return out
}

// interleave orders shops cell by cell in turn (c1, c2, c1, c2...), so each
// cell with shops gets the same share of the load whatever its shop count.
func interleave(shops []CellShop, a *inventory.App) []CellShop {
	by := map[string][]CellShop{}
	for _, s := range shops {
		by[s.Cell] = append(by[s.Cell], s)
	}
	longest := 0
	for _, l := range by {
		longest = max(longest, len(l))
	}
	var out []CellShop
	// Every cell's shops recur at their cell's turn: a cell with fewer shops
	// repeats them, so the shares stay equal.
	for i := 0; i < longest; i++ {
		for _, c := range a.Cells {
			if l := by[c.Name]; len(l) > 0 {
				out = append(out, l[i%len(l)])
			}
		}
	}
	return out
}

// CellDBCommands are the root commands that make a cell's database
// unavailable and available again, on the primary data node. The database
// stops accepting connections (ALLOW_CONNECTIONS false, a catalog change
// that replicates and so survives a failover) and its sessions are
// terminated: the cell's app sees its database gone exactly as if it were
// down, while the cluster and every other cell's database keep serving.
// Each -c runs in its own transaction, in order, so no session can connect
// between the terminate and the block.
func CellDBCommands(database string) (block, unblock []string) {
	id := `"` + strings.ReplaceAll(database, `"`, `""`) + `"`
	lit := "'" + strings.ReplaceAll(database, "'", "''") + "'"
	psql := []string{"runuser", "-u", "postgres", "--", "psql", "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1"}
	block = append(append([]string{}, psql...),
		"-c", "ALTER DATABASE "+id+" WITH ALLOW_CONNECTIONS false",
		"-c", "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = "+lit)
	unblock = append(append([]string{}, psql...), "-c", "ALTER DATABASE "+id+" WITH ALLOW_CONNECTIONS true")
	return block, unblock
}

// CellDBConnect connects to database as postgres on the local node and runs
// SELECT 1: refused while the cell's database is blocked.
func CellDBConnect(database string) []string {
	return []string{"runuser", "-u", "postgres", "--", "psql", "-X", "-q", "-t", "-A", "-d", database, "-c", "SELECT 1"}
}

// cellAppCheck is the "group whole" check of a cell's app servers.
func cellAppCheck(a *inventory.App) string {
	return "systemctl is-active keepalived.service nginx.service >/dev/null && curl -fsS -m 1 -o /dev/null " +
		shq.Quote(fmt.Sprintf("http://127.0.0.1:%d%s", a.Port, a.HealthPath))
}

// CellSteps returns the cell drill's steps for cell of app in inv, in order
// (the runbook prints exactly these; the drill runs them by ID).
func CellSteps(inv *inventory.Inventory, app, cell, kill string, lab bool) ([]Step, error) {
	kill, err := CheckCellKill(kill)
	if err != nil {
		return nil, err
	}
	a, c, err := cellTarget(inv, app, cell)
	if err != nil {
		return nil, err
	}
	hosts := strings.Join(c.Hosts, ", ")
	nodes := strings.Join(cellDBNodes(inv, c), ", ")
	var all []string
	for _, x := range a.Cells {
		all = append(all, x.Hosts...)
	}
	steps := []Step{
		{ID: "shops", Title: fmt.Sprintf("read the shops the routers route from a router's cached mapping and pick the load's shops: up to %d active shops per cell (or --shops), the cells in turn", CellSampleShops), Where: a.Router.Hosts[0], Commands: []string{MappingCommand(a.Name)}},
		{ID: "whole", Title: "every cell's app servers run keepalived and nginx and the app is healthy on loopback", Where: strings.Join(all, ", "), Commands: []string{cellAppCheck(a)}},
		{ID: "load", Title: fmt.Sprintf("start the load through the router VIP: GET http://%s<path> with the shop's Host, one request every %s, each cell's shops in turn; every cell must answer 100 %% for %s before the fault", a.Router.VIP, CellLoadInterval, BaselineWindow), Where: "operator"},
	}
	switch kill {
	case CellKillApp:
		inject := Step{ID: "inject", Title: "kill both app servers of cell " + c.Name, Where: hosts}
		if lab {
			inject.Title += " (lab: SIGKILL the machines)"
			for _, h := range c.Hosts {
				inject.Commands = append(inject.Commands, "belay lab fault kill "+h)
			}
		} else {
			inject.Title += " (outside the lab: stop nginx on each, the provider-independent fault; keepalived gives up the cell's VIP)"
			inject.Commands = []string{shellJoin(hostcmd.StopUnit(hostcmd.NginxUnit))}
		}
		steps = append(steps, inject,
			Step{ID: "confirm", Title: "the router answers the cell's shops with the clean 503 (X-Belay-Router: cell-down): time from the fault to the first one", Where: "operator"})
	case CellKillDB:
		block, _ := CellDBCommands(c.Database)
		steps = append(steps,
			Step{ID: "inject", Title: "find the primary data node, then make the cell's database " + c.Database + " refuse connections and end its sessions (the cluster and the other cells' databases keep serving)", Where: nodes, Commands: []string{shellJoin(hostcmd.Psql(hostcmd.InRecoverySQL)), shellJoin(block)}},
			Step{ID: "confirm", Title: "on the primary, connecting to " + c.Database + " is refused and every other cell's database accepts", Where: "primary", Commands: []string{shellJoin(CellDBConnect(c.Database))}})
	}
	steps = append(steps, Step{ID: "hold", Title: "keep the cell down for --duration (default " + CellDuration.String() + ") under the load", Where: "operator"})
	switch kill {
	case CellKillApp:
		heal := Step{ID: "heal", Title: "undo the fault (boot the machines / start nginx) and wait until the cell's app servers run keepalived and nginx with the app healthy", Where: hosts, Commands: []string{cellAppCheck(a)}}
		if !lab {
			heal.Commands = append([]string{shellJoin(hostcmd.StartUnit(hostcmd.NginxUnit))}, heal.Commands...)
		}
		steps = append(steps, heal)
	case CellKillDB:
		_, unblock := CellDBCommands(c.Database)
		steps = append(steps, Step{ID: "heal", Title: "let the cell's database accept connections again", Where: "primary", Commands: []string{shellJoin(unblock), shellJoin(CellDBConnect(c.Database))}})
	}
	steps = append(steps,
		Step{ID: "recover", Title: fmt.Sprintf("wait until the cell's shops answer again without a failure for %s (recovery time, from the heal), at most %s", SustainWindow, CellRecoverTimeout), Where: "operator"},
		Step{ID: "verify", Title: "stop the load and account per cell: every other cell's shops 100 % answered; the killed cell's shops got the clean 503 while it was down (app kill; anything else they got once it was wholly down is reported as a warning) and serve again", Where: "operator"},
	)
	return steps, nil
}
