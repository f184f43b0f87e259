package roles

import (
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/belay-sh/belay/internal/pgtest"
	"github.com/belay-sh/belay/inventory"
)

// renderParsed renders s and parses the result back, failing the test on any error.
func renderParsed(t *testing.T, s *Spec) (*CloudConfig, []byte) {
	t.Helper()
	out, err := Render(s)
	if err != nil {
		t.Fatalf("Render(%s): %v", s.Hostname, err)
	}
	if !strings.HasPrefix(string(out), "#cloud-config\n") {
		t.Fatalf("user data does not start with #cloud-config: %.40q", out)
	}
	var c CloudConfig
	if err := yaml.Unmarshal(out, &c); err != nil {
		t.Fatalf("rendered user data is not YAML: %v", err)
	}
	// Tests read files as they land on disk (cloud-init decodes gz+b64).
	for i, f := range c.WriteFiles {
		text, err := f.Text()
		if err != nil {
			t.Fatal(err)
		}
		c.WriteFiles[i].Content, c.WriteFiles[i].Encoding = text, ""
	}
	return &c, out
}

// fileAt returns the write_files entry for path, failing the test if there is none.
func fileAt(t *testing.T, c *CloudConfig, path string) File {
	t.Helper()
	for _, f := range c.WriteFiles {
		if f.Path == path {
			return f
		}
	}
	t.Fatalf("no write_files entry %s", path)
	return File{}
}

func hasFile(c *CloudConfig, path string) bool {
	for _, f := range c.WriteFiles {
		if f.Path == path {
			return true
		}
	}
	return false
}

// hasCmd reports whether runcmd holds exactly argv.
func hasCmd(c *CloudConfig, argv ...string) bool {
	for _, cmd := range c.Runcmd {
		if strings.Join(cmd, "\x00") == strings.Join(argv, "\x00") {
			return true
		}
	}
	return false
}

// userEntry returns the users entry called name, or nil.
func userEntry(c *CloudConfig, name string) map[string]any {
	for _, u := range c.Users {
		if m, ok := u.(map[string]any); ok && m["name"] == name {
			return m
		}
	}
	return nil
}

// tool returns the path of an external checker, or skips the test saying it is absent.
func tool(t *testing.T, name string) string {
	t.Helper()
	for _, dir := range []string{"", "/usr/sbin/", "/sbin/", "/usr/bin/"} {
		if dir == "" {
			if p, err := exec.LookPath(name); err == nil {
				return p
			}
			continue
		}
		if _, err := os.Stat(dir + name); err == nil {
			return dir + name
		}
	}
	t.Skipf("%s is not installed; this check needs it (apt-get install the package that ships it)", name)
	return ""
}

