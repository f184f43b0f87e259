package roles

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/belay-sh/belay/internal/safe"
	"github.com/belay-sh/belay/internal/shq"
	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/router"
)

// Host paths of the app role that callers (the deployer, the VIP commands) rely on.
const (
	// AppUser is the system user app releases run as.
	AppUser = "belay-app"
	// ClaimTokenFile holds the provider API token the VRRP ClaimCommand uses.
	ClaimTokenFile = "/etc/belay/vip-claim.token"
	// DiscoveryTokenFile holds the read-scoped token `belay vip peers` uses.
	DiscoveryTokenFile = "/etc/belay/vip-discovery.token"
	// PeersFile is where `belay vip peers --write` puts the group's other members,
	// one IPv4 address per line (keepalived.conf includes it inside unicast_peer).
	PeersFile = "/etc/keepalived/peers.conf"
	// KeepalivedScriptUser runs keepalived's track and notify scripts (never root).
	KeepalivedScriptUser = "keepalived_script"
	// NginxHealthURL is nginx's own liveness endpoint, answered on a loopback
	// address of its own so it never shadows an app's Host-routed traffic.
	NginxHealthURL = "http://127.0.0.2/belay-nginx-health"
	// BelayBinary is the belay CLI the image (or the cloud) installs on every server.
	BelayBinary = "/usr/local/bin/belay"
)

func init() {
	register(inventory.RoleApp, appContributor)
	register(inventory.RoleStandbyApp, appContributor)
}

// MasterMarker is the link-local address keepalived puts on lo of the MASTER
// when the provider moves the floating IP without an interface address (DO).
func MasterMarker(routerID int) string { return fmt.Sprintf("169.254.213.%d", routerID) }

// AppEnvFile is the EnvironmentFile of an app's units.
func AppEnvFile(app string) string { return "/etc/belay/" + app + ".env" }

// AppRoutingFile is the deployer-owned nginx routing include of an app.
func AppRoutingFile(app string) string { return "/etc/belay/nginx/" + app + "/routing.conf" }

// AppAccessLog is the access log (format `belay`) the deployer reads during a
// rollout and `belay logs` shows. It lives in AppLogDir, not beside Debian's
// logs: Debian's logrotate recreates /var/log/nginx/*.log as www-data:adm 0640,
// which the deploy user cannot read, and adm would open every system log to it.
func AppAccessLog(app string) string { return AppLogDir + "/" + app + ".access.log" }

// AppLogDir holds the apps' access logs: root-owned, readable by the deploy
// user's group only (0750 root:<deploy>); the files are root's and read-only
// to that group (nginx creates them 0644 in the closed directory, logrotate
// recreates them 0640 root:<deploy>, see appLogrotate).
const AppLogDir = "/var/log/nginx/belay"

// AppUnit and CanaryUnit name an app's systemd units.
func AppUnit(app string) string { return "belay-app@" + app + ".service" }

// CanaryUnit names the unit that runs an app's canary release on Port+1.
func CanaryUnit(app string) string { return "belay-canary@" + app + ".service" }

var (
	domainRE   = regexp.MustCompile(`^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$`)
	selectorRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:=/,!-]{0,254}$`)
	// A keepalived script line is split on spaces by keepalived, not a shell;
	// quotes and newlines would change its meaning.
	commandRE = regexp.MustCompile(`^/[^"\n\r\\]*$`)
)

