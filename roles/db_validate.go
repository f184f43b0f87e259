package roles

// Validation of Spec.DB for a pg_auto_failover data node or the monitor.

import (
	"errors"
	"fmt"
	"github.com/belay-sh/belay/hostcmd"
	"net/netip"
	"regexp"
	"strings"

	"github.com/belay-sh/belay/inventory"
)

// pgIdentRE is what belay accepts as a database or role name: no quoting needed anywhere.
var pgIdentRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// reservedRoles may not be the app's role: pg_auto_failover and PostgreSQL own them.
var reservedRoles = map[string]bool{"postgres": true, pgafNodeUser: true, pgafReplicatorUser: true, "pgautofailover_monitor": true, "autoctl": true}

// validateDB checks the DB section of a data node or the monitor.
func validateDB(s *Spec) error {
	d := s.DB
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf("roles: "+format, a...)) }
	isDB, isMon := hasRole(s, inventory.RoleDB), hasRole(s, inventory.RoleDBMonitor)
	switch {
	case isDB && isMon:
		bad("Spec.Roles: db and db-monitor on one host, expected one of them (each runs its own PostgreSQL on Spec.DB.Port)")
	case isMon && !d.Monitor:
		bad("Spec.DB.Monitor: false, expected true for role db-monitor")
	case isDB && d.Monitor:
		bad("Spec.DB.Monitor: true, expected false for role db")
	}
	if hasRole(s, inventory.RoleStandbyDB) {
		bad("Spec.Roles: %s with standby-db on one host, expected one PostgreSQL role per host", map[bool]string{true: "db-monitor", false: "db"}[d.Monitor])
	}
	if d.PostgresVersion < 13 || d.PostgresVersion > 99 {
		bad("Spec.DB.PostgresVersion: %d, expected a PostgreSQL major version supported by pg_auto_failover 2.0 (13 or later, e.g. 15)", d.PostgresVersion)
	}
	if d.Port < 1 || d.Port > 65535 {
		bad("Spec.DB.Port: %d, expected 1-65535", d.Port)
	}
	checkAllowFrom(bad, "Spec.DB.AllowFrom", d.AllowFrom)
	checkSecret(bad, "Spec.DB.MonitorPassword", d.MonitorPassword)
	if d.ArchiveTimeout != 0 && (d.ArchiveTimeout < 10 || d.ArchiveTimeout > 3600) {
		bad("Spec.DB.ArchiveTimeout: %d, expected 10-3600 seconds (0 = %d)", d.ArchiveTimeout, DefaultArchiveTimeout)
	}
	if d.Formation != "" && (d.Monitor || !pgIdentRE.MatchString(d.Formation) || d.Formation == pgafDefaultFormation) {
		bad("Spec.DB.Formation: %q, expected a data node's formation name (a-z, 0-9, _; not %q, which is the stack's pair)", d.Formation, pgafDefaultFormation)
	}
	seenF := map[string]bool{}
	for i, f := range d.Formations {
		if !d.Monitor || hostcmd.CheckFormation(f) != nil || f == pgafDefaultFormation || seenF[f] {
			bad("Spec.DB.Formations[%d]: %q, expected on the monitor a unique dedicated cell's formation name (a-z, 0-9, _; not %q)", i, f, pgafDefaultFormation)
		}
		seenF[f] = true
	}
	for i, m := range d.MovedCells {
		if d.Monitor || d.Formation != "" || hostcmd.CheckCellDatabase(m) != nil {
			bad("Spec.DB.MovedCells[%d]: %q, expected on the stack's data nodes a cell database's name (a-z, 0-9, _)", i, m)
		}
	}
	if d.Monitor {
		if d.Backup != nil {
			bad("Spec.DB.Backup: set on the monitor, expected nil (the monitor holds no application data)")
		}
		return errors.Join(errs...)
	}
	if !pgIdentRE.MatchString(d.Name) || d.Name == "postgres" || d.Name == pgafMonitorDB || strings.HasPrefix(d.Name, "template") {
		bad("Spec.DB.Name: %q, expected a database name (a-z, 0-9, _; not postgres, template*, %s)", d.Name, pgafMonitorDB)
	}
	if u := dbAppUser(d.AppUser); !pgIdentRE.MatchString(u) || reservedRoles[u] || strings.HasPrefix(u, "pg_") {
		bad("Spec.DB.AppUser: %q, expected a role name (a-z, 0-9, _; not postgres, pg_*, or a pg_auto_failover role)", d.AppUser)
	}
	if a, err := netip.ParseAddr(d.MonitorAddress); err != nil || !a.Is4() {
		bad("Spec.DB.MonitorAddress: %q, expected the monitor's private IPv4 address", d.MonitorAddress)
	} else if a.String() == s.Net.PrivateAddress {
		bad("Spec.DB.MonitorAddress: %s is this host's own address, expected the monitor's", a)
	}
	checkSecret(bad, "Spec.DB.AppPassword", d.AppPassword)
	checkSecret(bad, "Spec.DB.ReplicationPassword", d.ReplicationPassword)
	validateTenants(d, "Spec.DB", bad)
	if d.Backup == nil {
		bad("Spec.DB.Backup: nil, expected the pgBackRest client settings (WAL archiving) on a data node")
	} else {
		b := d.Backup
		checkRepoHost(bad, "Spec.DB.Backup", b.RepoHost, b.RepoHostKey)
		if !stanzaRE.MatchString(b.Stanza) {
			bad("Spec.DB.Backup.Stanza: %q, expected a pgBackRest stanza name (A-Z, a-z, 0-9, _, -)", b.Stanza)
		}
		if err := checkPrivateKey(b.ClientKey.PrivatePEM, b.ClientKey.Public); err != nil {
			bad("Spec.DB.Backup.ClientKey: %v", err)
		}
		if err := checkPublicKey(b.RepoKey); err != nil {
			bad("Spec.DB.Backup.RepoKey: %v", err)
		}
	}
	return errors.Join(errs...)
}

// checkAllowFrom refuses what would put PostgreSQL on a public network: every
// source must be a private (RFC 1918) IPv4 address or network.
func checkAllowFrom(bad func(string, ...any), field string, allow []string) {
	if len(allow) == 0 {
		bad("%s: empty, expected the private addresses/CIDRs of PostgreSQL's clients", field)
	}
	for i, a := range allow {
		p, err := parseSource(a)
		switch {
		case err != nil:
			bad("%s[%d]: %v", field, i, err)
		case p.Bits() < 8 || !p.Addr().IsPrivate():
			bad("%s[%d]: %q, expected a private (RFC 1918) address or network: PostgreSQL never faces a public network", field, i, a)
		}
	}
}

func checkSecret(bad func(string, ...any), field, v string) {
	if len(v) < 16 || strings.ContainsAny(v, "\n\r\x00") {
		bad("%s: expected a single-line password of at least 16 characters (seed-derived)", field)
	}
}

func checkRepoHost(bad func(string, ...any), field, host, key string) {
	if a, err := netip.ParseAddr(host); err != nil || !a.Is4() {
		if !hostnameRE.MatchString(host) && !domainRE.MatchString(host) {
			bad("%s.RepoHost: %q, expected the repository host's IPv4 address or host name", field, host)
		}
	}
	if err := checkPublicKey(key); err != nil {
		bad("%s.RepoHostKey: %v", field, err)
	}
}
