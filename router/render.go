package router

import (
	"bytes"
	"fmt"
	"strings"
)

// Dir is the directory of an app's router files on a router host.
func Dir(app string) string { return "/etc/belay/router/" + app }

// Files inside Dir(app).
const (
	// CellsFile is written by the router's role (root): the cells, the default.
	CellsFile = "cells.conf"
	// MapFile is rendered by `belay host router-sync` from cells.conf
	// (upstreams, shop extraction, the Lua routes), included at http level.
	MapFile = "map.conf"
	// CacheFile is the last good mapping (JSON), the local cache.
	CacheFile = "mapping.json"
	// DSNFile holds the router role's connection string (root, 0600).
	DSNFile = "db.conf"
)

// Sentinel values of $belay_cell_<app> that are no cell (cell names have no '_').
const (
	CellFrozen  = "_frozen"
	CellUnknown = "_unknown"
)

// Var is the per-app prefix of the router's nginx variables.
func Var(app string) string { return "belay_" + strings.ReplaceAll(app, "-", "_") }

// Upstream is the upstream group of one cell.
func Upstream(app, cell string) string { return "belay_cell_" + app + "_" + cell }

// HeaderRouter marks every answer the router gives itself (frozen, unknown,
// cell down) with the reason, so clients and tests tell them from the app's.
const HeaderRouter = "X-Belay-Router"

// Render returns map.conf (http level) for the cells of c: one upstream per
// cell, the shop of each request ($<var>_shop: the shop query parameter,
// else the shop header, else the shop cookie, else Host — the canary
// whitelist's keys, plus the Host), the shared dicts that hold the shop →
// cell routes with the Lua that looks them up (lua.go), and the control
// server on p.Socket through which router-sync pushes a new snapshot
// without a reload. It depends on cells.conf only: a mapping change never
// changes it, a cells.conf change is a reload. Call ParseCells first.
func Render(c Cells, p Paths) []byte {
	var b bytes.Buffer
	app, v := c.App, Var(c.App)
	fmt.Fprintf(&b, "# Rendered by belay host router-sync from cells.conf (app %s). The shop routes are in\n# the shared dicts below, pushed through %s (docs/cells.md).\n", app, p.Socket)
	for _, cell := range c.Cells {
		fmt.Fprintf(&b, "upstream %s {\n", Upstream(app, cell.Name))
		for _, a := range cell.Addrs {
			// max_fails=0: a cell's entry point is its VIP; nginx must not
			// mark it failed for 10 s after one refused connect while
			// keepalived moves the address.
			fmt.Fprintf(&b, "    server %s max_fails=0;\n", a)
		}
		b.WriteString("    keepalive 32;\n}\n")
	}
	k := c.Keys.WithDefaults()
	// The first non-empty of parameter, header, cookie, Host; $host is
	// lowercase and without port (the Lua lowercases the others).
	fmt.Fprintf(&b, "map \"$arg_%s|$http_%s|$cookie_%s|$host\" $%s_shop {\n    default \"\";\n    \"~^\\|*([^|]+)\" $1;\n}\n",
		k.Param, strings.ToLower(strings.ReplaceAll(k.Header, "-", "_")), k.Cookie, v)
	for _, d := range []string{"routes0", "routes1", "inflight"} {
		fmt.Fprintf(&b, "lua_shared_dict %s_%s %s;\n", v, d, DictSize)
	}
	fmt.Fprintf(&b, "lua_shared_dict %s_ctl %s;\n", v, CtlDictSize)
	fmt.Fprintf(&b, "lua_shared_dict %s_certs %s;\n", v, CertDictSize)
	fmt.Fprintf(&b, "init_by_lua_block {%s}\n", renderLua(c, p))
	b.WriteString(initWorker)
	fmt.Fprintf(&b, `# The control server: only root can reach the socket (its directory is 0700 root).
server {
    listen unix:%s;
    access_log off;
    client_max_body_size %s;
    client_body_buffer_size %s;
    location = /routes { content_by_lua_block { %s.serve_routes() } }
    location = /inflight { content_by_lua_block { %s.serve_inflight() } }
    location = /certs { content_by_lua_block { %s.serve_certs() } }
    location / { return 404; }
}
`, p.Socket, MaxRoutesBody, MaxRoutesBody, v, v, v)
	return b.Bytes()
}

// initWorker makes each worker undumpable once it runs as the workers' user
// (nginx makes them dumpable after setuid, so that they can dump core):
// otherwise any process of that user (www-data) could read and write a
// worker's memory through ptrace or /proc/PID/mem, and with it the routes
// and the control key (TestWorkersHideTheirMemory). The cost: no core dump
// of a crashed worker.
const initWorker = `init_worker_by_lua_block {
    local ffi = require "ffi"
    pcall(ffi.cdef, "int prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5);")
    if ffi.C.prctl(4, 0, 0, 0, 0) ~= 0 then -- PR_SET_DUMPABLE
        ngx.log(ngx.ERR, "belay router: prctl(PR_SET_DUMPABLE, 0) failed: this worker's memory is open to its user's processes")
    end
}
`

