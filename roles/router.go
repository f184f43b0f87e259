package roles

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strings"

	"github.com/belay-sh/belay/hostcmd"
	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/router"
	"github.com/belay-sh/belay/shopkeys"
)

// Router configures a router of an app with cells: nginx maps each request's
// shop to its cell and proxies to that cell's floating IP; keepalived holds
// the router tier's floating IP (primary site). Every file the routing
// engine (package router, docs/cells.md) reads is rendered by the engine's
// own functions: cells.conf (router.RenderCells), db.conf (router.DSNConf),
// the first map.conf (router.Render: upstreams and the Lua routes, so nginx
// starts and answers unknown shops before the first sync), the server block
// (router.ServerConf) and the template unit (router.SyncUnit), enabled as
// belay-router-sync@<app>, which owns map.conf from then on and pushes the
// routes through the control socket in nginx's RuntimeDirectory (the
// drop-in RouterNginxDropIn).
type Router struct {
	App string
	// Standby marks the standby-site router: no keepalived, sync not started.
	Standby bool
	// Cells are the app's cells with the address the routers reach each at.
	Cells []RouterCell
	// DefaultCell receives unknown shops when UnknownShop is "default".
	DefaultCell string
	// UnknownShop is 404, 421 or default.
	UnknownShop string
	// ShopParam, ShopHeader and ShopCookie name the shop like the canary
	// whitelist does (belay:deploy); the Host header is the last resort.
	ShopParam, ShopHeader, ShopCookie string
	// DatabaseURL is the libpq URL of the platform database holding the
	// mapping, read by the sync service (secret). Its role owns the database,
	// so router-sync may create the belay_router schema (router.Schema).
	DatabaseURL string
	// VRRP is nil on the standby router.
	VRRP *VRRP
	// Domains are the app's configured domains and TLS its HTTPS (nil: port
	// 80 only): the router terminates TLS for them (router_tls.go).
	Domains []string
	TLS     *TLS
}

// RouterCell is one upstream of the router.
type RouterCell struct {
	Name string
	// Address is the cell's floating IP (an IPv4 address).
	Address string
	Port    int
}

// The router's files, all under router.Dir(app).
func RouterDir(app string) string       { return router.Dir(app) }
func RouterMapFile(app string) string   { return router.Dir(app) + "/" + router.MapFile }
func RouterCellsFile(app string) string { return router.Dir(app) + "/" + router.CellsFile }
func RouterDSNFile(app string) string   { return router.Dir(app) + "/" + router.DSNFile }

// RouterNginxDropIn gives nginx.service the directory of the routers'
// control sockets (router.RuntimeDir), 0700 root: created at each start,
// removed at each stop (a crashed nginx leaves no stale socket behind).
const RouterNginxDropIn = "/etc/systemd/system/nginx.service.d/10-belay-router.conf"

var routerNginxDropInConf = `# Rendered by belay: the routers' control sockets (root only, docs/cells.md).
[Service]
RuntimeDirectory=` + strings.TrimPrefix(router.RuntimeDir, "/run/") + `
RuntimeDirectoryMode=0700
`

// RouterNginxFile is the router's server block (conf.d).
func RouterNginxFile(app string) string { return "/etc/nginx/conf.d/belay-router-" + app + ".conf" }

// RouterSudoersFile lets the deploy user run the shop commands' root helper.
func RouterSudoersFile(app string) string { return "/etc/sudoers.d/belay-router-" + app }

// RouterSyncUnitFile is the engine's template unit; RouterSyncUnit(app) is
// the instance a router runs (one per app it routes).
const RouterSyncUnitFile = "/etc/systemd/system/" + router.SyncUnitName

// RouterSyncUnit is the sync service of app (hostcmd's name: the site
// switch starts and stops it).
func RouterSyncUnit(app string) string { return hostcmd.RouterSyncUnit(app) }

// ShopDBCommand is `belay host shop-db --app APP`, the root helper `belay
// shop` and `belay cells` run on a router through sudo: exact arguments,
// the request is JSON on stdin, checked by the helper against cells.conf.
func ShopDBCommand(app string) []string {
	return []string{BelayBinary, "host", "shop-db", "--app", app}
}

var (
	routerCellRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,15}$`)
	nginxArgRE   = regexp.MustCompile(`^[A-Za-z0-9_]{1,64}$`)
	httpHeaderRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]{0,63}$`)
)

func init() {
	register(inventory.RoleRouter, routerContributor)
	register(inventory.RoleStandbyRouter, routerContributor)
}