// writeTemp writes content to name in a fresh test directory.
func writeTemp(t *testing.T, dir, name, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRenderCommon(t *testing.T) {
	for _, s := range []*Spec{abAppSpec(t), abStandbyAppSpec(t), abBackupSpec(t)} {
		t.Run(s.Hostname, func(t *testing.T) {
			c, _ := renderParsed(t, s)
			if c.Hostname != s.Hostname || c.PreserveHostname || !c.ManageEtcHosts {
				t.Errorf("hostname = %q (preserve %v)", c.Hostname, c.PreserveHostname)
			}
			if c.SSHPwauth || !c.DisableRoot || !c.SSHDeletekeys || len(c.SSHGenkeytypes) != 1 || c.SSHGenkeytypes[0] != "ed25519" {
				t.Errorf("ssh switches: pwauth=%v disable_root=%v deletekeys=%v genkeytypes=%v", c.SSHPwauth, c.DisableRoot, c.SSHDeletekeys, c.SSHGenkeytypes)
			}
			if c.SSHKeys == nil || c.SSHKeys.Ed25519Private != s.HostKey.PrivatePEM || c.SSHKeys.Ed25519Public != s.HostKey.Public {
				t.Error("ssh_keys is not the pinned host key")
			}
			u := userEntry(c, s.DeployUser)
			if u == nil || u["lock_passwd"] != true || u["sudo"] != nil {
				t.Fatalf("deploy user = %v, want a locked-password user without blanket sudo", u)
			}
			if keys, _ := u["ssh_authorized_keys"].([]any); len(keys) != 1 || keys[0] != s.AdminKeys[0] {
				t.Errorf("deploy keys = %v", u["ssh_authorized_keys"])
			}
			sshd := fileAt(t, c, sshdDropIn).Content
			for _, line := range []string{"PasswordAuthentication no", "KbdInteractiveAuthentication no", "PermitRootLogin no", "AuthenticationMethods publickey"} {
				if !strings.Contains(sshd, line+"\n") {
					t.Errorf("sshd drop-in lacks %q", line)
				}
			}
			nft := fileAt(t, c, nftablesConf).Content
			for _, want := range []string{"policy drop;", `iif "lo" accept`, "ct state established,related accept"} {
				if !strings.Contains(nft, want) {
					t.Errorf("nftables.conf lacks %q", want)
				}
			}
			if ssh := ruleLine(nft, `comment "ssh"`); !strings.HasPrefix(ssh, "ip saddr {") || !strings.Contains(ssh, "203.0.113.0/24") || !strings.Contains(ssh, "tcp dport 22 accept") {
				t.Errorf("ssh rule = %q, want port 22 from SSHFrom only", ssh)
			}
			if !hasCmd(c, "systemctl", "enable", "nftables.service") || !hasCmd(c, "systemctl", "restart", "nftables.service") {
				t.Error("nftables is not enabled and restarted")
			}
			if !hasFile(c, journaldDropIn) || !hasFile(c, timesyncDropIn) {
				t.Error("journald/timesyncd drop-ins missing")
			}
			// Nothing may reach the network at boot: no package modules.
			var raw map[string]any
			if err := yaml.Unmarshal(mustRender(t, s), &raw); err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{"packages", "package_update", "package_upgrade", "apt", "ntp", "snap"} {
				if _, ok := raw[k]; ok {
					t.Errorf("user data uses %s, which reaches the network", k)
				}
			}
			last := c.Runcmd[len(c.Runcmd)-1]
			if !strings.Contains(strings.Join(last, " "), "cloud-init-done") {
				t.Errorf("last runcmd = %v, want the cloud-init-done marker", last)
			}
		})
	}
}

func mustRender(t *testing.T, s *Spec) []byte {
	t.Helper()
	b, err := Render(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRenderDeterministic: the same Spec gives the same bytes (a change would
// replace the server), whatever the order of roles, peers or sources.
func TestRenderDeterministic(t *testing.T) {
	for name, mk := range map[string]func(testing.TB) *Spec{
		"app": abAppSpec, "app-do": abAppDOSpec, "standby-app": abStandbyAppSpec, "backup-repo": abBackupSpec,
	} {
		t.Run(name, func(t *testing.T) {
			want := mustRender(t, mk(t))
			for i := 0; i < 20; i++ {
				if got := mustRender(t, mk(t)); string(got) != string(want) {
					t.Fatalf("render %d differs from the first", i)
				}
			}
		})
	}
	t.Run("order of peers and sources", func(t *testing.T) {
		s := abAppSpec(t)
		s.App.VRRP.Peers = []string{"10.213.0.21", "10.213.0.22", "10.213.0.23"}
		s.SSHFrom = []string{"203.0.113.0/24", "198.51.100.7", "192.0.2.0/24"}
		want := mustRender(t, s)
		r := rand.New(rand.NewSource(1))
		for i := 0; i < 10; i++ {
			r.Shuffle(len(s.App.VRRP.Peers), func(a, b int) { s.App.VRRP.Peers[a], s.App.VRRP.Peers[b] = s.App.VRRP.Peers[b], s.App.VRRP.Peers[a] })
			r.Shuffle(len(s.SSHFrom), func(a, b int) { s.SSHFrom[a], s.SSHFrom[b] = s.SSHFrom[b], s.SSHFrom[a] })
			if got := mustRender(t, s); string(got) != string(want) {
				t.Fatal("output depends on the order of peers or SSH sources")
			}
		}
	})
}

func TestRenderValidation(t *testing.T) {
	cases := []struct {
		name string
		spec func(testing.TB) *Spec
		edit func(*Spec)
		want string
	}{
		{"nil", nil, nil, "Spec is nil"},
		{"hostname", abAppSpec, func(s *Spec) { s.Hostname = "Web_1" }, `Spec.Hostname: "Web_1"`},
		{"no roles", abAppSpec, func(s *Spec) { s.Roles = nil }, "Spec.Roles: empty"},
		{"unknown role", abAppSpec, func(s *Spec) { s.Roles = append(s.Roles, "mail") }, `unknown role "mail"`},
		{"app and standby-app", abAppSpec, func(s *Spec) { s.Roles = append(s.Roles, inventory.RoleStandbyApp) }, "app and standby-app on one host"},
		{"site", abAppSpec, func(s *Spec) { s.Site = "moon" }, `Spec.Site: "moon"`},
		{"root deploy user", abAppSpec, func(s *Spec) { s.DeployUser = "root" }, `Spec.DeployUser: "root"`},
		{"no admin keys", abAppSpec, func(s *Spec) { s.AdminKeys = nil }, "Spec.AdminKeys: empty"},
		{"admin key with options", abAppSpec, func(s *Spec) { s.AdminKeys[0] = `command="x" ` + s.AdminKeys[0] }, "Spec.AdminKeys[0]"},
		{"host key mismatch", abAppSpec, func(s *Spec) { s.HostKey.Public = abKey(t, "other").Public }, "Spec.HostKey: Public does not match PrivatePEM"},
		{"no ssh sources", abAppSpec, func(s *Spec) { s.SSHFrom = nil }, "Spec.SSHFrom: empty"},
		{"bad ssh source", abAppSpec, func(s *Spec) { s.SSHFrom = []string{"everywhere"} }, `Spec.SSHFrom[0]: "everywhere"`},
		{"address outside site", abAppSpec, func(s *Spec) { s.Net.PrivateAddress = "10.99.0.1" }, "outside Spec.Net.SiteCIDR"},
		{"interface", abAppSpec, func(s *Spec) { s.Net.PrivateInterface = "" }, "Spec.Net.PrivateInterface"},
		{"stray section", abAppSpec, func(s *Spec) { s.Backup = abBackupSpec(t).Backup }, "Spec.Backup: set, but the host has no role that uses it"},
		{"missing section", abAppSpec, func(s *Spec) { s.App = nil }, "Spec.App: nil"},
		{"port", abAppSpec, func(s *Spec) { s.App.Port = 0 }, "Spec.App.Port: 0, expected 1024-65534"},
		{"port max", abAppSpec, func(s *Spec) { s.App.Port = 65535 }, "Spec.App.Port: 65535, expected 1024-65534"},
		{"health path", abAppSpec, func(s *Spec) { s.App.HealthPath = "up" }, `Spec.App.HealthPath: "up"`},
		{"domain", abAppSpec, func(s *Spec) { s.App.Domains = []string{"bad domain"} }, `Spec.App.Domains[0]: "bad domain"`},
		{"database url", abAppSpec, func(s *Spec) { s.App.DatabaseURL = "mysql://x" }, "Spec.App.DatabaseURL"},
		{"restic repo", abAppSpec, func(s *Spec) { s.App.ResticRepo = "/srv/restic" }, "Spec.App.ResticRepo"},
		{"standby flag", abAppSpec, func(s *Spec) { s.App.Standby = true }, "Spec.App.Standby: true"},
		{"no vrrp", abAppSpec, func(s *Spec) { s.App.VRRP = nil }, "Spec.App.VRRP: nil"},
		{"vrrp on standby", abStandbyAppSpec, func(s *Spec) { s.App.VRRP = abAppSpec(t).App.VRRP }, "Spec.App.VRRP: set on a standby server"},
		{"router id", abAppSpec, func(s *Spec) { s.App.VRRP.RouterID = 256 }, "Spec.App.VRRP.RouterID: 256, expected 1-255"},
		{"priority", abAppSpec, func(s *Spec) { s.App.VRRP.Priority = 255 }, "Spec.App.VRRP.Priority: 255"},
		{"self as peer", abAppSpec, func(s *Spec) { s.App.VRRP.Peers = []string{"10.213.0.20"} }, "this host's own address"},
		{"peers and discovery", abAppDOSpec, func(s *Spec) {
			s.Net.PrivateAddress = "10.213.0.20"
			s.App.VRRP.Peers = []string{"10.213.0.21"}
		}, "PeerDiscovery: set together with Peers"},
		{"discovery provider", abAppDOSpec, func(s *Spec) { s.App.VRRP.PeerDiscovery.Provider = "aws" }, `PeerDiscovery.Provider: "aws"`},
		{"discovery token", abAppDOSpec, func(s *Spec) { s.App.VRRP.PeerDiscovery.Token = "" }, "PeerDiscovery.Token"},
		{"vip", abAppSpec, func(s *Spec) { s.App.VRRP.VIP = "fe80::1" }, `Spec.App.VRRP.VIP: "fe80::1"`},
		{"claim command quotes", abAppSpec, func(s *Spec) { s.App.VRRP.ClaimCommand = `/bin/sh -c "x"` }, "Spec.App.VRRP.ClaimCommand"},
		{"advert", abAppSpec, func(s *Spec) { s.App.VRRP.AdvertInterval = 50 }, "Spec.App.VRRP.AdvertInterval: 50"},
		{"stanza", abBackupSpec, func(s *Spec) { s.Backup.Stanza = "a b" }, `Spec.Backup.Stanza: "a b"`},
		{"full every", abBackupSpec, func(s *Spec) { s.Backup.FullEvery = "hourly" }, `Spec.Backup.FullEvery: "hourly", expected daily or weekly`},
		{"retention", abBackupSpec, func(s *Spec) { s.Backup.RetentionDays = 0 }, "Spec.Backup.RetentionDays: 0"},
		{"db hosts", abBackupSpec, func(s *Spec) { s.Backup.DBHosts = nil }, "Spec.Backup.DBHosts: empty"},
		{"db host key", abBackupSpec, func(s *Spec) { s.Backup.DBHosts[0].HostKey = "nope" }, "Spec.Backup.DBHosts[0].HostKey"},
		{"client keys", abBackupSpec, func(s *Spec) { s.Backup.ClientKeys = nil }, "Spec.Backup.ClientKeys: empty"},
		{"restic CA", abBackupSpec, func(s *Spec) { s.Backup.ResticCA = "" }, "Spec.Backup.ResticCA: not an SSH public key"},
		{"restic app name", abBackupSpec, func(s *Spec) { s.Backup.ResticApps = append(s.Backup.ResticApps, "web") }, "Spec.Backup.ResticApps[2]: \"web\", expected a unique app name"},
		{"restic app injection", abBackupSpec, func(s *Spec) { s.Backup.ResticApps = []string{"a b\nroot"} }, "Spec.Backup.ResticApps[0]"},
		{"restic cert missing", abAppSpec, func(s *Spec) { s.App.BackupCert = "" }, "Spec.App.BackupCert: expected one OpenSSH certificate line"},
		{"restic cert not a cert", abAppSpec, func(s *Spec) { s.App.BackupCert = s.App.BackupKey.Public }, "Spec.App.BackupCert: expected an OpenSSH user certificate"},
		{"restic cert other key", abAppSpec, func(s *Spec) { s.App.BackupCert = abCert(t, abKey(t, "x").Public, "restic-web") }, "Spec.App.BackupCert: certifies another key"},
		{"restic cert other app", abAppSpec, func(s *Spec) { s.App.BackupCert = abCert(t, s.App.BackupKey.Public, "restic-api") }, "Spec.App.BackupCert: principals [restic-api], expected exactly [restic-web]"},
		{"repo key", abBackupSpec, func(s *Spec) { s.Backup.RepoKey.PrivatePEM = "garbage" }, "Spec.Backup.RepoKey"},
		{"postgres version", abBackupSpec, func(s *Spec) { s.Backup.PostgresVersion = 0 }, "Spec.Backup.PostgresVersion: 0"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var s *Spec
			if tc.spec != nil {
				s = tc.spec(t)
				tc.edit(s)
			}
			out, err := Render(s)
			if err == nil {
				t.Fatalf("Render accepted it (%d bytes), want an error mentioning %q", len(out), tc.want)
			}
			if out != nil {
				t.Error("Render returned user data along with an error")
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "roles: ") {
				t.Errorf("error = %q, want it to start with \"roles: \" and mention %q", err, tc.want)
			}
		})
	}
}

// TestRenderWriteFilesUnique: no two roles write one path (cloud-init keeps the last silently).
func TestRenderWriteFilesUnique(t *testing.T) {
	c := &CloudConfig{WriteFiles: []File{{Path: "/etc/x", Content: "a"}, {Path: "/etc/x", Content: "b"}}}
	if err := checkFiles(c); err == nil || !strings.Contains(err.Error(), "/etc/x is written by two roles") {
		t.Errorf("checkFiles = %v", err)
	}
}

// TestSSHDConfig runs the real sshd over the rendered drop-ins (common and,
// on the repo host, the restic chroot) and asks it for the effective settings.
func TestSSHDConfig(t *testing.T) {
	sshd := tool(t, "sshd")
	c, _ := renderParsed(t, abBackupSpec(t))
	dir := t.TempDir()
	hostKey := writeTemp(t, dir, "ssh_host_ed25519_key", abKey(t, "sshd-test").PrivatePEM, 0o600)
	for _, f := range c.WriteFiles {
		if strings.HasPrefix(f.Path, "/etc/ssh/sshd_config.d/") {
			// The restic block matches the group belay-restic-maintain creates;
			// the system group daemon stands in for it (no account is created here).
			content := strings.NewReplacer("/etc/ssh/ssh_host_ed25519_key", hostKey, "Match Group "+ResticGroup, "Match Group daemon").Replace(f.Content)
			writeTemp(t, dir, "sshd_config.d/"+filepath.Base(f.Path), content, 0o644)
		}
	}
	// Debian 12's sshd_config shape: the include first, then settings the drop-ins must beat.
	main := writeTemp(t, dir, "sshd_config", "Include "+dir+"/sshd_config.d/*.conf\nPasswordAuthentication yes\nPermitRootLogin yes\nKbdInteractiveAuthentication yes\nUsePAM yes\nX11Forwarding yes\nSubsystem sftp /usr/lib/openssh/sftp-server\n", 0o644)
	if out, err := exec.Command(sshd, "-t", "-f", main).CombinedOutput(); err != nil {
		t.Fatalf("sshd -t: %v\n%s", err, out)
	}
	effective := func(user string) string {
		t.Helper()
		out, err := exec.Command(sshd, "-T", "-f", main, "-C", "user="+user+",host=client,addr=192.0.2.1").CombinedOutput()
		if err != nil {
			t.Fatalf("sshd -T: %v\n%s", err, out)
		}
		return string(out)
	}
	deploy := effective("deploy")
	for _, want := range []string{"passwordauthentication no", "permitrootlogin no", "kbdinteractiveauthentication no", "authenticationmethods publickey", "x11forwarding no", "chrootdirectory none"} {
		if !strings.Contains(deploy, want+"\n") {
			t.Errorf("deploy: effective sshd config lacks %q", want)
		}
	}
	restic := effective("daemon")
	for _, want := range []string{"chrootdirectory %h", "forcecommand internal-sftp -d /repo", "allowtcpforwarding no", "permittty no",
		"trustedusercakeys " + ResticCAFile, "authorizedkeysfile none"} {
		if !strings.Contains(restic, want+"\n") {
			t.Errorf("restic user (group daemon): effective sshd config lacks %q", want)
		}
	}
	if strings.Contains(deploy, "trustedusercakeys /") {
		t.Error("deploy: the restic CA is trusted outside the restic block")
	}
}

// TestNftRuleset checks every role's ruleset with nft in a network (and user)
// namespace of its own, so nothing on the machine can be touched and no root is needed.
func TestNftRuleset(t *testing.T) {
	nft := tool(t, "nft")
	unshare := tool(t, "unshare")
	for name, mk := range map[string]func(testing.TB) *Spec{"app": abAppSpec, "app-do": abAppDOSpec, "standby-app": abStandbyAppSpec, "backup-repo": abBackupSpec} {
		t.Run(name, func(t *testing.T) {
			c, _ := renderParsed(t, mk(t))
			f := writeTemp(t, t.TempDir(), "nftables.conf", fileAt(t, c, nftablesConf).Content, 0o644)
			// The ruleset names users the role creates (metadataUsers): check it
			// against a passwd that has them, bind-mounted in the namespace.
			pw := passwdWithRoleUsers(t)
			if out, err := exec.Command(unshare, "-rnm", "sh", "-c", `mount --bind "$1" /etc/passwd && exec "$2" -c -f "$3"`, "sh", pw, nft, f).CombinedOutput(); err != nil {
				t.Fatalf("nft -c: %v\n%s", err, out)
			}
		})
	}
}

// ruleLine returns the trimmed ruleset line that contains marker.
func ruleLine(ruleset, marker string) string {
	for _, l := range strings.Split(ruleset, "\n") {
		if strings.Contains(l, marker) {
			return strings.TrimSpace(l)
		}
	}
	return ""
}

// TestCloudInitSchema validates every role's user data with cloud-init's own
// schema (cloud-init 22.4, what Debian 12 boots).
func TestCloudInitSchema(t *testing.T) {
	ci := tool(t, "cloud-init")
	for name, mk := range map[string]func(testing.TB) *Spec{"app": abAppSpec, "app-do": abAppDOSpec, "standby-app": abStandbyAppSpec, "backup-repo": abBackupSpec} {
		t.Run(name, func(t *testing.T) {
			f := writeTemp(t, t.TempDir(), "user-data", string(mustRender(t, mk(t))), 0o600)
			out, err := exec.Command(ci, "schema", "-c", f).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "Valid cloud-config") {
				t.Fatalf("cloud-init schema: %v\n%s", err, out)
			}
			if strings.Contains(strings.ToLower(string(out)), "deprecat") {
				t.Errorf("cloud-init reports deprecated keys:\n%s", out)
			}
		})
	}
}

// TestSystemdUnitsVerify runs systemd-analyze verify on every unit and timer
// the app and backup roles render (their scripts stubbed at a temporary path).
func TestSystemdUnitsVerify(t *testing.T) {
	sa := tool(t, "systemd-analyze")
	for name, mk := range map[string]func(testing.TB) *Spec{"app": abAppSpec, "app-do": abAppDOSpec, "standby-app": abStandbyAppSpec, "backup-repo": abBackupSpec} {
		t.Run(name, func(t *testing.T) {
			c, _ := renderParsed(t, mk(t))
			dir := t.TempDir()
			bin := filepath.Join(dir, "bin") + "/"
			var units []string
			// The belay binary itself is installed by the image or the agent, not write_files.
			writeTemp(t, dir, "bin/belay", "#!/bin/sh\n", 0o755)
			for _, f := range c.WriteFiles {
				switch {
				case strings.HasPrefix(f.Path, "/usr/local/bin/"):
					writeTemp(t, dir, "bin/"+filepath.Base(f.Path), "#!/bin/sh\n", 0o755)
				case strings.HasPrefix(f.Path, "/etc/systemd/system/") && !strings.Contains(f.Path, ".d/") &&
					(strings.HasSuffix(f.Path, ".service") || strings.HasSuffix(f.Path, ".timer")):
					units = append(units, writeTemp(t, dir, "units/"+filepath.Base(f.Path), strings.ReplaceAll(f.Content, "/usr/local/bin/", bin), 0o644))
				}
			}
			if len(units) == 0 {
				t.Fatal("no units rendered")
			}
			cmd := exec.Command(sa, append([]string{"verify", "--man=no"}, units...)...)
			cmd.Dir = filepath.Join(dir, "units")
			cmd.Env = append(os.Environ(), "SYSTEMD_LOG_LEVEL=notice")
			if out, err := cmd.CombinedOutput(); err != nil || len(strings.TrimSpace(string(out))) > 0 {
				t.Errorf("systemd-analyze verify: %v\n%s", err, out)
			}
		})
	}
}

// startPostgresOnFreePort is pgtest.StartOnFreePort (shared with the router's tests).
func startPostgresOnFreePort(t *testing.T, logPath string, start func(port int) (string, error)) int {
	t.Helper()
	return pgtest.StartOnFreePort(t, logPath, start)
}
