package converge

import (
	"path"
	"strings"

	"github.com/belay-sh/belay/hostcmd"
	"github.com/belay-sh/belay/roles"
)

// Cmd is one root command on the host, as argv (no shell).
type Cmd []string

// Effect is what a changed file needs on its host.
type Effect struct {
	// Skip: the roles only seed this file at first boot; another owner (the
	// deployer's root helper, a backup job, converge's own key) keeps it after.
	Skip bool
	// Validate runs after the new files are in place and before anything is
	// activated; a failure restores the host's previous files.
	Validate []Cmd
	// Activate makes the running services pick the change up, in Order.
	Activate []Cmd
	// Note tells the operator what converge deliberately does not do.
	Note string
}

// Activation order: daemon-reload before any unit restart; the firewall
// before the services behind it; PostgreSQL last.
var activateOrder = []string{"daemon-reload", "nft", "ssh", "nginx", "keepalived", "journald", "timesyncd", "timer", "route-watch", "restic", "postgres", roles.AgentInstallName}

const pgPort = "5432"

var (
	daemonReload = Cmd{"systemctl", "daemon-reload"}
	pgReload     = Cmd{"runuser", "-u", "postgres", "--", "psql", "-X", "-q", "-p", pgPort, "-d", "postgres", "-c", "SELECT pg_reload_conf()"}
)

// EffectOf is the table path → checks and reloads. Unchanged services are
// never touched: only the effects of changed files run.
func EffectOf(p string) Effect {
	dir, base := path.Split(p)
	switch {
	case p == roles.ConvergePubFile,
		strings.HasPrefix(p, "/etc/belay/nginx/"),                                       // http/routing.conf, stage.json: belay host route's
		strings.HasPrefix(p, "/var/lib/belay/"),                                         // state the backup jobs keep
		strings.HasPrefix(p, "/var/log/"),                                               // log placeholders: never truncate a live log
		strings.HasPrefix(p, "/etc/belay/router/") && strings.HasSuffix(p, "/map.conf"), // belay host router-sync's
		p == "/etc/belay/postgresql/bootstrap.sql":                                      // run once, at cluster creation
		return Effect{Skip: true}
	case p == "/etc/nftables.conf":
		return Effect{Validate: []Cmd{{"nft", "-c", "-f", p}}, Activate: []Cmd{{"nft", "-f", p}}}
	case dir == "/etc/ssh/sshd_config.d/":
		return Effect{Validate: []Cmd{{"sshd", "-t"}}, Activate: []Cmd{{"systemctl", "reload", "ssh.service"}}}
	case dir == "/etc/nginx/conf.d/":
		return Effect{Validate: []Cmd{{"nginx", "-t", "-q"}}, Activate: []Cmd{{"systemctl", "reload", "nginx.service"}}}
	case p == "/etc/logrotate.d/belay-nginx":
		return Effect{} // read by logrotate at its next run
	case strings.HasPrefix(p, "/etc/belay/router/") && (base == "cells.conf" || base == "db.conf"):
		// Read by router-sync (cells.conf at every re-read, the DSN at each
		// connect): a restart applies both now and re-renders map.conf;
		// nginx keeps routing from the loaded map meanwhile.
		return Effect{Activate: []Cmd{{"systemctl", "try-restart", "belay-router-sync@" + path.Base(dir) + ".service"}}}
	case strings.HasPrefix(p, "/etc/belay/tls/"), strings.HasPrefix(p, "/etc/belay/router/"):
		// A custom certificate, the ACME peers, a router's cells: nginx reads them.
		return Effect{Validate: []Cmd{{"nginx", "-t", "-q"}}, Activate: []Cmd{{"systemctl", "reload", "nginx.service"}}}
	case p == "/etc/keepalived/keepalived.conf":
		return Effect{Validate: []Cmd{{"keepalived", "-t", "-f", p}}, Activate: []Cmd{{"systemctl", "reload", "keepalived.service"}}}
	case dir == "/etc/sudoers.d/":
		return Effect{Validate: []Cmd{{"visudo", "-c", "-q", "-f", p}}}
	case p == "/etc/systemd/journald.conf.d/10-belay.conf":
		return Effect{Activate: []Cmd{{"systemctl", "restart", "systemd-journald.service"}}}
	case p == "/etc/systemd/timesyncd.conf.d/10-belay.conf":
		return Effect{Activate: []Cmd{{"systemctl", "try-restart", "systemd-timesyncd.service"}}}
	case strings.HasPrefix(p, "/etc/systemd/system/"):
		return unitEffect(strings.TrimPrefix(p, "/etc/systemd/system/"))
	case p == "/etc/belay/postgresql/pg_hba.belay.conf":
		// belay-db-setup splices the block into PGDATA's pg_hba.conf (as the
		// unit's ExecStartPre does); a reload applies it without a restart.
		return Effect{Activate: []Cmd{{"runuser", "-u", "postgres", "--", roles.DBSetupScript, "config"}, pgReload}}
	case strings.HasPrefix(p, "/etc/belay/postgresql/") && strings.HasSuffix(p, ".conf"):
		return Effect{Activate: []Cmd{pgReload},
			Note: "PostgreSQL reloaded, not restarted: a setting that needs a restart (pg_settings.pending_restart) waits for the next switchover"}
	case p == roles.DBSetupScript:
		return Effect{Note: "belay-db-setup changed: its pg_autoctl create arguments (e.g. --replication-quorum from belay:database.synchronous) only apply when a node is created; " +
			"on a running formation set them with `pg_autoctl set node replication-quorum`" +
			" on each data node (see docs/ha-engine.md)"}
	case p == roles.AgentFile:
		// belay:agent changed: install the binary it names (download, SHA-256
		// checked, renamed into place), as first boot does. Last, so a failed
		// download restores the file after every other change was checked.
		return Effect{Activate: []Cmd{roles.AgentInstallCmd()}}
	case p == roles.ResticAppsFile:
		// An app added or removed: belay-restic-maintain creates its user and
		// repository (or takes the user out of the restic group).
		return Effect{Activate: []Cmd{{"systemctl", "start", "--no-block", "belay-restic-maintain.service"}}}
	case p == roles.PgBackRestStanzasFile:
		// A dedicated cell's stanza added: the first-backup job (re)runs,
		// creates the new stanza once its primary answers and takes its
		// first full backup; stanzas with a full are skipped.
		return Effect{Activate: []Cmd{{"systemctl", "restart", "--no-block", hostcmd.FirstBackupUnit}}}
	case strings.HasPrefix(p, "/etc/belay/") && strings.HasSuffix(p, ".env"):
		return Effect{Note: "the app reads its environment when it starts: the next deploy (or restart) applies it"}
	}
	// Keys, passwords, tokens, pgBackRest and restic config, scripts: read by
	// each run of their job, nothing to reload.
	return Effect{}
}

