package roles

import (
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/belay-sh/belay/inventory"
)

func TestPackagesPerRole(t *testing.T) {
	tests := []struct {
		roles   []inventory.Role
		want    []string
		notWant []string
	}{
		{[]inventory.Role{inventory.RoleApp}, []string{"keepalived", "nginx-light", "openssh-server", "restic", "nftables"}, []string{"postgresql-15"}},
		{[]inventory.Role{inventory.RoleStandbyApp}, []string{"nginx-light", "restic"}, []string{"keepalived", "postgresql-15"}},
		{[]inventory.Role{inventory.RoleDB}, []string{"postgresql-15", "postgresql-15-auto-failover", "pg-auto-failover-cli", "pgbackrest"}, []string{"nginx-light", "keepalived"}},
		{[]inventory.Role{inventory.RoleDBMonitor}, []string{"postgresql-15-auto-failover"}, []string{"pgbackrest", "nginx-light"}},
		{[]inventory.Role{inventory.RoleStandbyDB}, []string{"postgresql-15", "pgbackrest"}, []string{"pg-auto-failover-cli"}},
		{[]inventory.Role{inventory.RoleRouter}, []string{"nginx-light", "libnginx-mod-http-lua", "keepalived"}, []string{"postgresql-15"}},
		{[]inventory.Role{inventory.RoleStandbyRouter}, []string{"nginx-light", "libnginx-mod-http-lua"}, []string{"keepalived"}},
		{[]inventory.Role{inventory.RoleBackupRepo}, []string{"pgbackrest", "restic", "postgresql-15"}, []string{"keepalived"}},
	}
	for _, tt := range tests {
		got := Packages(tt.roles, 15)
		if !slices.IsSorted(got) {
			t.Errorf("%v: %v not sorted (user data must be deterministic)", tt.roles, got)
		}
		for _, p := range tt.want {
			if !slices.Contains(got, p) {
				t.Errorf("%v: packages %v lack %s", tt.roles, got, p)
			}
		}
		for _, p := range tt.notWant {
			if slices.Contains(got, p) {
				t.Errorf("%v: packages %v include %s, which the role does not run", tt.roles, got, p)
			}
		}
	}
}

// A cloud server boots a stock Debian image: its user data must install the
// role packages before runcmd, keep PostgreSQL from creating a cluster on 5432,
// and fetch the belay binary only if its checksum matches.
func TestCloudInstallAndAgent(t *testing.T) {
	s := abAppSpec(t)
	s.InstallPackages = true
	s.Agent = &Agent{URL: "https://example.com/belay-linux-amd64", SHA256: strings.Repeat("ab", 32)}
	c, out := renderParsed(t, s)
	if !c.PackageUpdate || !slices.Contains(c.Packages, "keepalived") || !slices.Contains(c.Packages, "nginx-light") {
		t.Fatalf("package_update=%v packages=%v", c.PackageUpdate, c.Packages)
	}
	if f := fileAt(t, c, postgresClusterPolicy); !strings.Contains(f.Content, "create_main_cluster = false") {
		t.Errorf("cluster policy = %q", f.Content)
	}
	if len(c.Runcmd) == 0 || !strings.Contains(strings.Join(c.Runcmd[0], " "), "sha256sum -c") {
		t.Fatalf("first runcmd should fetch and verify the agent, got %v", c.Runcmd[0])
	}
	if !strings.Contains(strings.Join(c.Runcmd[0], " "), "mv -f /usr/local/bin/belay.download /usr/local/bin/belay") {
		t.Errorf("agent is not moved into place only after verification: %v", c.Runcmd[0])
	}
	if ci, err := exec.LookPath("cloud-init"); err == nil {
		f := writeTemp(t, t.TempDir(), "user-data", string(out), 0o600)
		if res, err := exec.Command(ci, "schema", "-c", f).CombinedOutput(); err != nil || !strings.Contains(string(res), "Valid cloud-config") {
			t.Fatalf("cloud-init schema: %v\n%s", err, res)
		}
	} else {
		t.Log("cloud-init not installed: schema check skipped")
	}

	// The lab image carries everything: no package module, no download.
	lab := abAppSpec(t)
	lc, _ := renderParsed(t, lab)
	if lc.PackageUpdate || len(lc.Packages) > 0 || hasFile(lc, postgresClusterPolicy) {
		t.Errorf("lab spec renders package installs: update=%v packages=%v", lc.PackageUpdate, lc.Packages)
	}
}

func TestAgentValidation(t *testing.T) {
	tests := []struct {
		agent Agent
		want  string
	}{
		{Agent{URL: "http://example.com/belay", SHA256: strings.Repeat("ab", 32)}, "Spec.Agent.URL"},
		{Agent{URL: "https://example.com/belay'; rm -rf /", SHA256: strings.Repeat("ab", 32)}, "Spec.Agent.URL"},
		{Agent{URL: "https://example.com/belay", SHA256: "ABC"}, "Spec.Agent.SHA256"},
	}
	for _, tt := range tests {
		s := abAppSpec(t)
		s.Agent = &tt.agent
		if _, err := Render(s); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Render with %+v = %v, want error naming %s", tt.agent, err, tt.want)
		}
	}
}
