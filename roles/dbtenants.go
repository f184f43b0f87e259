package roles

import (
	"fmt"
	"strings"
)

// DBTenant is a cell's own database and role on the stack's cluster: only the
// cell's servers may log in, and only to their database, so one cell cannot
// read or lock another's data.
type DBTenant struct {
	// Database and User are the same identifier (config.CellDatabase).
	Database string
	User     string
	Password string // secret
	// AllowFrom are the cell's servers (addresses or CIDRs).
	AllowFrom []string
}

// validateTenants checks the cells' databases of a data node.
func validateTenants(d *DB, prefix string, bad func(string, ...any)) {
	seen := map[string]bool{d.Name: true, dbAppUser(d.AppUser): true}
	for i, t := range d.Tenants {
		p := fmt.Sprintf("%s.Tenants[%d]", prefix, i)
		if !pgIdentRE.MatchString(t.Database) || seen[t.Database] || t.Database == "postgres" || t.Database == pgafMonitorDB || strings.HasPrefix(t.Database, "template") {
			bad("%s.Database: %q, expected a unique database name (a-z, 0-9, _)", p, t.Database)
		}
		seen[t.Database] = true
		if !pgIdentRE.MatchString(t.User) || reservedRoles[t.User] || strings.HasPrefix(t.User, "pg_") {
			bad("%s.User: %q, expected a role name (a-z, 0-9, _; not postgres, pg_*, or a pg_auto_failover role)", p, t.User)
		}
		checkSecret(bad, p+".Password", t.Password)
		for j, a := range t.AllowFrom {
			if _, err := parseSource(a); err != nil {
				bad("%s.AllowFrom[%d]: %v", p, j, err)
			}
		}
	}
}

// tenantHBA renders the cells' pg_hba lines: each role reaches its own database only.
func tenantHBA(b *strings.Builder, d *DB) {
	for _, t := range d.Tenants {
		fmt.Fprintf(b, "# Cell database %s: its own servers only.\n", t.Database)
		for _, src := range hbaSources(t.AllowFrom) {
			fmt.Fprintf(b, "hostssl %s %s %s scram-sha-256\n", t.Database, t.User, src)
		}
	}
}

// tenantSQL creates the cells' roles and databases (idempotent).
func tenantSQL(b *strings.Builder, d *DB) {
	for _, t := range d.Tenants {
		fmt.Fprintf(b, "SELECT 'CREATE ROLE %[1]s' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '%[1]s')\n\\gexec\n", t.User)
		fmt.Fprintf(b, "ALTER ROLE %s LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD '%s';\n", t.User, scramVerifier(t.User, t.Password))
		fmt.Fprintf(b, "SELECT 'CREATE DATABASE %[1]s OWNER %[2]s' WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '%[1]s')\n\\gexec\n", t.Database, t.User)
		fmt.Fprintf(b, "ALTER DATABASE %s OWNER TO %s;\n", t.Database, t.User)
		fmt.Fprintf(b, "REVOKE ALL ON DATABASE %s FROM PUBLIC;\n", t.Database)
	}
}