func validateRouter(s *Spec) error {
	r := s.Router
	if r == nil {
		return errors.New("roles: Spec.Router: nil, expected the router of an app with cells")
	}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("roles: "+format, args...)) }
	if !appNameRE.MatchString(r.App) || router.CheckApp(r.App) != nil {
		bad("Spec.Router.App: %q, expected at most 40 of a-z, 0-9, - (starting with a letter)", r.App)
	}
	if len(r.Cells) == 0 {
		bad("Spec.Router.Cells: empty, expected the app's cells")
	}
	seen := map[string]bool{}
	for i, c := range r.Cells {
		if !routerCellRE.MatchString(c.Name) || seen[c.Name] {
			bad("Spec.Router.Cells[%d].Name: %q, expected a unique cell name ([a-z][a-z0-9-]{0,15})", i, c.Name)
		}
		seen[c.Name] = true
		if a, err := netip.ParseAddr(c.Address); err != nil || !a.Is4() {
			bad("Spec.Router.Cells[%d].Address: %q, expected the cell's floating IPv4 address", i, c.Address)
		}
		if c.Port < 1 || c.Port > 65535 {
			bad("Spec.Router.Cells[%d].Port: %d, expected 1-65535", i, c.Port)
		}
	}
	switch r.UnknownShop {
	case "404", "421":
	case "default":
		if !seen[r.DefaultCell] {
			bad("Spec.Router.DefaultCell: %q, expected one of the cells (UnknownShop is default)", r.DefaultCell)
		}
	default:
		bad("Spec.Router.UnknownShop: %q, expected 404, 421 or default", r.UnknownShop)
	}
	if !nginxArgRE.MatchString(r.ShopParam) || !nginxArgRE.MatchString(r.ShopCookie) {
		bad("Spec.Router.ShopParam/ShopCookie: %q/%q, expected 1-64 letters, digits or '_'", r.ShopParam, r.ShopCookie)
	}
	if !httpHeaderRE.MatchString(r.ShopHeader) {
		bad("Spec.Router.ShopHeader: %q, expected an HTTP header name", r.ShopHeader)
	}
	if err := checkDatabaseURL(r.DatabaseURL); err != nil {
		bad("Spec.Router.DatabaseURL: %v", err)
	}
	standby := hasRole(s, inventory.RoleStandbyRouter)
	switch {
	case r.Standby != standby:
		bad("Spec.Router.Standby: %v, but the host's roles are %v", r.Standby, s.Roles)
	case r.Standby && r.VRRP != nil:
		bad("Spec.Router.VRRP: set on the standby router, expected nil")
	case !r.Standby && r.VRRP == nil:
		bad("Spec.Router.VRRP: nil, expected the router tier's VRRP group")
	case r.VRRP != nil:
		if err := validateVRRP(s, r.VRRP); err != nil {
			errs = append(errs, err)
		}
	}
	if err := validateRouterTLS(s); err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		// The engine parses what the role renders: refuse here what
		// router-sync would refuse on the host.
		if _, err := router.ParseCells(r.App, router.RenderCells(routerCells(r))); err != nil {
			bad("Spec.Router: the rendered cells.conf is refused by the router: %v", err)
		}
	}
	return errors.Join(errs...)
}

// routerCells is the engine's view of the router's cells (cells.conf).
func routerCells(r *Router) router.Cells {
	c := router.Cells{App: r.App, RetryAfter: router.DefaultRetryAfter, Unknown: router.DefaultUnknown,
		Keys: shopkeys.Keys{Param: r.ShopParam, Header: r.ShopHeader, Cookie: r.ShopCookie}.WithDefaults()}
	for _, rc := range r.Cells {
		cell := router.Cell{Name: rc.Name}
		if a, err := netip.ParseAddr(rc.Address); err == nil && rc.Port > 0 && rc.Port < 65536 {
			cell.Addrs = []netip.AddrPort{netip.AddrPortFrom(a, uint16(rc.Port))}
		}
		c.Cells = append(c.Cells, cell)
	}
	switch r.UnknownShop {
	case "default":
		c.Default = r.DefaultCell
	case "404":
		c.Unknown = 404
	}
	return c
}

