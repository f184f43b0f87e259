package roles

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strings"

	"github.com/belay-sh/belay/inventory"
)

// Router configures a router of an app with cells: nginx maps each request's
// shop to its cell and proxies to that cell's floating IP; keepalived holds
// the router tier's floating IP (primary site). The shop → cell mapping is
// not in the user data: `belay host router-sync` (belay-router-sync.service)
// keeps RouterMapFile current from PostgreSQL and reloads nginx.
type Router struct {
	App     string
	Domains []string
	// Standby marks the standby-site router: no keepalived.
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
	// mapping, read by the sync service (secret).
	DatabaseURL string
	// VRRP is nil on the standby router.
	VRRP *VRRP
}

// RouterCell is one upstream of the router.
type RouterCell struct {
	Name string
	// Address is the cell's floating IP (an IPv4 address).
	Address string
	Port    int
}

// The router's files. The two paths under /etc/belay/router/<app>/ are the
// contract with the router sync service: it rewrites map.conf (root-owned,
// validated, then `nginx -t` and a graceful reload), never cells.conf.
func RouterDir(app string) string       { return "/etc/belay/router/" + app }
func RouterMapFile(app string) string   { return RouterDir(app) + "/map.conf" }
func RouterCellsFile(app string) string { return RouterDir(app) + "/cells.conf" }
func RouterEnvFile(app string) string   { return RouterDir(app) + "/router.env" }

// RouterSyncUnit is the sync service's unit: a router serves one app.
const RouterSyncUnit = "belay-router-sync.service"

var (
	routerCellRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,15}$`)
	nginxArgRE   = regexp.MustCompile(`^[A-Za-z0-9_]{1,64}$`)
	httpHeaderRE = regexp.MustCompile(`^[A-Za-z0-9-]{1,64}$`)
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
	if !appNameRE.MatchString(r.App) {
		bad("Spec.Router.App: %q, expected at most 55 of a-z, 0-9, - (starting with a letter)", r.App)
	}
	for i, d := range r.Domains {
		if !domainRE.MatchString(d) {
			bad("Spec.Router.Domains[%d]: %q, expected a lowercase domain name", i, d)
		}
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
		errs = append(errs, validateVRRP(s, r.VRRP))
	}
	return errors.Join(errs...)
}

func routerContributor(s *Spec, c *CloudConfig) error {
	if err := validateRouter(s); err != nil {
		return err
	}
	r := s.Router
	c.WriteFiles = append(c.WriteFiles,
		File{Path: "/etc/nginx/conf.d/belay-health.conf", Content: nginxHealthConf, Owner: "root:root", Permissions: "0644"},
		File{Path: "/etc/nginx/conf.d/belay-router-" + r.App + ".conf", Content: RouterNginxConf(r), Owner: "root:root", Permissions: "0644"},
		File{Path: RouterCellsFile(r.App), Content: RouterCellsConf(r), Owner: "root:root", Permissions: "0644"},
		// Empty until the sync service's first run: every shop is unknown.
		File{Path: RouterMapFile(r.App), Content: "# Written by belay-router-sync: one entry per line, a quoted shop and its cell.\n", Owner: "root:root", Permissions: "0644"},
		File{Path: RouterEnvFile(r.App), Content: "BELAY_ROUTER_DATABASE_URL=" + r.DatabaseURL + "\n", Owner: "root:root", Permissions: "0600", Defer: true},
		File{Path: "/etc/systemd/system/" + RouterSyncUnit, Content: routerSyncUnit(r.App), Owner: "root:root", Permissions: "0644"},
	)
	c.Runcmd = append(c.Runcmd,
		[]string{"install", "-d", "-m", "0755", "-o", "root", "-g", "root", RouterDir(r.App)},
		[]string{"rm", "-f", "/etc/nginx/sites-enabled/default"},
		[]string{"systemctl", "daemon-reload"},
		[]string{"systemctl", "enable", "nginx.service"},
		[]string{"sh", "-c", "nginx -t && systemctl restart nginx.service"},
	)
	if r.Standby {
		// The standby router gets the mapping only after a site switch starts it.
		c.Runcmd = append(c.Runcmd, []string{"systemctl", "enable", RouterSyncUnit})
		return nil
	}
	c.Runcmd = append(c.Runcmd, []string{"systemctl", "enable", "--now", RouterSyncUnit})
	addKeepalivedWith(s, c, r.VRRP, routerKeepalivedConf(s))
	return nil
}

// routerSyncUnit runs `belay host router-sync` for app. It runs as root
// because it rewrites a file nginx (root) parses and reloads nginx; the
// command validates every entry before it writes the map.
func routerSyncUnit(app string) string {
	return fmt.Sprintf(`# Rendered by belay: keeps %[2]s current from PostgreSQL.
