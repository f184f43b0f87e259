package router

import (
	"strings"
)

// The shop → cell routes live in nginx shared memory (lua_shared_dict, from
// Debian's libnginx-mod-http-lua), not in nginx config: router-sync pushes
// them through the control socket and no reload is needed.
//
// Four dicts per app: two route slots, a small control dict and the
// in-flight counters (apart, so that no counter can evict the control keys:
// incr with an init value evicts the least recently used entries of a full
// dict). A whole snapshot fills the idle slot and then bumps the generation
// ("gen" in the control dict), whose parity names the live slot. A lookup
// reads gen, the slot, and gen again (a seqlock): if a push flipped the slot
// in between it looks again, so a request sees the whole old snapshot or the
// whole new one, never a shop missing half-way through a load. A diff
// replaces the changed keys of the live slot one by one (each at once). The
// control dict also holds the loaded id; the counters dict one counter per
// mapped shop ("f:DOMAIN"): incremented before the request's route is read
// the second time, decremented in the log phase, which nginx runs for every
// finalized request (answered, aborted by the client, or ended by an
// upstream error through error_page).

// Sizes of the shared dicts. A route entry takes one 512-byte slab for the
// longest domains (253 characters) and 128 bytes for usual ones, so each
// 64 MiB dict holds MaxShops shops of any length (TestRoutesDictHoldsMaxShops).
const (
	DictSize = "64m"
	// CtlDictSize holds the control keys (generation, id, load lock).
	CtlDictSize = "1m"
	// CertDictSize holds the shops' certificates (MaxShopCerts of them).
	CertDictSize = "64m"
	// MaxRoutesBody bounds a pushed snapshot (MaxShops lines of at most
	// 253 + 1 + 31 + 1 bytes, plus headers).
	MaxRoutesBody = "32m"
)

// Socket is the control socket of app's router: nginx's master creates it
// as root in a directory only root may enter (RuntimeDir, 0700), so only
// root (router-sync) can push routes. There is no TCP port.
func Socket(app string) string { return RuntimeDir + "/" + app + ".sock" }

// RuntimeDir is the directory of the control sockets (nginx.service's
// RuntimeDirectory on a router host, mode 0700).
const RuntimeDir = "/run/belay-router"

// Paths are where nginx finds an app's routes file and control socket
// (tests move them into a temporary directory).
type Paths struct {
	// Routes is routes.txt, loaded when nginx starts with empty dicts.
	Routes string
	// Socket is the control socket (a path; nginx listens on unix:Socket).
	Socket string
	// Certs is the directory of the shops' certificates (CertIndexFile and
	// one DOMAIN.pem each, root 0600), loaded when nginx starts.
	Certs string
}

// CertIndexFile lists the installed shop certificates, one domain a line,
// in Paths.Certs: nginx's master reads it and each DOMAIN.pem at start.
const CertIndexFile = "index.txt"

// CertsDir is where a router keeps its shops' certificates.
func CertsDir(app string) string { return "/etc/belay/tls/" + app + "/shops" }

// DefaultPaths are the paths on a router host.
func DefaultPaths(app string) Paths {
	return Paths{Routes: Dir(app) + "/" + RoutesFile, Socket: Socket(app), Certs: CertsDir(app)}
}

