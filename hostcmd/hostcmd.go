// Package hostcmd holds the exact root commands belay's operations run on
// hosts — the site switch both ways, the drills, `belay backup status` — as
// argv data. It is the one source for the code that runs them (through the
// lab's machine console, or `sudo -n` over SSH on a cloud stack) and for the
// sudoers file the roles render, so a cloud host allows exactly these commands
// to the deploy user and nothing else.
package hostcmd

import (
	"sort"
	"strings"

	"github.com/belay-sh/belay/inventory"
)

// SQL the operations run as the postgres superuser.
const (
	// InRecoverySQL is 't' on a standby, 'f' once promoted.
	InRecoverySQL = "SELECT pg_is_in_recovery()"
	// ReplayTimestampSQL is the commit time of the last transaction a standby replayed (the RPO edge).
	ReplayTimestampSQL = "SELECT coalesce(pg_last_xact_replay_timestamp()::text, 'none')"
	// PromoteSQL promotes a standby and waits up to 300 s until it accepts writes.
	PromoteSQL = "SELECT pg_promote(true, 300)"
	// StreamingReplicasSQL counts replicas streaming from a primary.
	StreamingReplicasSQL = "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'"
	// FormationSQL prints "<primaries>/<secondaries>" of the stack's pair
	// (formation "default") as the pg_auto_failover monitor sees it.
	FormationSQL = "SELECT count(*) FILTER (WHERE reportedstate = 'primary') || '/' || count(*) FILTER (WHERE reportedstate = 'secondary') FROM pgautofailover.node WHERE formationid = 'default'"
	// NodeStatesSQL lists the stack pair's nodes (formation "default") as
	// "<name>|<reported state>|<goal state>" lines, as the monitor sees them
	// (belay replace / db resize wait on it).
	NodeStatesSQL = "SELECT nodename, reportedstate, goalstate FROM pgautofailover.node WHERE formationid = 'default' ORDER BY nodename"
	// SwitchoverSQL is `pg_autoctl perform switchover` as the monitor's own
	// function: the primary is demoted once the secondary caught up, which is
	// then promoted (no acknowledged write lost).
	SwitchoverSQL = "SELECT pgautofailover.perform_failover('default', 0)"
	// StandbyReplaySQL prints "<in recovery t|f> <last replayed LSN|none> <last replayed
	// commit, epoch seconds|none> <WAL segment size in bytes>" in one line: what
	// `belay backup status` needs to judge the standby against the archive.
	StandbyReplaySQL = "SELECT CASE WHEN pg_is_in_recovery() THEN 't' ELSE 'f' END || ' ' || coalesce(pg_last_wal_replay_lsn()::text, 'none') || ' ' || " +
		"coalesce(extract(epoch FROM pg_last_xact_replay_timestamp())::text, 'none') || ' ' || " +
		"(SELECT setting FROM pg_settings WHERE name = 'wal_segment_size')"
)

// Units, scripts and paths of the roles the operations drive.
const (
	StandbyDBUnit        = "belay-standby-db.service"
	StandbyRestoreUnit   = "belay-standby-restore.service"
	StandbyRestoreScript = "/usr/local/sbin/belay-standby-restore"
	// StandbyFinalArchiveScript closes the standby site's writes before the way back (roles/standby_final.go).
	StandbyFinalArchiveScript = "/usr/local/sbin/belay-standby-final-archive"
	FullBackupUnit            = "belay-backup-full.service"
	// FirstBackupUnit takes a new stack's first full backup as soon as the primary accepts writes.
	FirstBackupUnit = "belay-backup-first.service"
	// BackupScript is the repository host's backup job (belay-backup full|diff, as user pgbackrest).
	BackupScript   = "/usr/local/bin/belay-backup"
	VerifyUnit     = "belay-verify-restore.service"
	DBReseedScript = "/usr/local/sbin/belay-db-reseed"
	// NginxUnit and PGAutoFailoverUnit are what the service-stop drills stop and start again.
	NginxUnit          = "nginx.service"
	PGAutoFailoverUnit = "pgautofailover.service"
	// PgBackRestRepo is repo1-path on the repository host.
	PgBackRestRepo = "/var/lib/pgbackrest"
)

// The modes of DBReseedScript.
const (
	ReseedMonitor = "monitor"
	ReseedPrimary = "primary"
	ReseedReplica = "replica"
)