// RenderCells returns cells.conf for c, in the format ParseCells reads: the
// one renderer of the file (the router role calls it), so what a role writes
// is what router-sync and shop-db parse. c must be valid: ParseCells of the
// result returns c (TestRenderCellsRoundTrip).
func RenderCells(c Cells) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Rendered by belay: the cells router-sync may route app %s to (docs/cells.md).\n", c.App)
	for _, cell := range c.Cells {
		b.WriteString("cell " + cell.Name)
		for _, a := range cell.Addrs {
			b.WriteString(" " + a.String())
		}
		b.WriteString("\n")
	}
	if c.Default != "" {
		fmt.Fprintf(&b, "default %s\n", c.Default)
	} else {
		fmt.Fprintf(&b, "unknown %d\n", c.unknown())
	}
	ra := c.RetryAfter
	if ra == 0 {
		ra = DefaultRetryAfter
	}
	fmt.Fprintf(&b, "retry-after %d\n", ra)
	k := c.Keys.WithDefaults()
	fmt.Fprintf(&b, "shop-param %s\nshop-header %s\nshop-cookie %s\n", k.Param, k.Header, k.Cookie)
	return b.Bytes()
}

// DSNConf returns db.conf: the router role's connection string (the router
// role writes it root 0600; ReadDSN refuses anything readable by others).
func DSNConf(dsn string) []byte { return []byte(strings.TrimSpace(dsn) + "\n") }

// unknown is the status of an unknown shop without a default cell.
func (c Cells) unknown() int {
	if c.Unknown == 404 {
		return 404
	}
	return DefaultUnknown
}

// ServerConf is the router's server block for app, which the router role
// ships (conf.d) after `include <Dir>/map.conf;` at http level. The cell of
// a request is the Lua lookup in the routes dict (Render, lua.go). It answers
// a frozen shop with 503 + Retry-After, an unknown shop (no default cell)
// with cells.conf's unknown status (421 or 404), and a cell nginx cannot reach with 503 for that cell's shops only
// (error_page on nginx's own 502/504, never on the app's: proxy_intercept_errors
// stays off). listen is the listen directive's argument ("80", "127.0.0.1:8080").
func ServerConf(c Cells, listen string) string {
	return Server(c, "    listen "+listen+";\n    server_name _;\n", "")
}

// Server is ServerConf with the caller's server-level lines (head: listen,
// server_name, TLS, extra locations) and lines run first in `location /`
// (first: the router role's HTTPS redirect, which must come before the
// routing). Every server block a router has routes the same way.
func Server(c Cells, head, first string) string {
	app, v := c.App, Var(c.App)
	return fmt.Sprintf(`server {
%[1]s    default_type text/plain;
    # The cell's own nginx enforces the app's body limit; the router adds none.
    client_max_body_size 0;
    # The request's shop counted in flight (route), uncounted when it ends.
    set $%[2]s_counted "";
    log_by_lua_block { %[2]s.done() }
    location / {
%[9]s        set_by_lua_block $%[2]s_cell { return %[2]s.route() }
        if ($%[2]s_cell = %[4]s) {
            add_header %[6]s frozen always;
            add_header Retry-After %[5]d always;
            return 503 "This shop is being moved. Please retry in %[5]d seconds.\n";
        }
        if ($%[2]s_cell = %[7]s) {
            add_header %[6]s unknown always;
            return %[8]d "No shop is served under this name here.\n";
        }
        proxy_pass http://belay_cell_%[3]s_$%[2]s_cell;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_set_header X-Belay-Cell $%[2]s_cell;
        proxy_connect_timeout 2s;
        error_page 502 504 = @belay_cell_down;
    }
    location @belay_cell_down {
        add_header %[6]s cell-down always;
        add_header Retry-After 10 always;
        return 503 "This shop's cell ($%[2]s_cell) is unavailable. Please retry shortly.\n";
    }
}
`, head, v, app, CellFrozen, c.RetryAfter, HeaderRouter, CellUnknown, c.unknown(), first)
}

// ShopCertLines go in an HTTPS server block after its ssl_certificate (the
// app's, the fallback): at each handshake the Lua gives a shop with its own
// certificate that one, chosen by SNI from the certificates dict (no reload
// per shop).
func ShopCertLines(app string) string {
	return "    # A shop with its own certificate gets it (SNI); other names get the one above.\n" +
		"    ssl_certificate_by_lua_block { " + Var(app) + ".cert() }\n"
}

// ShopRedirect goes first in `location /` of the port-80 server of the
// shops outside the app's certificate: a Host with its own certificate in
// the dict is redirected to HTTPS, decided per request (no reload).
func ShopRedirect(app string) string {
	v := Var(app)
	return fmt.Sprintf(`        # A shop with its own certificate: HTTPS (decided per request, docs/cells.md).
        set_by_lua_block $%[1]s_https { return %[1]s.https() }
        if ($%[1]s_https) {
            access_log off;
            return 301 https://$host$request_uri;
        }
`, v)
}

// SyncUnitName is the systemd template unit of router-sync (instance: the app).
const SyncUnitName = "belay-router-sync@.service"

// SyncUnit is the unit the router role installs (belay at binary, usually
// /usr/local/bin/belay) and enables as belay-router-sync@APP.
func SyncUnit(binary string) string {
	return `# Rendered by belay: keeps nginx's shop -> cell map of app %i equal to the database.
[Unit]
Description=belay: router sync for app %i (mapping -> nginx routes)
After=nginx.service network-online.target
Wants=nginx.service network-online.target

[Service]
ExecStart=` + binary + ` host router-sync --app %i
Restart=always
RestartSec=1
# Root because it pushes routes through nginx's root-only control socket
# (/run/belay-router) and rewrites files nginx (root) parses; it validates
# every row first. It writes only its app's directories (/var stays writable
# for nginx -t's logs and temp paths, lego's state and the ACME webroot; /run
# is not protected).
NoNewPrivileges=yes
ProtectSystem=full
ReadWritePaths=/etc/belay/router/%i
# The shops' certificates (router/shopcert); absent on a router without ACME.
ReadWritePaths=-/etc/belay/tls/%i/shops
ProtectHome=yes
PrivateTmp=yes

[Install]
WantedBy=multi-user.target
`
}
