// Package traffic renders the nginx routing of one app for one rollout stage:
// which requests go to the stable release and which to the canary. It is pure:
// Render returns file contents; the deployer writes them, runs `nginx -t` and
// reloads nginx (see docs/canary.md).
//
// # Files
//
// nginx allows map, geo, split_clients and upstream only at http level, while the
// host layout includes routing.conf inside the app's server block. So a stage is
// two files in /etc/belay/nginx/<app>/ (owned by the deploy user):
//
//   - http.conf    (Files.HTTP)    http level: upstreams belay_<app>_stable and
//     belay_<app>_canary, and the maps that compute the per-app pool variable
//     (preceded, in stages with maps, by map_hash_bucket_size/map_hash_max_size,
//     so nothing before the include in the http block may define a map).
//   - routing.conf (Files.Routing) server level: one `set $belay_pool ...;`.
//
// # What the base config (roles) must contain
//
// /etc/nginx/conf.d/00-belay.conf, once per server (a log_format may be defined
// only once, and conf.d files are included in name order, so it sorts first):
//
//	log_format belay escape=default '$time_iso8601\t$remote_addr\t$status\t$request_time\t$upstream_addr\t$upstream_status\t$upstream_response_time\t$belay_pool\t"$request"';
//
// /etc/nginx/conf.d/belay-<app>.conf, per app (HTTPInclude and RoutingInclude
// give the two include lines). It must NOT define the upstreams belay_<app>_stable
// and belay_<app>_canary itself: http.conf does (nginx refuses duplicates), because
// the canary upstream lists only the canary hosts and only the deployer knows them:
//
//	include /etc/belay/nginx/<app>/http.conf;
//	server {
//	    listen 80;
//	    server_name <domains>;
//	    access_log /var/log/nginx/belay/<app>.access.log belay;
//	    include /etc/belay/nginx/<app>/routing.conf;
//	    location / {
//	        proxy_pass http://belay_<app>_$belay_pool;
//	        proxy_http_version 1.1;
//	        proxy_set_header Connection "";
//	        proxy_set_header Host $host;
//	        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
//	        proxy_set_header X-Forwarded-Proto $scheme;
//	    }
//	}
//
// proxy_pass must use the variable form: nginx then looks the name up among the
// upstream groups at request time, so a stage change needs no edit of the base
// file, and belay_<app>_canary need not exist while the app is stable. Roles ship
// the initial files with exactly the content Render gives for the stable stage
// without canary hosts (see docs/canary.md for the literal text). The contract
// test TestRolesBaseConfigWiring runs the roles' real output through `nginx -t`.
//
// The first line of both files is "# Managed by belay deploy; rewritten at every
// stage change. App <app>, stage <Stage.String()>." — `belay deploy status` reads
// the live stage from it.
//
// # Stages
//
// Stable sends everything to the stable pool; Whitelist sends matching requests
// (shop by query parameter, header or cookie; client IP/CIDR; extra header or
// cookie values) to the canary; Percent sends a sticky share of clients (plus the
// whitelist) to the canary; Full sends everything to the canary. The Percent split
// hashes the same key with the same salt at every step, so the clients in the 10 %
// are a subset of those in the 50 %: nobody flips back and forth during a rollout.
package traffic