// validateApp checks Spec.App for an app or standby-app host.
func validateApp(s *Spec) error {
	a := s.App
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("roles: "+format, args...)) }
	standbyRole := hasRole(s, inventory.RoleStandbyApp)
	if !appNameRE.MatchString(a.Name) {
		bad("Spec.App.Name: %q, expected at most 55 of a-z, 0-9, - (starting with a letter)", a.Name)
	}
	if a.Cell != "" && (!routerCellRE.MatchString(a.Cell) || router.CheckApp(a.Name) != nil) {
		bad("Spec.App.Cell: %q of app %q, expected a cell name ([a-z][a-z0-9-]{0,15}) of an app named like the router's (at most 40 characters)", a.Cell, a.Name)
	}
	if a.Port < 1024 || a.Port > 65534 {
		bad("Spec.App.Port: %d, expected 1024-65534 (the canary listens on Port+1)", a.Port)
	}
	// The rule config and inventory share: the path reaches keepalived's check
	// script and curl in shell commands.
	if err := safe.HealthPath(a.HealthPath); err != nil {
		bad("Spec.App.HealthPath: %v", err)
	}
	seen := map[string]bool{}
	for i, d := range a.Domains {
		if !domainRE.MatchString(d) {
			bad("Spec.App.Domains[%d]: %q, expected a lowercase domain name", i, d)
		}
		if seen[d] {
			bad("Spec.App.Domains[%d]: %q listed twice", i, d)
		}
		seen[d] = true
	}
	if err := validateTLS(a); err != nil {
		errs = append(errs, err)
	}
	if a.Standby != standbyRole {
		bad("Spec.App.Standby: %v, but the host's roles are %v (standby is true exactly for standby-app)", a.Standby, s.Roles)
	}
	if err := checkDatabaseURL(a.DatabaseURL); err != nil {
		bad("Spec.App.DatabaseURL: %v", err)
	}
	if _, _, err := resticTarget(a.ResticRepo); err != nil {
		bad("Spec.App.ResticRepo: %v", err)
	}
	if a.ResticPassword == "" || strings.ContainsAny(a.ResticPassword, "\n\r") {
		bad("Spec.App.ResticPassword: expected a non-empty single-line password")
	}
	if err := checkPrivateKey(a.BackupKey.PrivatePEM, a.BackupKey.Public); err != nil {
		bad("Spec.App.BackupKey: %v", err)
	}
	if err := checkPublicKey(a.RepoHostKey); err != nil {
		bad("Spec.App.RepoHostKey: %v", err)
	}
	switch {
	case a.Standby && a.VRRP != nil:
		bad("Spec.App.VRRP: set on a standby server, expected nil (no keepalived on the standby site)")
	case !a.Standby && a.VRRP == nil:
		bad("Spec.App.VRRP: nil, expected the VRRP group of app %s", a.Name)
	case a.VRRP != nil:
		errs = append(errs, validateVRRP(s, a.VRRP))
	}
	return errors.Join(errs...)
}

func validateVRRP(s *Spec, v *VRRP) error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("roles: "+format, args...)) }
	if v.RouterID < 1 || v.RouterID > 255 {
		bad("Spec.App.VRRP.RouterID: %d, expected 1-255", v.RouterID)
	}
	if v.Priority < 1 || v.Priority > 254 {
		bad("Spec.App.VRRP.Priority: %d, expected 1-254", v.Priority)
	}
	self := s.Net.PrivateAddress
	seen := map[string]bool{}
	for i, p := range v.Peers {
		a, err := netip.ParseAddr(p)
		switch {
		case err != nil || !a.Is4():
			bad("Spec.App.VRRP.Peers[%d]: %q, expected an IPv4 address", i, p)
		case p == self:
			bad("Spec.App.VRRP.Peers[%d]: %s is this host's own address", i, p)
		case seen[p]:
			bad("Spec.App.VRRP.Peers[%d]: %s listed twice", i, p)
		}
		seen[p] = true
	}
	if len(v.Peers) > 0 && self == "" {
		bad("Spec.Net.PrivateAddress: empty, but VRRP.Peers are pinned (unicast_src_ip needs this host's address)")
	}
	if d := v.PeerDiscovery; d != nil {
		if len(v.Peers) > 0 {
			bad("Spec.App.VRRP.PeerDiscovery: set together with Peers, expected one of them")
		}
		if d.Provider != "digitalocean" && d.Provider != "hetzner" {
			bad("Spec.App.VRRP.PeerDiscovery.Provider: %q, expected digitalocean or hetzner", d.Provider)
		}
		if !selectorRE.MatchString(d.Selector) {
			bad("Spec.App.VRRP.PeerDiscovery.Selector: %q, expected a tag or label selector", d.Selector)
		}
		if d.Token == "" || strings.ContainsAny(d.Token, "\n\r") {
			bad("Spec.App.VRRP.PeerDiscovery.Token: expected a non-empty single-line API token")
		}
	}
	if v.VIP != "" {
		if a, err := netip.ParseAddr(v.VIP); err != nil || !a.Is4() {
			bad("Spec.App.VRRP.VIP: %q, expected an IPv4 address or \"\"", v.VIP)
		}
		if !ifaceRE.MatchString(v.VIPInterface) {
			bad("Spec.App.VRRP.VIPInterface: %q, expected the interface keepalived adds the VIP to", v.VIPInterface)
		}
	}
	if v.ClaimCommand != "" && !commandRE.MatchString(v.ClaimCommand) {
		bad("Spec.App.VRRP.ClaimCommand: %q, expected an absolute command without quotes, backslashes or line breaks", v.ClaimCommand)
	}
	if strings.ContainsAny(v.ClaimToken, "\n\r") {
		bad("Spec.App.VRRP.ClaimToken: has a line break")
	}
	if v.AdvertInterval != 0 && (v.AdvertInterval < 0.01 || v.AdvertInterval > 40.95) {
		bad("Spec.App.VRRP.AdvertInterval: %g, expected 0.01-40.95 seconds (VRRPv3), or 0 for the 0.1 s default", v.AdvertInterval)
	}
	return errors.Join(errs...)
}