// Psql runs one SQL statement as the postgres superuser (tuples only, unaligned).
func Psql(sql string) []string {
	return []string{"runuser", "-u", "postgres", "--", "psql", "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-c", sql}
}

// MonitorPsql runs one SQL statement in the monitor's pg_auto_failover database.
func MonitorPsql(sql string) []string {
	return []string{"runuser", "-u", "postgres", "--", "psql", "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-d", "pg_auto_failover", "-c", sql}
}

// ReadOnly makes a PostgreSQL server default to read-only transactions
// (ALTER SYSTEM, then a reload), so no late write misses the final archive.
func ReadOnly() []string {
	return []string{"runuser", "-u", "postgres", "--", "psql", "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1",
		"-c", "ALTER SYSTEM SET default_transaction_read_only = on", "-c", "SELECT pg_reload_conf()"}
}

// FinalArchive runs StandbyFinalArchiveScript on the promoted standby database
// (read-only by then): sessions ended, a restore point after its last write,
// its timeline's history file pushed synchronously, the segment archived.
func FinalArchive() []string { return []string{StandbyFinalArchiveScript} }

// PgBackRest runs pgbackrest as the repository user with the given arguments.
func PgBackRest(stanza string, args ...string) []string {
	return append([]string{"runuser", "-u", "pgbackrest", "--", "pgbackrest", "--stanza=" + stanza}, args...)
}

// PgBackRestInfo is `pgbackrest info` as the repository user, in JSON.
func PgBackRestInfo(stanza string) []string { return PgBackRest(stanza, "--output=json", "info") }

// LastWALPath is the repository host's script (roles/backup.go) that prints
// "<mtime epoch> <file name>" of the newest archived WAL segment.
const LastWALPath = "/usr/local/sbin/belay-last-wal"

// LastWAL runs LastWALPath (a script, not `sh -c`: one word sudoers matches
// exactly) for the stack's stanza.
func LastWAL() []string { return []string{LastWALPath} }

// LastWALOf runs LastWALPath for a dedicated cell's stanza (the script
// accepts only a stanza its list names; sudoers lists one argv per stanza).
func LastWALOf(stanza string) []string { return []string{LastWALPath, stanza} }

// CellVerifyResultFile is where the restore verification of a dedicated
// cell's stanza writes its result (the stack's goes to
// /var/lib/belay/last-verified-restore.json); readable by anyone.
func CellVerifyResultFile(stanza string) string {
	return "/var/lib/belay/last-verified-restore-" + stanza + ".json"
}

// LastWALScript is the pipeline LastWALPath runs for stanza.
func LastWALScript(stanza string) string {
	return "find " + PgBackRestRepo + "/archive/" + stanza + " -type f -name '0*' -printf '%T@ %f\\n' | sort -n | tail -n 1"
}

// StandbyRestoreState reads the standby restore unit's SubState: "running"
// while it waits for a backup or restores, "exited" once restored.
func StandbyRestoreState() []string {
	return []string{"systemctl", "show", "-p", "SubState", "--value", StandbyRestoreUnit}
}

// FirstBackupState reads the first-backup unit's SubState: "running" while it
// waits for a writable primary or backs up, "exited" once done (or skipped),
// "failed" when it gave up.
func FirstBackupState() []string {
	return []string{"systemctl", "show", "-p", "SubState", "--value", FirstBackupUnit}
}

// BackupNow runs one backup (kind full or diff) of stanza in the foreground
// as the repository user, so its progress streams back and its exit status
// is the backup's (`belay backup now`: the stack's stanza; without a stanza
// the script would back up every stanza of the repository in turn).
func BackupNow(kind, stanza string) []string {
	return []string{"runuser", "-u", "pgbackrest", "--", BackupScript, kind, stanza}
}

// BackupKinds are the kinds BackupNow accepts.
var BackupKinds = []string{"full", "diff"}

// FenceDB stops pg_auto_failover's keeper (or monitor) and PostgreSQL. systemctl
// matches the patterns against loaded units, so one line fits data nodes and the monitor.
func FenceDB() []string { return []string{"systemctl", "stop", "pgautofailover*", "postgresql*"} }

// RouteWatchUnit is the app server's route watcher (roles renders it under this name).
const RouteWatchUnit = "belay-route-watch.service"