func routerContributor(s *Spec, c *CloudConfig) error {
	if err := validateRouter(s); err != nil {
		return err
	}
	r := s.Router
	cells := routerCells(r)
	sudo, err := routerSudoers(s.DeployUser, r.App)
	if err != nil {
		return err
	}
	c.WriteFiles = append(c.WriteFiles,
		File{Path: "/etc/nginx/conf.d/belay-health.conf", Content: nginxHealthConf, Owner: "root:root", Permissions: "0644"},
		File{Path: RouterNginxFile(r.App), Content: RouterNginxConf(cells, r.TLS, r.Domains), Owner: "root:root", Permissions: "0644"},
		File{Path: RouterCellsFile(r.App), Content: string(router.RenderCells(cells)), Owner: "root:root", Permissions: "0644"},
		// Seeded only (converge skips it; router-sync re-renders it when
		// cells.conf changes): the engine's own rendering, so nginx starts
		// with every cell's upstream and answers unknown shops as configured
		// until router-sync's first push.
		File{Path: RouterMapFile(r.App), Content: string(router.Render(cells, router.DefaultPaths(r.App))), Owner: "root:root", Permissions: "0644"},
		File{Path: RouterNginxDropIn, Content: routerNginxDropInConf, Owner: "root:root", Permissions: "0644"},
		File{Path: RouterDSNFile(r.App), Content: string(router.DSNConf(r.DatabaseURL)), Owner: "root:root", Permissions: "0600"},
		File{Path: RouterSyncUnitFile, Content: router.SyncUnit(BelayBinary), Owner: "root:root", Permissions: "0644"},
		File{Path: RouterSudoersFile(r.App), Content: sudo, Owner: "root:root", Permissions: "0440"},
	)
	c.Runcmd = append(c.Runcmd,
		[]string{"install", "-d", "-m", "0755", "-o", "root", "-g", "root", RouterDir(r.App)},
		[]string{"rm", "-f", "/etc/nginx/sites-enabled/default"},
	)
	// Before nginx starts: the certificate it loads must exist (placeholder).
	addTLS(routerTLSSite(s), c)
	addShopCerts(s, c)
	c.Runcmd = append(c.Runcmd,
		[]string{"systemctl", "daemon-reload"},
		// nginx -t binds the control socket too, and runs outside the unit:
		// the RuntimeDirectory the drop-in gives nginx.service exists only
		// while nginx runs (the standby router's nginx had failed at boot,
		// so its first nginx -t failed and it never started).
		[]string{"install", "-d", "-m", "0700", "-o", "root", "-g", "root", router.RuntimeDir},
		[]string{"systemctl", "enable", "nginx.service"},
		[]string{"sh", "-c", "nginx -t && systemctl restart nginx.service"},
	)
	startACME(routerTLSSite(s), c)
	if r.Standby {
		// The standby site's database is a read-only replica until a site
		// switch promotes it: the standby router keeps the seeded map and
		// its sync starts with the next boot after the switch.
		c.Runcmd = append(c.Runcmd, []string{"systemctl", "enable", RouterSyncUnit(r.App)})
		return nil
	}
	c.Runcmd = append(c.Runcmd, []string{"systemctl", "enable", "--now", RouterSyncUnit(r.App)})
	addKeepalivedWith(s, c, r.VRRP, routerKeepalivedConf(s))
	return nil
}

// routerSudoers grants the deploy user the shop commands' root helper for
// app, with its exact arguments.
// MoveHookCommands are the sudoers commands of `belay host move-hook APP
// export|import SHOP` on a cell's servers: the shop is the caller's, so it
// is a wildcard; the helper refuses anything but one valid shop domain
// (router.CheckDomain) before it runs the release's belay-move as the app
// user, never as root (TestMoveHookRefusesHostileShops).
func MoveHookCommands(app string) []string {
	var out []string
	for _, verb := range []string{"export", "import"} {
		out = append(out, BelayBinary+" host move-hook "+app+" "+verb+" *")
	}
	return out
}

func routerSudoers(user, app string) (string, error) {
	line, err := sudoersCommand(ShopDBCommand(app))
	if err != nil {
		return "", err
	}
	alias := "BELAY_ROUTER_" + strings.ToUpper(strings.ReplaceAll(app, "-", "_"))
	return "# Rendered by belay: the shop commands' root helper on this router of app " + app + ".\n" +
		"Cmnd_Alias " + alias + " = " + line + "\n" +
		user + " ALL=(root) NOPASSWD: " + alias + "\n", nil
}

// routerKeepalivedConf is the router tier's VRRP member: it gives up the VIP
// when its own nginx stops answering.
func routerKeepalivedConf(s *Spec) string {
	return vrrpConf(s, s.Router.VRRP, "router_"+strings.ReplaceAll(s.Router.App, "-", "_"), "router of app "+s.Router.App, false, "", "")
}