// checkDatabaseURL accepts a single-line libpq URL.
func checkDatabaseURL(u string) error {
	if !strings.HasPrefix(u, "postgresql://") && !strings.HasPrefix(u, "postgres://") {
		return errors.New("expected a postgresql:// URL")
	}
	if strings.ContainsAny(u, "\n\r\"'\\ ") {
		return errors.New("has a line break, quote, backslash or space")
	}
	return nil
}

// checkPrivateKey accepts a seed-derived ed25519 key pair whose halves match.
func checkPrivateKey(privPEM, public string) error {
	if privPEM == "" {
		return errors.New("PrivatePEM is empty")
	}
	pub, err := publicOf(privPEM)
	if err != nil {
		return err
	}
	if pub != strings.TrimSpace(public) {
		return errors.New("Public does not match PrivatePEM")
	}
	return nil
}

// resticTarget splits an sftp restic repository "sftp:user@host:/path".
func resticTarget(repo string) (userHost, path string, err error) {
	rest, ok := strings.CutPrefix(repo, "sftp:")
	if !ok {
		return "", "", fmt.Errorf("%q, expected sftp:USER@HOST:/PATH", repo)
	}
	userHost, path, ok = strings.Cut(rest, ":")
	user, host, okAt := strings.Cut(userHost, "@")
	if !ok || !okAt || !userRE.MatchString(user) || !strings.HasPrefix(path, "/") || strings.ContainsAny(path, " \n\"'\\") {
		return "", "", fmt.Errorf("%q, expected sftp:USER@HOST:/PATH", repo)
	}
	if a, err := netip.ParseAddr(host); err != nil || !a.Is4() {
		if !hostnameRE.MatchString(host) && !domainRE.MatchString(host) {
			return "", "", fmt.Errorf("%q: host %q is not an IPv4 address or host name", repo, host)
		}
	}
	return userHost, path, nil
}