// FenceApp stops everything that serves app on an app server (keepalived gives
// up the VIP). The route watcher goes too: it reloads nginx when it sees the
// app stop, and a reload queued while nginx stops cancels the stop job
// ("Job for nginx.service canceled", seen in the lab). Its unit is ordered
// After=nginx, so in one transaction systemd stops it before nginx.
func FenceApp(app string) []string {
	return []string{"systemctl", "stop", RouteWatchUnit, "keepalived.service", "nginx.service", "belay-canary@" + app + ".service", "belay-app@" + app + ".service"}
}

// StartApp starts keepalived, nginx, the route watcher and app on a primary-site app server.
func StartApp(app string) []string {
	return []string{"systemctl", "start", "keepalived.service", "nginx.service", RouteWatchUnit, "belay-app@" + app + ".service"}
}

// StartStandbyApp enables and starts app on a standby app server (the site
// switch): it must come back after a reboot while the standby site serves.
func StartStandbyApp(app string) []string {
	return []string{"systemctl", "enable", "--now", "belay-app@" + app + ".service"}
}

// StopStandbyApp stops app on a standby app server and keeps it from starting at boot.
func StopStandbyApp(app string) []string {
	return []string{"systemctl", "disable", "--now", "belay-app@" + app + ".service"}
}

// RouterSyncUnit is app's router-sync service on a router host (roles
// renders the template unit; roles.RouterSyncUnit names the same instance).
func RouterSyncUnit(app string) string { return "belay-router-sync@" + app + ".service" }

// FenceRouter stops everything that serves app's shops on a primary-site
// router: router-sync first (it pushes routes into nginx and may reload it;
// a reload queued while nginx stops cancels the stop job, as with the route
// watcher), keepalived (gives up the router tier's VIP), nginx. A router runs
// no app unit: the cells' servers are fenced with FenceApp.
func FenceRouter(app string) []string {
	return []string{"systemctl", "stop", RouterSyncUnit(app), "keepalived.service", "nginx.service"}
}

// StartRouter starts keepalived, nginx and router-sync of app on a
// primary-site router (the way back).
func StartRouter(app string) []string {
	return []string{"systemctl", "start", "keepalived.service", "nginx.service", RouterSyncUnit(app)}
}

// StartStandbyRouter starts router-sync of app on the standby router once
// the standby database accepts writes (the unit is enabled at first boot but
// not started: against a read-only replica it cannot create its schema, LISTEN
// is refused, and it could not report what it loaded). nginx runs there
// already; starting it again is a no-op that covers a router rebooted while
// nginx had failed.
func StartStandbyRouter(app string) []string {
	return []string{"systemctl", "start", "nginx.service", RouterSyncUnit(app)}
}

// StopStandbyRouter stops router-sync of app on the standby router (the way
// back: its database becomes a replica again). The unit stays enabled, as the
// role leaves it; nginx keeps answering from the last loaded routes.
func StopStandbyRouter(app string) []string {
	return []string{"systemctl", "stop", RouterSyncUnit(app)}
}

// Reseed runs the DB hosts' reseed script in one of its modes.
func Reseed(mode string) []string { return []string{DBReseedScript, mode} }

// StartUnit starts (and, for a oneshot, waits for) a unit.
func StartUnit(unit string) []string { return []string{"systemctl", "start", unit} }

// ACMEUnit is the oneshot unit that obtains or renews app's certificate
// (roles' belay-acme-<app>.service; `systemctl start` waits for it).
func ACMEUnit(app string) string { return "belay-acme-" + app + ".service" }

// ACMEScript is what ACMEUnit runs (roles.ACMEScript; the path is the contract).
func ACMEScript(app string) string { return "/usr/local/bin/belay-acme-" + app }

// IssueCertificate obtains (or renews when due) app's ACME certificate now:
// the site switch runs it once DNS points at the servers that take over. It
// runs the unit's script, not `systemctl start` of the unit: the unit retries
// a failure every 15 minutes (Restart=on-failure), and a start job waits
// through those retries, so a failing issuance would hold the switch for the
// step's whole timeout instead of failing in seconds.
func IssueCertificate(app string) []string { return []string{ACMEScript(app)} }