// unitEffect: a changed unit needs daemon-reload; timers are restarted so a
// new schedule applies; long-running services whose restart is an outage or a
// failover (PostgreSQL, keepalived, the app) are not restarted by converge.
func unitEffect(rel string) Effect {
	unit, _, dropIn := strings.Cut(rel, ".d/")
	if !dropIn {
		unit = rel
	}
	e := Effect{Activate: []Cmd{daemonReload}}
	switch {
	case strings.HasSuffix(unit, ".timer"):
		e.Activate = append(e.Activate, Cmd{"systemctl", "restart", unit})
	case unit == "belay-route-watch.service":
		e.Activate = append(e.Activate, Cmd{"systemctl", "try-restart", unit})
	case unit == "pgautofailover.service" || strings.HasPrefix(unit, "postgresql"):
		e.Note = unit + " changed: it applies at the next restart of PostgreSQL (switchover), converge never restarts the database"
	case unit == "keepalived.service":
		e.Note = unit + " changed: it applies at keepalived's next restart (restarting it would move the VIP)"
	case unit == "nginx.service":
		e.Note = unit + " changed: it applies at nginx's next restart (converge only reloads nginx)"
	case strings.HasPrefix(unit, "belay-app@") || strings.HasPrefix(unit, "belay-canary@"):
		e.Note = unit + " changed: the next deploy (or restart) of the app applies it"
	}
	return e
}

// allowedPrefixes and allowedExact are every path the roles render; the root
// helper refuses any other, whatever the signature (defence in depth: a
// leaked seed still cannot write /etc/shadow through converge).
var allowedExact = map[string]bool{
	"/etc/nftables.conf":                         true,
	"/etc/keepalived/keepalived.conf":            true,
	"/var/lib/postgresql/.pgpass":                true,
	"/etc/systemd/system/pgautofailover.service": true,
	roles.ConvergePubFile:                        true,
	"/etc/belay/postgresql/bootstrap.sql":        true,
	"/etc/logrotate.d/belay-nginx":               true,
	roles.RouterNginxDropIn:                      true,
}

var allowedPrefixes = []string{
	"/etc/ssh/sshd_config.d/",
	"/etc/nginx/conf.d/",
	"/etc/sudoers.d/belay-",
	"/etc/systemd/journald.conf.d/",
	"/etc/systemd/timesyncd.conf.d/",
	"/etc/systemd/system/belay-",
	"/etc/systemd/system/keepalived.service.d/",
	"/etc/systemd/system/pgautofailover.service.d/",
	"/etc/belay/",
	"/etc/pgbackrest/",
	"/home/",
	"/var/lib/postgresql/.ssh/",
	"/srv/restic/",
	"/usr/local/bin/belay-",
	"/usr/local/sbin/belay-",
	"/var/lib/belay/",
	"/var/log/nginx/belay/",
}

// Allowed reports whether p is a path converge may write: absolute, clean,
// and one the roles render.
func Allowed(p string) bool {
	if !path.IsAbs(p) || path.Clean(p) != p || strings.ContainsAny(p, "\x00\n") {
		return false
	}
	if allowedExact[p] {
		return true
	}
	for _, pre := range allowedPrefixes {
		if strings.HasPrefix(p, pre) && len(p) > len(pre) {
			if pre == "/home/" && !strings.HasSuffix(p, "/.ssh/authorized_keys") && !strings.HasPrefix(p, "/home/pgbackrest/.ssh/") {
				return false
			}
			if pre == "/srv/restic/" && !strings.HasSuffix(p, "/.ssh/authorized_keys") {
				return false
			}
			return true
		}
	}
	return false
}