// appContributor renders an app server (primary: VRRP group member; standby:
// everything installed, nothing serving until a site switch).
func appContributor(s *Spec, c *CloudConfig) error {
	if err := validateApp(s); err != nil {
		return err
	}
	a := s.App
	name := a.Name
	// The deployer prints the unit's recent log when a health check fails.
	for i, u := range c.Users {
		if du, ok := u.(User); ok && du.Name == s.DeployUser {
			du.Groups = "systemd-journal"
			c.Users[i] = du
		}
	}
	c.Users = append(c.Users, User{
		Name: AppUser, Gecos: "belay app releases", Shell: "/usr/sbin/nologin",
		System: true, LockPasswd: true, HomeDir: "/nonexistent", NoCreateHome: true,
	})
	files := []File{
		{Path: AppEnvFile(name), Content: appEnv(a), Owner: "root:" + AppUser, Permissions: "0640", Defer: true},
		{Path: "/usr/local/bin/belay-app-run", Content: appRunScript, Owner: "root:root", Permissions: "0755"},
		{Path: "/etc/systemd/system/belay-app@.service", Content: appUnit("stable"), Owner: "root:root", Permissions: "0644"},
		{Path: "/etc/systemd/system/belay-canary@.service", Content: appUnit("canary"), Owner: "root:root", Permissions: "0644"},
		{Path: "/etc/systemd/system/belay-release@.service", Content: releaseUnit, Owner: "root:root", Permissions: "0644"},
		{Path: "/etc/systemd/system/" + AppUnit(name) + ".d/10-belay-port.conf", Content: portDropIn(a.Port), Owner: "root:root", Permissions: "0644"},
		{Path: "/etc/systemd/system/" + CanaryUnit(name) + ".d/10-belay-port.conf", Content: portDropIn(a.Port + 1), Owner: "root:root", Permissions: "0644"},
		{Path: "/etc/sudoers.d/belay-" + name, Content: sudoers(s.DeployUser, name, a.Cell != ""), Owner: "root:root", Permissions: "0440"},
		{Path: "/etc/nginx/conf.d/00-belay-logformat.conf", Content: nginxLogFormat, Owner: "root:root", Permissions: "0644"},
		// Written (empty) before nginx is installed, so AppLogDir exists when the
		// package first starts nginx with this app's config; runcmd closes the directory.
		{Path: AppAccessLog(name), Content: "", Owner: "root:root", Permissions: "0644"},
		{Path: "/etc/logrotate.d/belay-nginx", Content: appLogrotate(s.DeployUser), Owner: "root:root", Permissions: "0644"},
		{Path: "/etc/nginx/conf.d/belay-health.conf", Content: nginxHealthConf, Owner: "root:root", Permissions: "0644"},
		{Path: "/etc/nginx/conf.d/belay-" + name + ".conf", Content: nginxAppConf(s), Owner: "root:root", Permissions: "0644"},
		// Root-owned: the deploy user hands stages to `belay host route`, which
		// renders these; it never writes a file nginx (root) parses.
		{Path: AppHTTPFile(name), Content: InitialHTTP(name, a.Port, groupMembers(s)), Owner: "root:root", Permissions: "0644"},
		{Path: AppRoutingFile(name), Content: InitialRouting(name), Owner: "root:root", Permissions: "0644"},
		{Path: AppStageFile(name), Content: InitialStage(name, a.Port, groupMembers(s)), Owner: "root:root", Permissions: "0644"},
		{Path: "/etc/systemd/system/" + RouteWatchUnit, Content: routeWatchUnit, Owner: "root:root", Permissions: "0644"},
	}
	c.WriteFiles = append(c.WriteFiles, files...)
	c.WriteFiles = append(c.WriteFiles, resticClientFiles(s)...)

	dir := func(path, owner, mode string) []string {
		o, g, _ := strings.Cut(owner, ":")
		return []string{"install", "-d", "-m", mode, "-o", o, "-g", g, path}
	}
	srv := "/srv/" + name
	c.Runcmd = append(c.Runcmd,
		dir(srv, s.DeployUser+":"+s.DeployUser, "0755"),
		dir(srv+"/releases", s.DeployUser+":"+s.DeployUser, "0755"),
		// The app writes uploads etc. here; the deploy user manages it too.
		dir(srv+"/shared", s.DeployUser+":"+AppUser, "2775"),
		dir("/etc/belay/nginx/"+name, "root:root", "0755"),
		dir(AppLogDir, "root:"+s.DeployUser, "0750"),
		// Debian's default site would answer for unknown hosts and claims default_server.
		[]string{"rm", "-f", "/etc/nginx/sites-enabled/default"},
	)
	addTLS(s, c)
	c.Runcmd = append(c.Runcmd,
		[]string{"systemctl", "daemon-reload"},
		[]string{"systemctl", "enable", "nginx.service"},
		[]string{"sh", "-c", "nginx -t && systemctl restart nginx.service"},
		[]string{"systemctl", "enable", "--now", RouteWatchUnit},
	)
	startACME(s, c)
	if !a.Standby {
		// Enabled but idle until the first deploy (ConditionPathExists).
		c.Runcmd = append(c.Runcmd, []string{"systemctl", "enable", AppUnit(name)})
	}
	c.Runcmd = append(c.Runcmd,
		[]string{"systemctl", "enable", "belay-restic-backup.timer"},
		[]string{"systemctl", "start", "belay-restic-backup.timer"},
	)
	if a.VRRP != nil {
		addKeepalived(s, c)
	}
	return nil
}

