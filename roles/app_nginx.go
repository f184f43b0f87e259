package roles

// The app's nginx side: the base server config, the deployer-owned routing
// files the role ships in their stable stage, and the route watcher.

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/belay-sh/belay/hostcmd"
)

// nginxLogFormat defines format `belay` (tab-separated). Its file sorts first in
// conf.d because nginx needs a log_format defined before an access_log uses it.
const nginxLogFormat = `# Rendered by belay: the access log format the deployer reads during rollouts.
log_format belay '$time_iso8601\t$remote_addr\t$status\t$request_time\t$upstream_addr\t$upstream_status\t$upstream_response_time\t$belay_pool\t"$request"';
`

// nginxHealthConf answers keepalived's nginx check on 127.0.0.2 only.
const nginxHealthConf = `# Rendered by belay: nginx liveness for keepalived's track_script.
server {
    listen 127.0.0.2:80;
    server_name belay-health;
    access_log off;
    location = /belay-nginx-health {
        default_type text/plain;
        return 200 "ok\n";
    }
    location / {
        return 404;
    }
}
`

// InitialRouting returns the all-stable routing.conf the roles ship; belay deploy
// rewrites it at every stage (deploy/traffic renders the same bytes for the
// stable stage, and `belay deploy status` reads the stage from the first line).
func InitialRouting(app string) string {
	return "# Managed by belay deploy; rewritten at every stage change. App " + app + ", stage stable.\n" +
		"set $belay_pool stable;\n"
}

// InitialHTTP returns the initial http-level include of an app: the stable
// upstream over every group member. The deployer owns it from the first
// deploy on (it adds the canary upstream and the stage's maps).
func InitialHTTP(app string, port int, members []string) string {
	var b strings.Builder
	b.WriteString("# Managed by belay deploy; rewritten at every stage change. App " + app + ", stage stable.\n")
	fmt.Fprintf(&b, "upstream belay_%s_stable {\n", app)
	// Shared across workers, so a dead member is skipped by all of them at once.
	fmt.Fprintf(&b, "    zone belay_%s_stable 64k;\n", app)
	for _, m := range members {
		fmt.Fprintf(&b, "    server %s:%d;\n", m, port)
	}
	b.WriteString("    keepalive 16;\n}\n")
	return b.String()
}

// AppHTTPFile is the deployer-owned http-level nginx include of an app (upstreams, maps).
func AppHTTPFile(app string) string { return "/etc/belay/nginx/" + app + "/http.conf" }

// groupMembers lists the private addresses of every member of this host's app
// group, this host included: pinned ones when known, else loopback for itself.
func groupMembers(s *Spec) []string {
	self := s.Net.PrivateAddress
	if self == "" {
		self = "127.0.0.1"
	}
	out := []string{self}
	if v := s.App.VRRP; v != nil {
		out = append(out, v.Peers...)
	}
	sort.Slice(out, func(i, j int) bool {
		a, _ := netip.ParseAddr(out[i])
		b, _ := netip.ParseAddr(out[j])
		return a.Less(b)
	})
	return out
}