// luaModule is the Lua run by init_by_lua: the module every router request
// calls (route, done, https), the TLS handshake's certificate choice (cert)
// and the control endpoints (routes, inflight, certs). @V@ is
// Var(app), @DEFAULT@ the cell of unknown shops (or CellUnknown), @ROUTES@
// the routes file, @FROZEN@ CellFrozen. Every value is a checked name or a
// path rendered by belay: nothing here comes from the mapping.
const luaModule = `
local M = {}
@V@ = M
local ctl, inflight = ngx.shared.@V@_ctl, ngx.shared.@V@_inflight
local slots = { [0] = ngx.shared.@V@_routes0, [1] = ngx.shared.@V@_routes1 }
local default_cell, frozen = "@DEFAULT@", "@FROZEN@"
-- The shops' certificates: DOMAIN -> chain and key (PEM), pushed by
-- router-sync (root) through the control socket, never read from a file by
-- a worker: the keys stay root 0600 on disk.
local certs = ngx.shared.@V@_certs

-- The control key (router.ControlKey): the control server answers only a
-- client that sends it. Read here, in the master (root), from the root-only
-- socket directory, or made there 0600 when missing (each nginx start: the
-- directory is emptied at stop; a reload keeps it). A local user who could
-- reach the socket (its directory's mode is the only other guard: nginx
-- makes every unix socket 0666) still cannot push routes.
local control_key
do
    local f = io.open("@KEY@", "rb")
    if f then control_key = f:read("*l"); f:close() end
    if not control_key or #control_key < 64 then
        local r = io.open("/dev/urandom", "rb")
        control_key = (r:read(32):gsub(".", function(ch) return string.format("%02x", ch:byte()) end))
        r:close()
        local ffi = require "ffi"
        pcall(ffi.cdef, "unsigned int umask(unsigned int mask);")
        local old = ffi.C.umask(63)
        local w = io.open("@KEY@.new", "wb")
        ffi.C.umask(old)
        if not (w and w:write(control_key, "\n") and w:close() and os.rename("@KEY@.new", "@KEY@")) then
            ngx.log(ngx.ERR, "belay router: cannot write the control key @KEY@; the control server refuses every request")
            control_key = nil
        end
    end
end

local function authorized()
    if control_key ~= nil and ngx.var.http_x_belay_control_key == control_key then return true end
    ngx.status = ngx.HTTP_FORBIDDEN
    ngx.say("belay router: missing or wrong control key")
    return false
end

-- lookup returns the shop's cell in one generation of the routes (nil when
-- unknown): gen is read before and after the slot, and a flip in between
-- looks again.
local function lookup(shop)
    for _ = 1, 8 do
        local g = ctl:get("gen")
        if g == nil then return nil end
        local c = slots[g % 2]:get(shop)
        if ctl:get("gen") == g then return c end
    end
    return nil
end

-- route is the cell variable of a request. A mapped active shop's request
-- is counted in flight BEFORE its route is read again: once router-sync
-- has flipped a shop to frozen and then reads the counter as 0, every
-- later request sees the freeze (the freeze guarantee, docs/cells.md).
function M.route()
    local shop = ngx.var.@V@_shop
    if shop == nil or shop == "" then return default_cell end
    shop = string.lower(shop)
    local key = "f:" .. shop
    for _ = 1, 8 do
        local c = lookup(shop)
        if c == nil then return default_cell end
        if c == frozen then return c end
        local n, err = inflight:incr(key, 1, 0)
        if not n then
            ngx.log(ngx.ERR, "belay router: in-flight counter of ", shop, ": ", err)
            return frozen
        end
        if lookup(shop) == c then
            ngx.var.@V@_counted = shop
            return c
        end
        inflight:incr(key, -1)
    end
    return frozen
end

-- done runs in the log phase of every request: the request is no longer in flight.
function M.done()
    local shop = ngx.var.@V@_counted
    if shop ~= nil and shop ~= "" then
        inflight:incr("f:" .. shop, -1)
    end
end

-- load_full fills the idle slot with a snapshot and makes it live; on any
-- error the live slot is untouched.
local function load_full(lines, id)
    local g = ctl:get("gen") or 0
    local slot = slots[(g + 1) % 2]
    slot:flush_all()
    slot:flush_expired(0)
    local n = 0
    for line in lines do
        local d, c = line:match("^(%S+) (%S+)$")
        if d == "end" then
            if tonumber(c) ~= n then break end
            ctl:set("gen", g + 1)
            ctl:set("id", id)
            return n
        end
        if not d then return nil, "line " .. (n + 3) .. ": expected DOMAIN CELL" end
        local ok, err = slot:safe_set(d, c)
        if not ok then
            return nil, "shop " .. (n + 1) .. " (" .. d .. "): " .. err .. " (each routes dict holds @SIZE@)"
        end
        n = n + 1
    end
    return nil, "truncated snapshot: no end line after " .. n .. " shops"
end

-- load_diff changes the live slot shop by shop (each key is replaced at
-- once: a request sees a shop's old route or its new one). It applies only
-- on top of the snapshot it was computed from (base); the lines are checked
-- before anything changes.
local function load_diff(lines, base, id)
    if ctl:get("id") ~= base then return nil, "base mismatch: nginx routes by " .. tostring(ctl:get("id")) end
    local domains, cells, n = {}, {}, 0
    for line in lines do
        local d, c = line:match("^(%S+) (%S+)$")
        if d == "end" then
            if tonumber(c) ~= n then break end
            local slot = slots[(ctl:get("gen") or 0) % 2]
            for i = 1, n do
                if cells[i] == "-" then
                    slot:delete(domains[i])
                else
                    local ok, err = slot:safe_set(domains[i], cells[i])
                    if not ok then return nil, "shop " .. domains[i] .. ": " .. err .. " (each routes dict holds @SIZE@)" end
                end
            end
            ctl:set("id", id)
            return n
        end
        if not d then return nil, "line " .. (n + 4) .. ": expected DOMAIN CELL or DOMAIN -" end
        n = n + 1
        domains[n], cells[n] = d, c
    end
    return nil, "truncated diff: no end line after " .. n .. " changes"
end

-- load applies a routes snapshot or diff (router.RenderRoutes, RenderDiff).
function M.load(body)
    local lines = body:gmatch("([^\n]*)\n")
    local kind, base = lines(), nil
    if kind == "belay-routes-diff 1" then
        base = (lines() or ""):match("^base (%d+ %x+)$")
        if not base then return nil, "line 2: expected base VERSION DIGEST" end
    elseif kind ~= "belay-routes 1" then
        return nil, "not a belay routes snapshot or diff (first line)"
    end
    local id = (lines() or ""):match("^id (%d+ %x+)$")
    if not id then return nil, "expected id VERSION DIGEST" end
    if not ctl:add("loading", true, 60) then return nil, "another load is running" end
    local n, err
    if base then
        n, err = load_diff(lines, base, id)
    else
        n, err = load_full(lines, id)
    end
    ctl:delete("loading")
    return n, err
end

local function body()
    ngx.req.read_body()
    local b = ngx.req.get_body_data()
    if b then return b end
    local fn = ngx.req.get_body_file()
    if not fn then return "" end
    local f = io.open(fn, "rb")
    if not f then return "" end
    b = f:read("*a")
    f:close()
    return b
end

-- serve_routes: GET prints the loaded snapshot's id ("none" before any);
-- PUT loads a snapshot.
function M.serve_routes()
    if not authorized() then return ngx.exit(ngx.HTTP_FORBIDDEN) end
    local method = ngx.req.get_method()
    if method == "GET" then
        ngx.say(ctl:get("id") or "none")
        return
    end
    if method ~= "PUT" then return ngx.exit(405) end
    local n, err = M.load(body())
    if not n then
        ngx.status = 422
        ngx.say(err)
        return
    end
    ngx.say("loaded ", ctl:get("id"), ", ", n, " shops")
end

-- serve_inflight: POST one shop a line; prints "SHOP N" for each with requests in flight.
function M.serve_inflight()
    if not authorized() then return ngx.exit(ngx.HTTP_FORBIDDEN) end
    for shop in body():gmatch("[^\n]+") do
        local n = inflight:get("f:" .. shop)
        if n and n > 0 then ngx.say(shop, " ", n) end
    end
end

-- parsed caches each worker's parsed certificates: the PEM string of the
-- dict is the key of its parse (a pushed renewal is a new string).
local parsed = {}

-- cert runs in ssl_certificate_by_lua: a shop with its own certificate gets
-- it for its SNI; any other name keeps the server's (the app's) certificate.
function M.cert()
    local ssl = require "ngx.ssl"
    local name = ssl.server_name()
    if not name then return end
    name = string.lower(name)
    local pem = certs:get(name)
    if not pem then
        parsed[name] = nil
        return
    end
    local p = parsed[name]
    if not p or p.pem ~= pem then
        local c, err = ssl.parse_pem_cert(pem)
        local k, kerr = ssl.parse_pem_priv_key(pem)
        if not c or not k then
            ngx.log(ngx.ERR, "belay router: certificate of ", name, ": ", err or kerr, "; serving the default certificate")
            return
        end
        p = { pem = pem, cert = c, key = k }
        parsed[name] = p
    end
    local ok, err = ssl.clear_certs()
    if ok then ok, err = ssl.set_cert(p.cert) end
    if ok then ok, err = ssl.set_priv_key(p.key) end
    if not ok then
        ngx.log(ngx.ERR, "belay router: setting the certificate of ", name, ": ", err)
        return ngx.exit(ngx.ERROR)
    end
end

-- https is "1" when the request's Host has its own certificate (the
-- port-80 redirect to HTTPS of a shop outside the app's certificate).
function M.https()
    local h = ngx.var.host
    if h and h ~= "" and certs:get(h) then return "1" end
    return ""
end

local function check_cert(pem)
    local ssl = require "ngx.ssl"
    if not ssl.parse_pem_cert(pem) then return "not a PEM certificate chain" end
    if not ssl.parse_pem_priv_key(pem) then return "no PEM private key" end
    return nil
end

-- serve_certs: GET lists "DOMAIN MD5" of every certificate held; PUT
-- ?domain=D sets D's (chain then key, PEM; checked first), DELETE removes it.
function M.serve_certs()
    if not authorized() then return ngx.exit(ngx.HTTP_FORBIDDEN) end
    local method = ngx.req.get_method()
    if method == "GET" then
        local keys = certs:get_keys(0)
        for _, d in ipairs(keys) do
            local pem = certs:get(d)
            if pem then ngx.say(d, " ", ngx.md5(pem)) end
        end
        return
    end
    local d = ngx.var.arg_domain
    if not d or not d:match("^[a-z0-9][a-z0-9.-]*$") then
        ngx.status = 400
        ngx.say("expected ?domain=DOMAIN")
        return
    end
    if method == "DELETE" then
        certs:delete(d)
        ngx.say("deleted ", d)
        return
    end
    if method ~= "PUT" then return ngx.exit(405) end
    local pem = body()
    local err = check_cert(pem)
    if not err then
        local ok, serr = certs:safe_set(d, pem)
        if not ok then err = serr .. " (the certificates dict holds @CERTSIZE@)" end
    end
    if err then
        ngx.status = 422
        ngx.say(d, ": ", err)
        return
    end
    ngx.say("loaded ", d)
end

-- At a fresh start the dicts are empty: load the last pushed snapshot, so a
-- restarted router routes every shop with the database down. A reload keeps
-- the dicts (and the live routes): "init" is already there.
if ctl:add("init", true) then
    local f = io.open("@ROUTES@", "rb")
    if f then
        local n, err = M.load(f:read("*a"))
        f:close()
        if not n then
            ngx.log(ngx.ERR, "belay router: @ROUTES@: ", err, "; shops are unknown until router-sync pushes")
        end
    end
    -- The shops' certificates, read by the master (root) before any worker
    -- runs: a restart with the database down serves them as before.
    local idx = io.open("@CERTS@/@CERTINDEX@", "rb")
    if idx then
        for d in idx:lines() do
            if d:match("^[a-z0-9][a-z0-9.-]*$") then
                local f = io.open("@CERTS@/" .. d .. ".pem", "rb")
                local pem = f and f:read("*a")
                if f then f:close() end
                local err = "unreadable"
                if pem then err = check_cert(pem) end
                if err then
                    ngx.log(ngx.ERR, "belay router: certificate of ", d, ": ", err)
                elseif not certs:safe_set(d, pem) then
                    ngx.log(ngx.ERR, "belay router: certificate of ", d, ": the certificates dict is full")
                end
            end
        end
        idx:close()
    end
end
`

// renderLua returns the init_by_lua module for c and p.
func renderLua(c Cells, p Paths) string {
	def := CellUnknown
	if c.Default != "" {
		def = c.Default
	}
	return strings.NewReplacer("@V@", Var(c.App), "@DEFAULT@", def, "@FROZEN@", CellFrozen,
		"@ROUTES@", p.Routes, "@SIZE@", DictSize, "@KEY@", ControlKey(p.Socket),
		"@CERTS@", p.Certs, "@CERTINDEX@", CertIndexFile, "@CERTSIZE@", CertDictSize).Replace(luaModule)
}
