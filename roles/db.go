package roles

import (
	"errors"

	"github.com/belay-sh/belay/inventory"
)

// Names and paths of the PostgreSQL roles that the deployer, the drills and
// `belay failover` rely on. docs/ha-engine.md explains the choices.
const (
	// PGAutoFailoverUnit runs `pg_autoctl run` (keeper on data nodes, monitor on db-monitor).
	PGAutoFailoverUnit = "pgautofailover.service"
	// DBSetupScript creates the pg_auto_failover node at first boot (cloud-init runcmd).
	DBSetupScript = "/usr/local/sbin/belay-db-setup"
	// DefaultAppUser is the app's role when the Spec names none.
	DefaultAppUser = "app"
	// DefaultArchiveTimeout is archive_timeout in seconds when the Spec sets none.
	DefaultArchiveTimeout = 30

	// pgConfDir holds belay's PostgreSQL fragments, outside PGDATA so basebackup,
	// pg_rewind and pgBackRest restores never carry one host's file to another.
	pgConfDir = "/etc/belay/postgresql"
	// belayPGConf is included last from postgresql.conf (include_if_exists).
	belayPGConf = pgConfDir + "/belay.conf"
	// listenConf holds listen_addresses where it is known only at boot (standby DB).
	listenConf = pgConfDir + "/listen.conf"
	// hbaBlock is belay's part of pg_hba.conf, spliced in between markers.
	hbaBlock     = pgConfDir + "/pg_hba.belay.conf"
	bootstrapSQL = pgConfDir + "/bootstrap.sql"
	// dbRemoteWrapper is the forced command of the repository host's key on data nodes.
	dbRemoteWrapper = "/usr/local/bin/belay-db-remote"
	pgHome          = "/var/lib/postgresql"
	pgSocketDir     = "/var/run/postgresql"
	pgSpoolPath     = "/var/spool/pgbackrest"
	pgUnitPath      = "/etc/systemd/system/" + PGAutoFailoverUnit

	// The pg_auto_failover role names (fixed by pg_autoctl).
	pgafNodeUser       = "autoctl_node"
	pgafReplicatorUser = "pgautofailover_replicator"
	pgafMonitorDB      = "pg_auto_failover"
	// pgafDefaultFormation is the formation of nodes created without --formation.
	pgafDefaultFormation = "default"
)

func init() {
	register(inventory.RoleDB, dbContributor)
	register(inventory.RoleDBMonitor, dbContributor)
}

func dbAppUser(u string) string {
	if u == "" {
		return DefaultAppUser
	}
	return u
}

func dbArchiveTimeout(t int) int {
	if t == 0 {
		return DefaultArchiveTimeout
	}
	return t
}

// dbContributor renders a pg_auto_failover data node or the monitor.
func dbContributor(s *Spec, c *CloudConfig) error {
	if s.DB == nil {
		return errors.New("roles: Spec.DB: nil, expected it for roles db and db-monitor")
	}
	if err := validateDB(s); err != nil {
		return err
	}
	d := s.DB
	setup, err := dbSetupScript(s)
	if err != nil {
		return err
	}
	reseed, err := dbReseedScript(s)
	if err != nil {
		return err
	}
	c.WriteFiles = append(c.WriteFiles,
		File{Path: belayPGConf, Content: dbPostgresConf(s), Owner: "root:root", Permissions: "0644"},
		File{Path: hbaBlock, Content: dbHBABlock(s), Owner: "root:root", Permissions: "0644"},
		File{Path: bootstrapSQL, Content: dbBootstrapSQL(d), Owner: "postgres:postgres", Permissions: "0600", Defer: true},
		File{Path: DBSetupScript, Content: setup, Owner: "root:root", Permissions: "0755"},
		File{Path: DBReseedScript, Content: reseed, Owner: "root:root", Permissions: "0755"},
		File{Path: pgUnitPath, Content: pgAutoFailoverUnit(s), Owner: "root:root", Permissions: "0644"},
	)
	if !d.Monitor {
		b := d.Backup
		c.WriteFiles = append(c.WriteFiles,
			// libpq reads passwords from here: none on a command line, in the
			// environment or in pg_autoctl.cfg.
			File{Path: pgHome + "/.pgpass", Content: dbPgpass(d), Owner: "postgres:postgres", Permissions: "0600", Defer: true},
			File{Path: "/etc/pgbackrest/pgbackrest.conf", Content: pgBackRestClientConf(b.Stanza, b.RepoHost, PGDataPath(d.PostgresVersion), d.Port), Owner: "root:postgres", Permissions: "0640", Defer: true},
			File{Path: dbRemoteWrapper, Content: dbRemoteWrapperScript(b.Stanza, PGDataPath(d.PostgresVersion)), Owner: "root:root", Permissions: "0755"},
			// Root-owned: the postgres user cannot widen who may log in as it.
			File{Path: pgHome + "/.ssh/authorized_keys", Content: dbAuthorizedKeys(b.RepoKey), Owner: "root:root", Permissions: "0644"},
		)
		c.WriteFiles = append(c.WriteFiles, pgSSHClientFiles(b.RepoHost, b.RepoHostKey, b.ClientKey.PrivatePEM)...)
	}
	c.Runcmd = append(c.Runcmd, []string{DBSetupScript})
	return nil
}
