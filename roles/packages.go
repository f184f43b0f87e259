package roles

import (
	"fmt"
	"sort"

	"github.com/belay-sh/belay/inventory"
)

// basePackages are on every server: the SSH login, sudo for the deploy user's
// exact commands, the host firewall, and curl for health checks and downloads.
var basePackages = []string{"openssh-server", "sudo", "nftables", "curl", "ca-certificates"}

// Packages lists the Debian packages a server with roles rs runs, sorted.
// The same list is installed at first boot on a cloud (Spec.InstallPackages)
// and baked into the lab image, so the two cannot drift apart.
func Packages(rs []inventory.Role, postgresVersion int) []string {
	if postgresVersion == 0 {
		postgresVersion = 15
	}
	pg := fmt.Sprintf("postgresql-%d", postgresVersion)
	set := map[string]bool{}
	for _, p := range basePackages {
		set[p] = true
	}
	add := func(ps ...string) {
		for _, p := range ps {
			set[p] = true
		}
	}
	for _, r := range rs {
		switch r {
		case inventory.RoleApp:
			// lego: the ACME client of apps with tls.mode acme; openssl: the placeholder certificate (tls.go).
			add("nginx-light", "keepalived", "restic", "lego", "openssl")
		case inventory.RoleStandbyApp:
			add("nginx-light", "restic", "lego", "openssl")
		case inventory.RoleRouter:
			// The shop routes live in a Lua shared dict (docs/cells.md).
			add("nginx-light", "libnginx-mod-http-lua", "keepalived")
		case inventory.RoleStandbyRouter:
			add("nginx-light", "libnginx-mod-http-lua")
		case inventory.RoleDB:
			add(pg, pg+"-auto-failover", "pg-auto-failover-cli", "pgbackrest")
		case inventory.RoleDBMonitor:
			add(pg, pg+"-auto-failover", "pg-auto-failover-cli")
		case inventory.RoleStandbyDB:
			add(pg, "pgbackrest")
		case inventory.RoleBackupRepo:
			// PostgreSQL itself for the restore-verification scratch instance.
			add("pgbackrest", "restic", pg)
		}
	}
	for _, r := range rs {
		if r == inventory.RoleRouter || r == inventory.RoleStandbyRouter {
			// A router terminates its app's HTTPS like an app server (router_tls.go).
			add("lego", "openssl")
		}
	}
	out := make([]string, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// AllPackages lists every package any role needs (what a machine image carries).
func AllPackages(postgresVersion int) []string {
	return Packages(inventory.Roles, postgresVersion)
}

// postgresClusterPolicy stops the postgresql package from creating a default
// cluster on 5432 when it is installed at boot: clusters are made by the roles
// (pg_auto_failover, pgBackRest restore), never by the package.
const postgresClusterPolicy = "/etc/postgresql-common/createcluster.d/belay.conf"

// agentPath is where servers keep the belay binary (vip claim, vip peers).
const agentPath = "/usr/local/bin/belay"

// addPackagesAndAgent installs the role packages (clouds whose stock image lacks
// them) and fetches the belay binary, verified by its SHA-256, before any role
// command runs. cloud-init runs package installs in its final stage before
// runcmd, and write_files (the cluster policy) in its init stage before both.
func addPackagesAndAgent(s *Spec, c *CloudConfig) {
	if s.InstallPackages {
		c.PackageUpdate = true
		c.Packages = Packages(s.Roles, specPostgresVersion(s))
		c.WriteFiles = append(c.WriteFiles, File{Path: postgresClusterPolicy, Content: "create_main_cluster = false\n", Owner: "root:root", Permissions: "0644"})
	}
	if s.Agent != nil {
		// One script for first boot and converge (agent.go).
		c.WriteFiles = append(c.WriteFiles, agentFile(s.Agent))
		c.Runcmd = append(c.Runcmd, AgentInstallCmd())
	}
}

func specPostgresVersion(s *Spec) int {
	switch {
	case s.DB != nil:
		return s.DB.PostgresVersion
	case s.StandbyDB != nil:
		return s.StandbyDB.PostgresVersion
	case s.Backup != nil:
		return s.Backup.PostgresVersion
	}
	return 0
}