// nginxAppConf is the app's base config. The upstreams and the pool maps live
// in the deployer-owned http.conf it includes (nginx allows them at http level
// only, and only the deployer knows the canary hosts); proxy_pass uses the
// variable form, so nginx picks belay_<app>_stable or _canary per request.
// With TLS, the same routing serves port 443; port 80 keeps the ACME challenge
// and redirects the rest once a CA-issued certificate is installed.
func nginxAppConf(s *Spec) string {
	a := s.App
	names := "_"
	def := " default_server"
	if len(a.Domains) > 0 {
		names = strings.Join(a.Domains, " ")
		def = ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Rendered by belay: app %s behind nginx on %s.\ninclude %s;\n", a.Name, s.Hostname, AppHTTPFile(a.Name))
	if a.Cell != "" {
		// The router tier terminates HTTPS and sets X-Forwarded-Proto (it
		// never passes a client's own); keep "https" so the app knows.
		fmt.Fprintf(&b, "# Behind the router tier (it terminates HTTPS): its X-Forwarded-Proto reaches the app.\nmap $http_x_forwarded_proto %s {\n    default $scheme;\n    https https;\n}\n", forwardedProtoVar(a))
	}
	fmt.Fprintf(&b, "server {\n    listen 80%s;\n    server_name %s;\n    access_log %s belay;\n", def, names, AppAccessLog(a.Name))
	if a.TLS != nil && a.TLS.Mode == TLSModeACME {
		b.WriteString(acmeChallengeLocations(a.Name))
	}
	redirect := ""
	if a.TLS != nil {
		redirect = "        # Empty until a CA-issued certificate is installed, then the redirect to HTTPS.\n        include " + TLSRedirectFile(a.Name) + ";\n"
	}
	b.WriteString(appProxy(a, redirect))
	b.WriteString("}\n")
	if a.TLS != nil {
		fmt.Fprintf(&b, "server {\n    listen 443 ssl http2%s;\n    server_name %s;\n%s    access_log %s belay;\n", def, names, tlsServerLines(a.Name, a.TLS), AppAccessLog(a.Name))
		b.WriteString(appProxy(a, ""))
		b.WriteString("}\n")
	}
	fmt.Fprintf(&b, `# keepalived's app check: can this node serve the app through its own nginx,
# with the live routing? During a deploy's restart of the stable release the
# canary serves; a node whose own app died still serves through its peer.
server {
    listen 127.0.0.2:80;
    server_name %[2]s;
    access_log off;
    set $belay_pool stable;
    include %[3]s;
    location / {
        proxy_pass http://belay_%[1]s_$belay_pool;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_connect_timeout 300ms;
        proxy_read_timeout 2s;
        proxy_next_upstream error timeout;
        proxy_next_upstream_tries 2;
    }
}
`, a.Name, AppHealthHost(a.Name), AppRoutingFile(a.Name))
	return b.String()
}

// appProxy is the routed part of an app's server block, the same on 80 and 443.
func appProxy(a *App, redirect string) string {
	return fmt.Sprintf(`    # routing.conf picks the pool; the default keeps $belay_pool defined.
    set $belay_pool stable;
    include %[2]s;
    location / {
%[3]s        proxy_pass http://belay_%[1]s_$belay_pool;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $host;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto %[4]s;
        proxy_set_header X-Belay-Pool $belay_pool;
        # Members are on the private network (sub-millisecond connects): a dead
        # peer is given up on after 300 ms and the request retried on the next
        # (belay-route-watch marks a dead peer down within ~0.3 s, so this is
        # paid only in that window).
        proxy_connect_timeout 300ms;
        proxy_read_timeout 60s;
        # Only a failed connection or a timeout before any response counts
        # against a member and is retried; what the app answers (503 included)
        # passes through unchanged. nginx never retries POST/PATCH/LOCK once
        # sent (no non_idempotent), so no request is processed twice.
        proxy_next_upstream error timeout;
        proxy_next_upstream_tries 2;
    }
`, a.Name, AppRoutingFile(a.Name), redirect, forwardedProtoVar(a))
}

// forwardedProtoVar is the scheme an app server tells its app: its own, or
// on a cell's server the router's X-Forwarded-Proto (the map above).
func forwardedProtoVar(a *App) string {
	if a.Cell == "" {
		return "$scheme"
	}
	return "$belay_" + strings.ReplaceAll(a.Name, "-", "_") + "_forwarded_proto"
}

// AppStageFile is the last traffic stage root accepted for an app (JSON, the
// wire format of `belay host route`); the route watcher re-renders it.
func AppStageFile(app string) string { return "/etc/belay/nginx/" + app + "/stage.json" }

// InitialStage is the stage.json the roles ship: the stable stage over every
// group member, the same spec InitialHTTP and InitialRouting render (the
// contract test in deploy/traffic decodes it and compares).
func InitialStage(app string, port int, members []string) string {
	quoted := make([]string, len(members))
	for i, m := range members {
		quoted[i] = strconv.Quote(m)
	}
	return fmt.Sprintf(`{"app":%q,"port":%d,"stableAddrs":[%s],"stage":{"kind":"stable"}}`+"\n", app, port, strings.Join(quoted, ","))
}

// RouteWatchUnit marks unreachable upstream members down in nginx.
const RouteWatchUnit = hostcmd.RouteWatchUnit

const routeWatchUnit = `# Rendered by belay: marks dead upstream members down so no request waits on them.
[Unit]
Description=belay: route watcher (upstream members up/down in nginx)
After=nginx.service
Wants=nginx.service

[Service]
ExecStart=` + BelayBinary + ` host route-watch
Restart=always
RestartSec=1

[Install]
WantedBy=multi-user.target
`

// AppHealthHost is the Host under which nginx's loopback health server (on
// 127.0.0.2) proxies an app's health path with the live routing.
func AppHealthHost(app string) string { return "belay-app-health-" + app }

// AppRoutingFile is the deployer-owned nginx routing include of an app.
func AppRoutingFile(app string) string { return "/etc/belay/nginx/" + app + "/routing.conf" }