func appEnv(a *App) string {
	return "# Rendered by belay: environment of " + a.Name + "'s releases (secret).\n" +
		"DATABASE_URL=" + a.DatabaseURL + "\n"
}

func portDropIn(port int) string {
	return "[Service]\nEnvironment=PORT=" + strconv.Itoa(port) + "\n"
}

// appUnit renders belay-app@.service (slot stable) or belay-canary@.service.
func appUnit(slot string) string {
	link := "current"
	desc := "stable release"
	if slot == "canary" {
		link, desc = "canary", "canary release"
	}
	return `# Rendered by belay: the ` + desc + ` of app %i (PORT from the instance drop-in).
[Unit]
Description=belay app %i (` + desc + `)
After=network-online.target
Wants=network-online.target
# Idle, not failed, until the deployer has put a release in place.
ConditionPathExists=/srv/%i/` + link + `/start
StartLimitIntervalSec=60
StartLimitBurst=10

[Service]
Type=simple
User=` + AppUser + `
Group=` + AppUser + `
EnvironmentFile=/etc/belay/%i.env
Environment=BELAY_SLOT=` + slot + `
ExecStart=/usr/local/bin/belay-app-run %i ` + slot + `
Restart=on-failure
RestartSec=2
# Graceful stop: SIGTERM to the app, SIGKILL to what is left after 30 s.
KillMode=mixed
KillSignal=SIGTERM
TimeoutStopSec=30
SyslogIdentifier=belay-` + slot + `-%i
NoNewPrivileges=yes
PrivateTmp=yes
ProtectSystem=full
ProtectHome=yes

[Install]
WantedBy=multi-user.target
`
}

// sudoers lets the deploy user run exactly the unit and nginx commands a rollout needs.
func sudoers(user, app string, cell bool) string {
	var cmds []string
	for _, unit := range []string{AppUnit(app), CanaryUnit(app)} {
		// reset-failed: a crash-looped unit's start rate limit must not block
		// the next deploy or rollback. No `status` (as root it may start a
		// pager), no enable/disable/reload: the deployer uses none of them.
		for _, verb := range []string{"start", "stop", "restart", "is-active", "reset-failed"} {
			cmds = append(cmds, "/usr/bin/systemctl "+verb+" "+unit)
		}
	}
	cmds = append(cmds, releaseSudo(app)...)
	// Traffic changes go through one root helper that validates the stage and
	// renders nginx's files itself (stdin is data, the app is pinned here).
	cmds = append(cmds, BelayBinary+" host route "+app)
	// belay exec: the helper validates the app, reads its environment and runs
	// the command as belay-app with no_new_privs, never as root (package
	// hostexec). The command is the caller's by design; "--" is pinned so no
	// argument can be taken for a helper flag.
	cmds = append(cmds, BelayBinary+" host exec "+app+" -- *")
	if cell {
		// A cell server: belay shop move runs the release's move hooks here.
		cmds = append(cmds, MoveHookCommands(app)...)
	}
	alias := "BELAY_" + strings.ToUpper(strings.ReplaceAll(app, "-", "_"))
	return "# Rendered by belay: exact commands the deploy user may run as root for app " + app + ".\n" +
		"Cmnd_Alias " + alias + " = " + strings.Join(cmds, ", \\\n    ") + "\n" +
		user + " ALL=(root) NOPASSWD: " + alias + "\n"
}