[Unit]
Description=belay router map sync for app %[1]s
After=network-online.target nginx.service
Wants=network-online.target

[Service]
Type=simple
EnvironmentFile=%[3]s
ExecStart=%[4]s host router-sync --app %[1]s
Restart=always
RestartSec=1
NoNewPrivileges=yes
ProtectSystem=strict
ReadWritePaths=%[5]s /run
ProtectHome=yes
PrivateTmp=yes

[Install]
WantedBy=multi-user.target
`, app, RouterMapFile(app), RouterEnvFile(app), BelayBinary, RouterDir(app))
}

// RouterCellsConf renders one upstream per cell: belay_cell_<app>_<cell>.
func RouterCellsConf(r *Router) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Rendered by belay: the cells of app %s, each at its floating IP.\n", r.App)
	for _, c := range r.Cells {
		fmt.Fprintf(&b, "upstream %s {\n    server %s:%d max_fails=0;\n    keepalive 16;\n}\n", routerUpstream(r.App, c.Name), c.Address, c.Port)
	}
	return b.String()
}

// routerUpstream is a cell's upstream: the cell name is kept as is because
// proxy_pass appends the mapped cell name to the same prefix.
func routerUpstream(app, cell string) string {
	return "belay_cell_" + strings.ReplaceAll(app, "-", "_") + "_" + cell
}

// RouterNginxConf is the router's nginx config: the shop is the first of the
// shop parameter, header and cookie that is set, else the Host; map.conf maps
// it to a cell; the request goes to that cell's upstream. An unknown shop
// gets the configured answer; a cell that does not answer gets a 503 page
// naming only that cell, so other cells' shops never see it.
func RouterNginxConf(r *Router) string {
	v := strings.ReplaceAll(r.App, "-", "_")
	names := "_"
	listen := "listen 80 default_server;"
	if len(r.Domains) > 0 {
		names = strings.Join(r.Domains, " ")
		listen = "listen 80;"
	}
	header := strings.ToLower(strings.ReplaceAll(r.ShopHeader, "-", "_"))
	unknown := "return " + r.UnknownShop + ";"
	if r.UnknownShop == "default" {
		unknown = "set $belay_" + v + "_cell_name " + r.DefaultCell + ";"
	}
	var b strings.Builder
	fmt.Fprintf(&b, `# Rendered by belay: router of app %[1]s (shop -> cell).
include %[2]s;
map "$arg_%[3]s|$http_%[4]s|$cookie_%[5]s|$host" $belay_%[6]s_shop {
    default $host;
    "~^\|*([^|]+)" $1;
}
map $belay_%[6]s_shop $belay_%[6]s_cell {
    hostnames;
    default "";
    include %[7]s;
}
server {
    %[8]s
    server_name %[9]s;
    set $belay_%[6]s_cell_name $belay_%[6]s_cell;
    if ($belay_%[6]s_cell_name = "") {
        %[10]s
    }
    location / {
        proxy_pass http://belay_cell_%[6]s_$belay_%[6]s_cell_name;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $host;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_set_header X-Belay-Cell $belay_%[6]s_cell_name;
        add_header X-Belay-Cell $belay_%[6]s_cell_name always;
        proxy_connect_timeout 1s;
        proxy_read_timeout 60s;
        proxy_intercept_errors off;
        error_page 502 504 = @cell_down;
    }
    location @cell_down {
        default_type text/plain;
        add_header Retry-After 30 always;
        return 503 "cell $belay_%[6]s_cell_name is unavailable, retry shortly\n";
    }
}
`, r.App, RouterCellsFile(r.App), r.ShopParam, header, r.ShopCookie, v, RouterMapFile(r.App), listen, names, unknown)
	return b.String()
}

// routerKeepalivedConf is the router tier's VRRP member: it gives up the VIP
// when its own nginx stops answering.
func routerKeepalivedConf(s *Spec) string {
	return vrrpConf(s, s.Router.VRRP, "router_"+strings.ReplaceAll(s.Router.App, "-", "_"), "router of app "+s.Router.App, false, "", "")
}
