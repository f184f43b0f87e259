package roles

// PostgreSQL's own configuration on a data node or the monitor: the
// postgresql.conf fragment (with the failover tuning), pg_hba.conf, .pgpass
// and the bootstrap SQL with SCRAM verifiers.

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"sort"
	"strings"
)

// Failover tuning (measured: see docs/ha-engine.md). The monitor declares a
// primary dead after unhealthyTimeoutMs without a keeper report and a failed
// health check; it then gives a possibly-alive, partitioned primary
// primaryDemoteTimeoutMs to fence itself before the standby takes writes.
//
// The keeper of a partitioned primary fences (stops PostgreSQL) once neither the
// monitor nor the standby was heard for networkPartitionTimeoutS. pg_auto_failover
// 2.0 only records "standby heard" while the monitor is unreachable and a
// walsender is still listed, so the walsender must outlive the first failed
// monitor call (2 s connect timeout): walSenderTimeout 4 s. Fencing then completes
// within walSenderTimeout + networkPartitionTimeoutS + one keeper loop (~3 s) +
// a fast shutdown ≈ 9-10 s, before unhealthyTimeoutMs + primaryDemoteTimeoutMs
// (11 s, plus the monitor's own ~2 s of state changes).
const (
	healthCheckPeriodMs      = 1000
	healthCheckTimeoutMs     = 1000
	healthCheckMaxRetries    = 1
	healthCheckRetryDelayMs  = 500
	unhealthyTimeoutMs       = 4000
	primaryDemoteTimeoutMs   = 7000
	networkPartitionTimeoutS = 1
	walSenderTimeout         = "4s"
	walReceiverTimeout       = "5s"
)

// dbPostgresConf is belay's postgresql.conf fragment, included last so it wins
// over pg_auto_failover's postgresql-auto-failover.conf (included first). It
// never sets what pg_auto_failover manages: synchronous_standby_names and
// primary_conninfo (ALTER SYSTEM / its standby file), and listen_addresses and
// port, which pg_autoctl passes on postgres' command line (-h, -p).
func dbPostgresConf(s *Spec) string {
	d := s.DB
	var b strings.Builder
	fmt.Fprintf(&b, "# Rendered by belay for %s: included last from postgresql.conf.\n", s.Hostname)
	b.WriteString("# listen_addresses is pg_autoctl's (postgres -h): this host's private address and 127.0.0.1 only.\n")
	b.WriteString("password_encryption = 'scram-sha-256'\n")
	b.WriteString("ssl_min_protocol_version = 'TLSv1.2'\n")
	if d.Monitor {
		b.WriteString("cluster_name = 'belay monitor'\n")
		b.WriteString("# Failover tuning (docs/ha-engine.md): a dead primary is detected in ~4 s and a\n")
		b.WriteString("# partitioned one gets 7 s more to fence itself before the standby takes writes.\n")
		fmt.Fprintf(&b, "pgautofailover.health_check_period = %d\n", healthCheckPeriodMs)
		fmt.Fprintf(&b, "pgautofailover.health_check_timeout = %d\n", healthCheckTimeoutMs)
		fmt.Fprintf(&b, "pgautofailover.health_check_max_retries = %d\n", healthCheckMaxRetries)
		fmt.Fprintf(&b, "pgautofailover.health_check_retry_delay = %d\n", healthCheckRetryDelayMs)
		fmt.Fprintf(&b, "pgautofailover.node_considered_unhealthy_timeout = %d\n", unhealthyTimeoutMs)
		fmt.Fprintf(&b, "pgautofailover.primary_demote_timeout = %d\n", primaryDemoteTimeoutMs)
		return b.String()
	}
	b.WriteString("cluster_name = 'belay'\n")
	b.WriteString("# Fencing of a partitioned primary (docs/ha-engine.md): its keeper fences once no\n")
	b.WriteString("# walsender is left, and needs one still listed at the first failed monitor call.\n")
	fmt.Fprintf(&b, "wal_sender_timeout = '%s'\n", walSenderTimeout)
	fmt.Fprintf(&b, "wal_receiver_timeout = '%s'\n", walReceiverTimeout)
	b.WriteString("# WAL archiving to the repository host (pgBackRest, asynchronous). Only the\n")
	b.WriteString("# primary archives: archive_mode = on is inert while in recovery.\n")
	b.WriteString("archive_mode = on\n")
	fmt.Fprintf(&b, "archive_command = 'pgbackrest --stanza=%s archive-push %%p'\n", d.Backup.Stanza)
	fmt.Fprintf(&b, "archive_timeout = '%ds'\n", dbArchiveTimeout(d.ArchiveTimeout))
	return b.String()
}

