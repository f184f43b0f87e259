package roles

import (
	"strconv"
	"strings"

	"github.com/belay-sh/belay/inventory"
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

// AppEnvFile is the EnvironmentFile of an app's units.
func AppEnvFile(app string) string { return "/etc/belay/" + app + ".env" }

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
	addTLS(appTLSSite(s), c)
	c.Runcmd = append(c.Runcmd,
		[]string{"systemctl", "daemon-reload"},
		[]string{"systemctl", "enable", "nginx.service"},
		[]string{"sh", "-c", "nginx -t && systemctl restart nginx.service"},
		[]string{"systemctl", "enable", "--now", RouteWatchUnit},
	)
	startACME(appTLSSite(s), c)
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