// StopUnit stops a unit.
func StopUnit(unit string) []string { return []string{"systemctl", "stop", unit} }

// Resync re-restores the standby database from the repository.
func Resync() []string { return []string{StandbyRestoreScript, "--resync"} }

// Host describes what ForHost needs to know of a host.
type Host struct {
	Roles []inventory.Role
	// Apps are the apps served on it (app and standby-app roles).
	Apps []string
	// Routers are the apps whose shops it routes (router and standby-router roles).
	Routers []string
	// Stanza is the pgBackRest stanza (standby-db and backup-repo roles).
	Stanza string
	// CellStanzas are the dedicated cells' stanzas (backup-repo role).
	CellStanzas []string
	// Formations are the dedicated cells' pg_auto_failover formations
	// (db-monitor role); the stack's "default" is always there. A name
	// that is not a lowercase identifier gets no command (the roles refuse
	// it before rendering, naming the field).
	Formations []string
	// CellDB is a dedicated pair's data node's cell database (db role):
	// the copy helper's verbs for it (CellDBPairVerbs).
	CellDB string
	// MovedCells are the databases of cells that moved from the stack's
	// cluster to their own pair (db role of the stack's nodes): the copy
	// helper's reading verbs for each.
	MovedCells []string
}

// ForHost is every root command belay's operations may run on h, sorted and
// without duplicates: what its sudoers must allow the deploy user.
func ForHost(h Host) [][]string {
	var out [][]string
	for _, r := range h.Roles {
		switch r {
		case inventory.RoleApp:
			for _, a := range h.Apps {
				out = append(out, FenceApp(a), StartApp(a), IssueCertificate(a))
			}
			out = append(out, StopUnit(NginxUnit), StartUnit(NginxUnit))
		case inventory.RoleStandbyApp:
			for _, a := range h.Apps {
				out = append(out, StartStandbyApp(a), StopStandbyApp(a), IssueCertificate(a))
			}
		case inventory.RoleRouter:
			for _, a := range h.Routers {
				out = append(out, FenceRouter(a), StartRouter(a), IssueCertificate(a))
			}
		case inventory.RoleStandbyRouter:
			for _, a := range h.Routers {
				out = append(out, StartStandbyRouter(a), StopStandbyRouter(a), IssueCertificate(a))
			}
		case inventory.RoleDB:
			out = append(out, FenceDB(), Reseed(ReseedPrimary), Reseed(ReseedReplica), Psql(StreamingReplicasSQL),
				StopUnit(PGAutoFailoverUnit), StartUnit(PGAutoFailoverUnit), Psql(InRecoverySQL))
			if h.CellDB != "" {
				out = append(out, cellDBCommands(h.CellDB, CellDBPairVerbs)...)
			}
			for _, db := range h.MovedCells {
				out = append(out, cellDBCommands(db, CellDBSourceVerbs)...)
			}
		case inventory.RoleDBMonitor:
			out = append(out, FenceDB(), Reseed(ReseedMonitor), MonitorPsql(FormationSQL), MonitorPsql(NodeStatesSQL), MonitorPsql(SwitchoverSQL))
			for _, f := range h.Formations {
				if cmds, err := FormationCommands(f); err == nil {
					out = append(out, cmds...)
				}
			}
		case inventory.RoleStandbyDB:
			out = append(out, Psql(InRecoverySQL), Psql(ReplayTimestampSQL), Psql(PromoteSQL), ReadOnly(),
				FinalArchive(), StopUnit(StandbyDBUnit), Resync(), StandbyRestoreState(), Psql(StandbyReplaySQL))
		case inventory.RoleBackupRepo:
			out = append(out, PgBackRestInfo(h.Stanza), StartUnit(FullBackupUnit), StartUnit(VerifyUnit), LastWAL(), FirstBackupState())
			for _, st := range h.CellStanzas {
				out = append(out, PgBackRestInfo(st), LastWALOf(st))
			}
			for _, k := range BackupKinds {
				out = append(out, BackupNow(k, h.Stanza))
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return strings.Join(out[i], "\x00") < strings.Join(out[j], "\x00") })
	var uniq [][]string
	for i, c := range out {
		if i == 0 || strings.Join(c, "\x00") != strings.Join(out[i-1], "\x00") {
			uniq = append(uniq, c)
		}
	}
	return uniq
}