// dbHBABlock is belay's pg_hba.conf block. pg_autoctl adds its own lines for
// the replication and monitor users of each registered node on data nodes; on
// the monitor (created with --skip-pg-hba) this block is the whole remote access.
func dbHBABlock(s *Spec) string {
	d := s.DB
	var b strings.Builder
	b.WriteString("# BEGIN belay (" + hbaBlock + ")\n")
	if d.Monitor {
		b.WriteString("# Data nodes register and report here.\n")
		for _, src := range hbaSources(d.AllowFrom) {
			fmt.Fprintf(&b, "hostssl %s %s %s scram-sha-256\n", pgafMonitorDB, pgafNodeUser, src)
		}
	} else {
		b.WriteString("# The app reaches its database over TLS with its password.\n")
		for _, src := range hbaSources(d.AllowFrom) {
			fmt.Fprintf(&b, "hostssl %s %s %s scram-sha-256\n", d.Name, dbAppUser(d.AppUser), src)
		}
		tenantHBA(&b, d)
	}
	b.WriteString("# END belay\n")
	return b.String()
}

// hbaSources renders AllowFrom as sorted, de-duplicated CIDRs.
func hbaSources(allow []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, a := range allow {
		p, err := parseSource(a)
		if err != nil || seen[p.String()] {
			continue
		}
		seen[p.String()] = true
		out = append(out, p.String())
	}
	sort.Strings(out)
	return out
}

// dbPgpass is the postgres user's ~/.pgpass: the monitor URI and the
// replication connections carry no password.
func dbPgpass(d *DB) string {
	return fmt.Sprintf("%s:%d:%s:%s:%s\n*:%d:*:%s:%s\n",
		d.MonitorAddress, d.Port, pgafMonitorDB, pgafNodeUser, pgpassEscape(d.MonitorPassword),
		d.Port, pgafReplicatorUser, pgpassEscape(d.ReplicationPassword))
}

func pgpassEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `:`, `\:`).Replace(s)
}

// dbBootstrapSQL sets the passwords and creates the app's role and database.
// It runs over the unix socket while no TCP listener is up: on the monitor at
// every setup, on a data node only where it initialised the cluster (the first
// primary; the standby gets everything by replication). Passwords go in as
// SCRAM verifiers, so the clear text never reaches the server, its logs
// (the monitor logs DDL) or pg_stat_statements.
func dbBootstrapSQL(d *DB) string {
	var b strings.Builder
	b.WriteString("-- Rendered by belay: run by " + DBSetupScript + " over the unix socket (idempotent).\n")
	b.WriteString("\\set ON_ERROR_STOP on\n")
	if d.Monitor {
		fmt.Fprintf(&b, "ALTER ROLE %s PASSWORD '%s';\n", pgafNodeUser, scramVerifier(pgafNodeUser, d.MonitorPassword))
		return b.String()
	}
	user := dbAppUser(d.AppUser)
	fmt.Fprintf(&b, "ALTER ROLE %s PASSWORD '%s';\n", pgafReplicatorUser, scramVerifier(pgafReplicatorUser, d.ReplicationPassword))
	fmt.Fprintf(&b, "SELECT 'CREATE ROLE %[1]s' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '%[1]s')\n\\gexec\n", user)
	fmt.Fprintf(&b, "ALTER ROLE %s LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD '%s';\n", user, scramVerifier(user, d.AppPassword))
	fmt.Fprintf(&b, "SELECT 'CREATE DATABASE %[1]s OWNER %[2]s' WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '%[1]s')\n\\gexec\n", d.Name, user)
	fmt.Fprintf(&b, "ALTER DATABASE %s OWNER TO %s;\n", d.Name, user)
	fmt.Fprintf(&b, "REVOKE ALL ON DATABASE %s FROM PUBLIC;\n", d.Name)
	tenantSQL(&b, d)
	return b.String()
}

// scramVerifier computes PostgreSQL's SCRAM-SHA-256 secret for password (RFC 5802,
// 4096 iterations as PostgreSQL uses). The salt is derived from the password and
// role instead of drawn at random so the user data, and with it the server, stays
// the same across runs; passwords are 192-bit seed-derived values, so a
// deterministic salt gives a precomputation attack nothing to work with.
func scramVerifier(role, password string) string {
	mac := hmac.New(sha256.New, []byte(password))
	mac.Write([]byte("belay scram salt v1\x00" + role))
	salt := mac.Sum(nil)[:16]
	const iterations = 4096
	salted, err := pbkdf2.Key(sha256.New, password, salt, iterations, sha256.Size)
	if err != nil {
		// Only FIPS-mode key length checks fail, and 32 bytes of SHA-256 passes them.
		panic(fmt.Sprintf("roles: pbkdf2: %v", err))
	}
	hm := func(key []byte, msg string) []byte {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(msg))
		return m.Sum(nil)
	}
	stored := sha256.Sum256(hm(salted, "Client Key"))
	server := hm(salted, "Server Key")
	enc := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", iterations, enc(salt), enc(stored[:]), enc(server))
}