// appLogrotate rotates the apps' access logs (Debian's nginx rule covers
// /var/log/nginx/*.log only, not this directory). The canary probe reads a
// rotated log from its start, so rotation mid-stage loses no verdict.
func appLogrotate(deployUser string) string {
	return `# Rendered by belay: the apps' access logs, readable by the deploy user's group only.
` + AppLogDir + `/*.log {
	daily
	missingok
	rotate 14
	compress
	delaycompress
	notifempty
	create 0640 root ` + deployUser + `
	sharedscripts
	postrotate
		invoke-rc.d nginx rotate >/dev/null 2>&1 || true
	endscript
}
`
}

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
		fmt.Fprintf(&b, "server {\n    listen 443 ssl http2%s;\n    server_name %s;\n%s    access_log %s belay;\n", def, names, tlsServerLines(a), AppAccessLog(a.Name))
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
        proxy_set_header X-Forwarded-Proto $scheme;
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
`, a.Name, AppRoutingFile(a.Name), redirect)
}

// addKeepalived renders the VRRP group member: keepalived.conf, its script
// user, the provider tokens, and (DigitalOcean) boot-time peer discovery.
func addKeepalived(s *Spec, c *CloudConfig) {
	addKeepalivedWith(s, c, s.App.VRRP, keepalivedConf(s))
}

// addKeepalivedWith renders a VRRP member with its keepalived.conf conf.
func addKeepalivedWith(s *Spec, c *CloudConfig, v *VRRP, conf string) {
	c.Users = append(c.Users, User{
		Name: KeepalivedScriptUser, Gecos: "keepalived track/notify scripts", Shell: "/usr/sbin/nologin",
		System: true, LockPasswd: true, HomeDir: "/nonexistent", NoCreateHome: true,
	})
	c.WriteFiles = append(c.WriteFiles, File{Path: "/etc/keepalived/keepalived.conf", Content: conf, Owner: "root:root", Permissions: "0644"})
	if v.ClaimToken != "" {
		c.WriteFiles = append(c.WriteFiles, File{Path: ClaimTokenFile, Content: v.ClaimToken + "\n", Owner: "root:" + KeepalivedScriptUser, Permissions: "0640", Defer: true})
	}
	if d := v.PeerDiscovery; d != nil {
		c.WriteFiles = append(c.WriteFiles,
			File{Path: DiscoveryTokenFile, Content: d.Token + "\n", Owner: "root:root", Permissions: "0600"},
			File{Path: "/usr/local/bin/belay-vrrp-peers", Content: peersScript(s.App, d), Owner: "root:root", Permissions: "0755"},
			File{Path: "/etc/systemd/system/belay-vrrp-peers.service", Content: peersService, Owner: "root:root", Permissions: "0644"},
			File{Path: "/etc/systemd/system/belay-vrrp-peers-refresh.service", Content: peersRefreshService, Owner: "root:root", Permissions: "0644"},
			File{Path: "/etc/systemd/system/belay-vrrp-peers-refresh.timer", Content: peersRefreshTimer, Owner: "root:root", Permissions: "0644"},
			File{Path: "/etc/systemd/system/keepalived.service.d/10-belay-peers.conf", Content: keepalivedPeersDropIn, Owner: "root:root", Permissions: "0644"},
		)
		c.Runcmd = append(c.Runcmd,
			[]string{"systemctl", "daemon-reload"},
			[]string{"systemctl", "enable", "belay-vrrp-peers.service", "belay-vrrp-peers-refresh.timer"},
			[]string{"systemctl", "start", "belay-vrrp-peers.service"},
			[]string{"systemctl", "start", "belay-vrrp-peers-refresh.timer"},
		)
	}
	c.Runcmd = append(c.Runcmd,
		[]string{"systemctl", "enable", "keepalived.service"},
		[]string{"systemctl", "restart", "keepalived.service"},
	)
}

func keepalivedConf(s *Spec) string {
	a := s.App
	return vrrpConf(s, a.VRRP, strings.ReplaceAll(a.Name, "-", "_"), "app "+a.Name, true, AppHealthHost(a.Name), a.HealthPath)
}

// vrrpConf renders a keepalived.conf for VRRP group member v (instance
// belay_<instance>); with appCheck the member also tracks the app through its
// own nginx (Host healthHost, path healthPath), else only nginx itself.
func vrrpConf(s *Spec, v *VRRP, instance, what string, appCheck bool, healthHost, healthPath string) string {
	advert := v.AdvertInterval
	if advert == 0 {
		advert = 0.1
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Rendered by belay: %s in %s's VRRP group (VRRPv3, unicast, no preemption).\n", s.Hostname, what)
	fmt.Fprintf(&b, `global_defs {
    router_id %s
    vrrp_version 3
    # Scripts run as an unprivileged user and must not be writable by others.
    enable_script_security
    script_user %s
}

