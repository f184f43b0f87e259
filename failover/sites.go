package failover

import (
	"fmt"
	"time"

	"github.com/belay-sh/belay/hostcmd"
	"github.com/belay-sh/belay/internal/shq"
	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/roles"
)

// appSite is what a site switch moves for one app: the servers that serve
// it on each site and the entry its domains point at. An app without cells
// is its pair (entry: the VIP) and its standby server (entry after a
// switch); an app with cells is every cell's pair and standby server behind
// the router pair (entry: the router tier's VIP) and the standby router
// (entry after a switch), whose cells.conf points each cell at the cell's
// standby server.
type appSite struct {
	app inventory.App
	// primary and standby are the app servers on each site (cells in order).
	primary, standby []string
	// routers and standbyRouter are the router tier (apps with cells only).
	routers       []string
	standbyRouter string
	// vip is where the domains point while the primary site serves; entry
	// is the host they point at while the standby site serves.
	vip, entry string
}

// releaseCheckID is the ID of the release check of standby server i:
// check-release/APP, or check-release/APP/CELL for an app with cells (the
// executor reads the app from it).
func (s appSite) releaseCheckID(i int) string {
	if s.cells() {
		return "check-release/" + s.app.Name + "/" + s.app.Cells[i].Name
	}
	return "check-release/" + s.app.Name
}

// cells reports whether the app is routed (has cells).
func (s appSite) cells() bool { return s.app.Router != nil }

// appSites reads what each app of inv needs for a switch, refusing an app
// whose standby site is incomplete (the error names the inventory field).
func appSites(inv *inventory.Inventory) ([]appSite, error) {
	var out []appSite
	for _, a := range inv.Apps {
		if len(a.Cells) == 0 {
			if a.Standby == "" || inv.Host(a.Standby) == nil {
				return nil, fmt.Errorf("inventory apps[%s].standbyHost %q: the app has no standby app server", a.Name, a.Standby)
			}
			out = append(out, appSite{app: a, primary: a.Hosts, standby: []string{a.Standby}, vip: a.VIP, entry: a.Standby})
			continue
		}
		r := a.Router
		if r == nil {
			return nil, fmt.Errorf("inventory apps[%s].router: missing, expected the router tier of an app with cells", a.Name)
		}
		if r.Standby == "" || inv.Host(r.Standby) == nil {
			return nil, fmt.Errorf("inventory apps[%s].router.standbyHost %q: the app has no standby router (its domains have nothing to point at on the standby site)", a.Name, r.Standby)
		}
		s := appSite{app: a, routers: r.Hosts, standbyRouter: r.Standby, vip: r.VIP, entry: r.Standby}
		if s.vip == "" {
			s.vip = a.VIP
		}
		for _, c := range a.Cells {
			if c.Standby == "" || inv.Host(c.Standby) == nil {
				return nil, fmt.Errorf("inventory apps[%s].cells[%s].standbyHost %q: the cell has no standby app server", a.Name, c.Name, c.Standby)
			}
			s.primary = append(s.primary, c.Hosts...)
			s.standby = append(s.standby, c.Standby)
		}
		out = append(out, s)
	}
	return out, nil
}

// databaseStepsToStandby are the steps that stop every primary-site database
// from taking writes and make the standby site's databases the writers: the
// stack's shared cluster and each dedicated cell's pair (celldb.go) are
// fenced (the data nodes before the monitor, which could otherwise fail a
// pair over while its nodes stop), then each standby database records its
// RPO edge and is promoted, the stack's first.
func databaseStepsToStandby(inv *inventory.Inventory, cells []cellDB, add func(Step)) {
	sdb := inv.Database.Standby
	dbHosts := append(append([]string(nil), inv.Database.Nodes...), cellFenceHosts(cells)...)
	if inv.Database.Monitor != "" {
		dbHosts = append(dbHosts, inv.Database.Monitor)
	}
	for _, h := range dbHosts {
		add(Step{ID: "fence-db/" + h, Kind: KindFence, Host: h, Title: "fence " + h + ": stop pg_auto_failover and PostgreSQL (no second primary may accept writes)", Argv: hostcmd.FenceDB()})
	}
	add(Step{ID: "rpo", Kind: KindRoot, Host: sdb, Title: "record the last transaction the standby replayed (the cross-site RPO edge)", Argv: hostcmd.Psql(hostcmd.ReplayTimestampSQL)})
	add(Step{ID: "promote-db", Kind: KindRoot, Host: sdb, Title: "promote the standby database (pg_promote, waits until it accepts writes)", Argv: hostcmd.Psql(hostcmd.PromoteSQL), Expect: "t"})
	add(Step{ID: "check-promoted", Kind: KindRoot, Host: sdb, Title: "the standby database accepts writes", Argv: hostcmd.Psql(hostcmd.InRecoverySQL), Expect: "f"})
	cellPromoteSteps(cells, add)
}

// RouterStatusCommand asks the router's root helper (`belay host shop-db`,
// the command its sudoers allow the deploy user) for the cells request of
// `belay cells`: the routers' last reports and each cell probed from this
// router. Run by KindRouter steps as the deploy user.
func RouterStatusCommand(app string) string {
	return "printf '%s\\n' '{\"op\":\"cells\"}' | " + shq.Join(append([]string{"sudo", "-n"}, roles.ShopDBCommand(app)...)...)
}

// routerCheck is the KindRouter step proving router host routes app's shops
// from the database's current mapping.
func routerCheck(a inventory.App, host, site string) Step {
	return Step{ID: "router-check/" + host, Kind: KindRouter, Host: host, Timeout: 2 * time.Minute,
		Title:    fmt.Sprintf("the %s router %s routes %s: its router-sync loaded the mapping from the database and reports again (no error), and it reaches every cell", site, host, a.Name),
		Commands: []string{RouterStatusCommand(a.Name)}}
}