vrrp_script belay_nginx {
    script "/usr/bin/curl -fsS -m 1 -o /dev/null %s"
    interval 1
    timeout 2
    fall 2
    rise 2
}
`, s.Hostname, KeepalivedScriptUser, NginxHealthURL)
	if appCheck {
		fmt.Fprintf(&b, `
vrrp_script belay_app {
    script "/usr/bin/curl -fsS -m 1 -o /dev/null -H Host:%s http://127.0.0.2%s"
    interval 1
    timeout 2
    fall 3
    rise 2
}
`, healthHost, healthPath)
	}
	fmt.Fprintf(&b, `
vrrp_instance belay_%s {
    # All members start BACKUP with nopreempt: a recovered node never takes the
    # VIP back, so one failure moves it once.
    state BACKUP
    nopreempt
    interface %s
    virtual_router_id %d
    priority %d
    advert_int %s
`, instance, s.Net.PrivateInterface, v.RouterID, v.Priority, strconv.FormatFloat(advert, 'f', -1, 64))
	if s.Net.PrivateAddress != "" {
		fmt.Fprintf(&b, "    unicast_src_ip %s\n", s.Net.PrivateAddress)
	}
	// Adverts only count from the listed peers (VRRPv3 has no authentication).
	b.WriteString("    check_unicast_src\n    unicast_peer {\n")
	if v.PeerDiscovery != nil {
		fmt.Fprintf(&b, "        # Found at boot from the %s API (belay-vrrp-peers.service).\n        include %s\n", v.PeerDiscovery.Provider, PeersFile)
	}
	for _, p := range sortedAddrs(v.Peers) {
		fmt.Fprintf(&b, "        %s\n", p)
	}
	b.WriteString("    }\n")
	if v.VIP != "" {
		fmt.Fprintf(&b, "    virtual_ipaddress {\n        %s/32 dev %s\n    }\n", v.VIP, v.VIPInterface)
	} else {
		// The provider routes the floating IP (ClaimCommand), but keepalived
		// refuses an instance without an address: a link-local marker on lo
		// shows which member is MASTER (ip -br addr show lo) and reaches no network.
		fmt.Fprintf(&b, "    virtual_ipaddress {\n        %s/32 dev lo scope link\n    }\n", MasterMarker(v.RouterID))
	}
	if appCheck {
		b.WriteString("    # A sick node (nginx or the app failing) goes to FAULT and gives up the VIP.\n")
		b.WriteString("    track_script {\n        belay_nginx\n        belay_app\n    }\n")
	} else {
		b.WriteString("    # A sick node (nginx failing) goes to FAULT and gives up the VIP.\n")
		b.WriteString("    track_script {\n        belay_nginx\n    }\n")
	}
	if v.ClaimCommand != "" {
		fmt.Fprintf(&b, "    # Moves the provider's floating IP to this node.\n    notify_master \"%s\"\n", v.ClaimCommand)
	}
	b.WriteString("}\n")
	return b.String()
}

func sortedAddrs(in []string) []string {
	out := append([]string(nil), in...)
	sort.Slice(out, func(i, j int) bool {
		a, _ := netip.ParseAddr(out[i])
		b, _ := netip.ParseAddr(out[j])
		return a.Less(b)
	})
	return out
}

// peersScript asks the provider API for the group and installs the result
// atomically; keepalived is reloaded only when the member list changed.
func peersScript(a *App, d *PeerDiscovery) string {
	acme := ""
	// a is nil on a router (keepalived without an app): no ACME peers there.
	if a != nil && a.TLS != nil && a.TLS.Mode == TLSModeACME {
		acme = acmePeersRefresh(a.Name)
	}
	return `#!/bin/sh
# Rendered by belay: refresh keepalived's unicast peers from the ` + d.Provider + ` API.
set -eu
tmp=$(mktemp ` + PeersFile + `.XXXXXX)
trap 'rm -f "$tmp"' EXIT
` + BelayBinary + ` vip peers --provider ` + d.Provider + ` --selector ` + shq.Quote(d.Selector) + ` --token-file ` + DiscoveryTokenFile + ` --write "$tmp"
chmod 0644 "$tmp"
if ! cmp -s "$tmp" ` + PeersFile + `; then
    mv "$tmp" ` + PeersFile + `
    if systemctl -q is-active keepalived.service; then
        systemctl reload keepalived.service
    fi
fi
` + acme
}

const peersService = `# Rendered by belay: keepalived needs its unicast peers before it starts.
[Unit]
Description=belay: find this app group's VRRP peers
Wants=network-online.target
After=network-online.target
Before=keepalived.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/bin/belay-vrrp-peers
Restart=on-failure
RestartSec=5

[Install]
WantedBy=multi-user.target
`

const peersRefreshService = `# Rendered by belay: pick up replaced group members.
[Unit]
Description=belay: refresh this app group's VRRP peers
After=network-online.target

[Service]
Type=oneshot
ExecStart=/usr/local/bin/belay-vrrp-peers
`

const peersRefreshTimer = `# Rendered by belay.
[Unit]
Description=belay: refresh VRRP peers every 5 minutes

[Timer]
OnBootSec=5min
OnUnitActiveSec=5min
RandomizedDelaySec=30

[Install]
WantedBy=timers.target
`

// keepalivedPeersDropIn keeps keepalived from starting alone (and so claiming
// the VIP next to a live master) before the peers are known.
const keepalivedPeersDropIn = `# Rendered by belay.
[Unit]
Requires=belay-vrrp-peers.service
After=belay-vrrp-peers.service
`

// resticClientFiles back up /srv/<app>/shared hourly to the app's restic
// repository on the repo host, over sftp with a pinned host key.
func resticClientFiles(s *Spec) []File {
	a := s.App
	userHost, _, _ := resticTarget(a.ResticRepo)
	_, host, _ := strings.Cut(userHost, "@")
	knownHosts := "/etc/belay/restic-known_hosts"
	keyFile := "/etc/belay/restic-backup.key"
	passFile := "/etc/belay/restic-" + a.Name + ".pass"
	sshCmd := "ssh -i " + keyFile + " -o IdentitiesOnly=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=" + knownHosts +
		" -o GlobalKnownHostsFile=/dev/null -o BatchMode=yes -o ServerAliveInterval=15 " + userHost + " -s sftp"
	script := `#!/bin/sh
# Rendered by belay: snapshot /srv/` + a.Name + `/shared into the app's restic repository.
set -eu
export RESTIC_REPOSITORY=` + shq.Quote(a.ResticRepo) + `
export RESTIC_PASSWORD_FILE=` + passFile + `
export RESTIC_CACHE_DIR=/var/cache/belay-restic
exec restic -o sftp.command=` + shq.Quote(sshCmd) + ` backup --host ` + shq.Join(s.Hostname, "--tag", "belay", "--tag", "app="+a.Name, "/srv/"+a.Name+"/shared") + `
`
	return []File{
		{Path: keyFile, Content: a.BackupKey.PrivatePEM, Owner: "root:root", Permissions: "0600"},
		{Path: knownHosts, Content: host + " " + strings.TrimSpace(a.RepoHostKey) + "\n", Owner: "root:root", Permissions: "0644"},
		{Path: passFile, Content: a.ResticPassword + "\n", Owner: "root:root", Permissions: "0600"},
		{Path: "/usr/local/bin/belay-restic-backup", Content: script, Owner: "root:root", Permissions: "0755"},
		{Path: "/etc/systemd/system/belay-restic-backup.service", Content: `# Rendered by belay.
[Unit]
Description=belay: restic snapshot of /srv/` + a.Name + `/shared
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
ExecStart=/usr/local/bin/belay-restic-backup
Nice=10
IOSchedulingClass=idle
`, Owner: "root:root", Permissions: "0644"},
		{Path: "/etc/systemd/system/belay-restic-backup.timer", Content: `# Rendered by belay.
[Unit]
Description=belay: hourly restic snapshot of /srv/` + a.Name + `/shared

[Timer]
OnCalendar=hourly
RandomizedDelaySec=10min
Persistent=true

[Install]
WantedBy=timers.target
`, Owner: "root:root", Permissions: "0644"},
	}
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
const RouteWatchUnit = "belay-route-watch.service"

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
