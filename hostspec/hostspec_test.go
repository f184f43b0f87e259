package hostspec

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"gopkg.in/yaml.v3"

	"github.com/belay-sh/belay/config"
	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/roles"
	"github.com/belay-sh/belay/topology"
)

const testSeed = "hostspec-test-seed-0123456789abcdef0123456789"

// exampleConfig loads stacks/Pulumi.example.yaml (DigitalOcean primary, Hetzner standby).
func exampleConfig(t *testing.T) *config.Config {
	t.Helper()
	_, here, _, _ := runtime.Caller(0)
	path := filepath.Join(filepath.Dir(here), "..", "stacks", "Pulumi.example.yaml")
	cfg, err := config.ParseStackFile(path, config.WithHostKeySeed(testSeed))
	if err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	// The custom certificate is encrypted in the file; `pulumi up` would decrypt it.
	cfg.TLSCertificates = map[string]config.TLSCertificate{"admin": {Certificate: testCert, Key: testKey}}
	return cfg
}

// testCert/testKey: self-signed for admin.example.com, valid 100 years.
const (
	testCert = `-----BEGIN CERTIFICATE-----
MIIBrjCCAVOgAwIBAgIUHyPhoimnOIjrrHWK2XS3OnWcMpQwCgYIKoZIzj0EAwIw
HDEaMBgGA1UEAwwRYWRtaW4uZXhhbXBsZS5jb20wIBcNMjYxMjA2MDI1NTE1WhgP
MjEyNjExMTIwMjU1MTVaMBwxGjAYBgNVBAMMEWFkbWluLmV4YW1wbGUuY29tMFkw
EwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAErDbWHf+ud+jTUhit4mxmFPSbxMSngJgO
T8BbfMZY9O3NybV/J1ss8JHtF2lDZxZLqTy0DsAbBBx48XjRa0WDdqNxMG8wHQYD
VR0OBBYEFOkdHujTG9Kj+nZ6+CXWynh4Td6cMB8GA1UdIwQYMBaAFOkdHujTG9Kj
+nZ6+CXWynh4Td6cMA8GA1UdEwEB/wQFMAMBAf8wHAYDVR0RBBUwE4IRYWRtaW4u
ZXhhbXBsZS5jb20wCgYIKoZIzj0EAwIDSQAwRgIhANUKiZFogALrHXVCcHSAPm6Q
UOuldu9njoT+eF362WtGAiEA4YO2/O3Yt/4hISmbUzfbXD45vtEj1BI2sc6/JKcW
2y0=
-----END CERTIFICATE-----
`
	testKey = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgz0htYs79lV7BuxpJ
mJR0vM5fsi8LZFArxyTwWSF6cuihRANCAASsNtYd/6536NNSGK3ibGYU9JvExKeA
mA5PwFt8xlj07c3JtX8nWyzwke0XaUNnFkupPLQOwBsEHHjxeNFrRYN2
-----END PRIVATE KEY-----
`
)

// hetznerPrimary flips the example so the primary pins addresses (Hetzner).
func hetznerPrimary(t *testing.T) *config.Config {
	t.Helper()
	cfg := exampleConfig(t)
	cfg.Sites.Primary, cfg.Sites.Standby = config.Site{Provider: config.Hetzner, Region: "nbg1"}, config.Site{Provider: config.DigitalOcean, Region: "fra1"}
	return cfg
}

func build(t *testing.T, cfg *config.Config, lab bool, edit func(*Env)) (map[string]*roles.Spec, *topology.Topology) {
	t.Helper()
	topo, err := topology.Plan(cfg)
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	env, err := DefaultEnv(cfg, topo, lab)
	if err != nil {
		t.Fatalf("DefaultEnv: %v", err)
	}
	if edit != nil {
		edit(&env)
	}
	specs, err := Build(cfg, topo, "test", env)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	return specs, topo
}

// TestBuildRendersEveryHost: every Spec Build returns is one Render accepts,
// which is the contract the lab and the Pulumi components depend on.
func TestBuildRendersEveryHost(t *testing.T) {
	cases := []struct {
		name string
		cfg  func(*testing.T) *config.Config
		lab  bool
		env  func(*Env)
	}{
		{"lab", exampleConfig, true, nil},
		{"hetzner primary", hetznerPrimary, false, func(e *Env) {
			s := e.Sites[inventory.Primary]
			s.ClaimToken = "hc-token"
			e.Sites[inventory.Primary] = s
			for _, a := range []string{"db-1", "db-2", "backup"} {
				e.CrossSiteAddresses[a] = "198.51.100." + map[string]string{"db-1": "1", "db-2": "2", "backup": "3"}[a]
			}
			e.Addresses["db-standby"] = "10.20.0.5"
			e.Addresses["backup"] = "10.20.0.6"
		}},
		{"digitalocean primary", exampleConfig, false, func(e *Env) {
			s := e.Sites[inventory.Primary]
			s.DiscoveryToken, s.ClaimToken = "do-read", "do-write"
			e.Sites[inventory.Primary] = s
			e.Addresses["db-1"], e.Addresses["db-2"], e.Addresses["db-monitor"] = "10.10.0.3", "10.10.0.4", "10.10.0.5"
			e.VIPs["web"] = VIP{ClaimCommand: ClaimCommand(config.DigitalOcean, "198.51.100.10")}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg(t)
			specs, topo := build(t, cfg, tc.lab, tc.env)
			if len(specs) != len(topo.Hosts) {
				t.Fatalf("%d specs for %d hosts", len(specs), len(topo.Hosts))
			}
			for name, s := range specs {
				if _, err := roles.Render(s); err != nil {
					t.Errorf("%s: Render: %v", name, err)
				}
			}
		})
	}
}

func TestBuildApp(t *testing.T) {
	cfg := hetznerPrimary(t)
	specs, topo := build(t, cfg, false, func(e *Env) {
		e.VIPs["web"] = VIP{Address: "198.51.100.50", ClaimCommand: ClaimCommand(config.Hetzner, "198.51.100.50")}
		e.Addresses["backup"] = "10.20.0.6"
		e.Addresses["db-standby"] = "10.20.0.5"
	})
	web := topo.AppHosts["web"]
	if len(web) < 2 {
		t.Fatalf("example has %d web servers, expected a pair", len(web))
	}
	first, second := specs[web[0]], specs[web[1]]
	if first.Net.PrivateInterface != "enp7s0" || first.Net.PublicInterface != "eth0" {
		t.Errorf("hetzner interfaces = %q/%q", first.Net.PrivateInterface, first.Net.PublicInterface)
	}
	v1, v2 := first.App.VRRP, second.App.VRRP
	if v1.Priority != 150 || v2.Priority != 140 {
		t.Errorf("priorities = %d, %d, want 150, 140", v1.Priority, v2.Priority)
	}
	if v1.RouterID != v2.RouterID || v1.RouterID < 1 || v1.RouterID > 255 {
		t.Errorf("router IDs = %d, %d: one group shares one ID in 1-255", v1.RouterID, v2.RouterID)
	}
	if !reflect.DeepEqual(v1.Peers, []string{second.Net.PrivateAddress}) || v1.PeerDiscovery != nil {
		t.Errorf("web-1 peers = %v (discovery %v), want [%s]", v1.Peers, v1.PeerDiscovery, second.Net.PrivateAddress)
	}
	if v1.VIP != "198.51.100.50" || v1.VIPInterface != "eth0" || !strings.Contains(v1.ClaimCommand, "--ip 198.51.100.50") {
		t.Errorf("VIP = %q on %q, claim %q", v1.VIP, v1.VIPInterface, v1.ClaimCommand)
	}
	db1, db2 := topo.Host("db-1").PrivateAddress.String(), topo.Host("db-2").PrivateAddress.String()
	want := "postgresql://app:"
	if !strings.HasPrefix(first.App.DatabaseURL, want) ||
		!strings.Contains(first.App.DatabaseURL, "@"+db1+":5432,"+db2+":5432/"+cfg.Database.Name+"?target_session_attrs=read-write&connect_timeout=3") {
		t.Errorf("DatabaseURL = %q", first.App.DatabaseURL)
	}
	if first.App.DatabaseURL != second.App.DatabaseURL {
		t.Error("the two app servers got different database URLs")
	}
	if sb := specs[topo.StandbyApp["web"]]; !sb.App.Standby || sb.App.VRRP != nil || !strings.Contains(sb.App.DatabaseURL, "@10.20.0.5:5432/") {
		t.Errorf("standby app: standby=%v vrrp=%v url=%q", sb.App.Standby, sb.App.VRRP, sb.App.DatabaseURL)
	}
	if first.App.ResticRepo != "sftp:restic-web@10.20.0.6:/repo" {
		t.Errorf("ResticRepo = %q", first.App.ResticRepo)
	}
}

func TestBuildDigitalOceanDiscovers(t *testing.T) {
	cfg := exampleConfig(t)
	specs, topo := build(t, cfg, false, func(e *Env) {
		s := e.Sites[inventory.Primary]
		s.DiscoveryToken = "do-read"
		e.Sites[inventory.Primary] = s
		e.Addresses["db-1"], e.Addresses["db-2"], e.Addresses["db-monitor"] = "10.10.0.3", "10.10.0.4", "10.10.0.5"
	})
	s := specs[topo.AppHosts["web"][0]]
	v := s.App.VRRP
	if s.Net.PrivateAddress != "" || len(v.Peers) != 0 || v.PeerDiscovery == nil {
		t.Fatalf("DO app server: addr %q peers %v discovery %v", s.Net.PrivateAddress, v.Peers, v.PeerDiscovery)
	}
	if v.PeerDiscovery.Provider != "digitalocean" || v.PeerDiscovery.Selector != "belay-test-web" || v.PeerDiscovery.Token != "do-read" {
		t.Errorf("discovery = %+v", *v.PeerDiscovery)
	}
	if s.Net.PrivateInterface != "eth1" || s.Net.PublicInterface != "eth0" {
		t.Errorf("DO interfaces = %q/%q", s.Net.PrivateInterface, s.Net.PublicInterface)
	}
	if !strings.Contains(s.App.DatabaseURL, "@10.10.0.3:5432,10.10.0.4:5432/") {
		t.Errorf("DatabaseURL uses the assigned addresses? %q", s.App.DatabaseURL)
	}
	if got := specs["db-1"].DB.AllowFrom; !reflect.DeepEqual(got, []string{cfg.Network.PrimaryCIDR}) {
		t.Errorf("DO db AllowFrom = %v, want the site network", got)
	}
}

func TestBuildErrors(t *testing.T) {
	cfg := exampleConfig(t)
	topo, err := topology.Plan(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		edit func(*Env)
		want string
	}{
		{"DO without discovery token", func(e *Env) {
			e.Addresses["db-1"], e.Addresses["db-2"], e.Addresses["db-monitor"] = "10.10.0.3", "10.10.0.4", "10.10.0.5"
		}, "Env.Sites[primary].DiscoveryToken"},
		{"DO without assigned DB address", func(e *Env) {
			s := e.Sites[inventory.Primary]
			s.DiscoveryToken = "x"
			e.Sites[inventory.Primary] = s
		}, "Env.Addresses[db-monitor]: missing"},
		{"bad address", func(e *Env) {
			s := e.Sites[inventory.Primary]
			s.DiscoveryToken = "x"
			e.Sites[inventory.Primary] = s
			e.Addresses["db-1"], e.Addresses["db-2"], e.Addresses["db-monitor"] = "nope", "10.10.0.4", "10.10.0.5"
		}, `Env.Addresses[db-1]: "nope"`},
		{"VIP of unknown app", func(e *Env) { e.VIPs["nope"] = VIP{} }, "Env.VIPs[nope]: no such app"},
		{"missing site", func(e *Env) { delete(e.Sites, inventory.Standby) }, "Env.Sites[standby]: missing"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env, err := DefaultEnv(cfg, topo, false)
			if err != nil {
				t.Fatal(err)
			}
			tc.edit(&env)
			_, err = Build(cfg, topo, "test", env)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestBuildKeysAndBackup(t *testing.T) {
	cfg := exampleConfig(t)
	specs, topo := build(t, cfg, true, nil)
	// Host keys are the seed-derived ones the inventory pins, and all differ.
	seen := map[string]string{}
	for name, s := range specs {
		k, err := HostKey(cfg, "test", name)
		if err != nil {
			t.Fatal(err)
		}
		if s.HostKey != k {
			t.Errorf("%s: host key is not HostKey()", name)
		}
		if other, dup := seen[k.Public]; dup {
			t.Errorf("%s and %s share a host key", name, other)
		}
		seen[k.Public] = name
		if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(k.Public)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	bk := specs[topo.BackupRepo].Backup
	if len(bk.DBHosts) != 2 || bk.DBHosts[0].HostKey != specs["db-1"].HostKey.Public {
		t.Errorf("backup DBHosts = %+v", bk.DBHosts)
	}
	// Every pgBackRest client key the DB servers hold is authorized on the repo, and no other.
	want := []string{specs["db-1"].DB.Backup.ClientKey.Public, specs["db-2"].DB.Backup.ClientKey.Public, specs["db-standby"].StandbyDB.ClientKey.Public}
	if !reflect.DeepEqual(bk.ClientKeys, want) {
		t.Errorf("ClientKeys = %v, want %v", bk.ClientKeys, want)
	}
	if specs["db-1"].DB.Backup.RepoKey != bk.RepoKey.Public {
		t.Error("data node trusts a different repo key than the repo host holds")
	}
	// Each app server's restic key is certified by the CA the backup host
	// trusts, for its own app's user only; the backup host lists every app.
	caPub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(bk.ResticCA))
	if err != nil {
		t.Fatalf("ResticCA: %v", err)
	}
	checker := ssh.CertChecker{IsUserAuthority: func(k ssh.PublicKey) bool { return string(k.Marshal()) == string(caPub.Marshal()) }}
	for i, app := range cfg.Apps {
		if i >= len(bk.ResticApps) || bk.ResticApps[i] != app.Name {
			t.Errorf("ResticApps = %v, missing %s", bk.ResticApps, app.Name)
		}
		for _, h := range append(append([]string(nil), topo.AppHosts[app.Name]...), topo.StandbyApp[app.Name]) {
			k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(specs[h].App.BackupCert))
			cert, ok := k.(*ssh.Certificate)
			if err != nil || !ok {
				t.Fatalf("%s: BackupCert %q: %v", h, specs[h].App.BackupCert, err)
			}
			if string(cert.Key.Marshal()) != string(mustKey(t, specs[h].App.BackupKey.Public).Marshal()) {
				t.Errorf("%s: the certificate is for another key", h)
			}
			if err := checker.CheckCert(roles.ResticUser(app.Name), cert); err != nil {
				t.Errorf("%s: certificate refused for %s: %v", h, roles.ResticUser(app.Name), err)
			}
			if err := checker.CheckCert(roles.ResticUser(app.Name+"x"), cert); err == nil {
				t.Errorf("%s: certificate accepted for another app's user", h)
			}
		}
	}
	// The backup host and the data nodes accept SSH from the other site.
	for _, h := range []string{"db-1", "db-2"} {
		if !contains(specs[h].SSHFrom, cfg.Network.StandbyCIDR) {
			t.Errorf("%s SSHFrom %v lacks the standby site", h, specs[h].SSHFrom)
		}
	}
	if !contains(specs["backup"].SSHFrom, cfg.Network.PrimaryCIDR) {
		t.Errorf("backup SSHFrom %v lacks the primary site", specs["backup"].SSHFrom)
	}
	if contains(specs["db-monitor"].SSHFrom, cfg.Network.StandbyCIDR) {
		t.Error("the monitor needs no cross-site SSH")
	}
	// Lab: VIP 10.213.0.100+i on host0, no claim command.
	if v := specs[topo.AppHosts["web"][0]].App.VRRP; v.VIP != LabVIP(0) || v.VIPInterface != "host0" || v.ClaimCommand != "" {
		t.Errorf("lab VRRP = %+v", *v)
	}
}

func TestBuildDeterministic(t *testing.T) {
	cfg := exampleConfig(t)
	a, _ := build(t, cfg, true, nil)
	b, _ := build(t, cfg, true, nil)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("two Builds of the same input differ")
	}
}

func contains(list []string, x string) bool {
	for _, v := range list {
		if v == x {
			return true
		}
	}
	return false
}

// TestBuiltHostsPassTheirTools renders every host of the lab stack and runs
// cloud-init's schema check and nft -c (in a user+network namespace) on it:
// the whole pipeline, every role, with the real tools.
func TestBuiltHostsPassTheirTools(t *testing.T) {
	specs, _ := build(t, exampleConfig(t), true, nil)
	ci, ciErr := exec.LookPath("cloud-init")
	nft, nftErr := exec.LookPath("nft")
	unshare, unErr := exec.LookPath("unshare")
	if ciErr != nil {
		t.Log("cloud-init is not installed: schema check skipped")
	}
	if nftErr != nil || unErr != nil {
		t.Log("nft or unshare is not installed: ruleset check skipped")
	}
	if ciErr != nil && (nftErr != nil || unErr != nil) {
		t.Skip("neither cloud-init nor nft is installed")
	}
	for name, s := range specs {
		t.Run(name, func(t *testing.T) {
			ud, err := roles.Render(s)
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			dir := t.TempDir()
			f := filepath.Join(dir, "user-data")
			if err := os.WriteFile(f, ud, 0o600); err != nil {
				t.Fatal(err)
			}
			if ciErr == nil {
				if out, err := exec.Command(ci, "schema", "-c", f).CombinedOutput(); err != nil {
					t.Errorf("cloud-init schema: %v\n%s", err, out)
				}
			}
			if nftErr == nil && unErr == nil {
				var cc roles.CloudConfig
				if err := yaml.Unmarshal(ud, &cc); err != nil {
					t.Fatal(err)
				}
				for _, wf := range cc.WriteFiles {
					if wf.Path != "/etc/nftables.conf" {
						continue
					}
					rs := filepath.Join(dir, "nftables.conf")
					if err := os.WriteFile(rs, []byte(wf.Content), 0o644); err != nil {
						t.Fatal(err)
					}
					// nft resolves the user names of the metadata rule when it
					// loads: check against a passwd that has the roles' users.
					pw, _ := os.ReadFile("/etc/passwd")
					pwf := filepath.Join(dir, "passwd")
					if err := os.WriteFile(pwf, append(pw, []byte(roles.KeepalivedScriptUser+":x:64999:64999::/nonexistent:/usr/sbin/nologin\n")...), 0o644); err != nil {
						t.Fatal(err)
					}
					if out, err := exec.Command(unshare, "-rnm", "sh", "-c", `mount --bind "$1" /etc/passwd && exec "$2" -c -f "$3"`, "sh", pwf, nft, rs).CombinedOutput(); err != nil {
						t.Errorf("nft -c: %v\n%s", err, out)
					}
				}
			}
		})
	}
}

// Cloud servers boot stock Debian: they install the role packages and fetch the
// belay agent; the lab image carries both, so its user data does neither.
func TestBuildPackagesAgentArchive(t *testing.T) {
	cfg := hetznerPrimary(t)
	cfg.Backups.ArchiveTimeoutSeconds = 45
	planned, err := topology.Plan(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cloud, _ := build(t, cfg, false, func(e *Env) {
		// The DigitalOcean standby's addresses, as the created droplets would report them.
		for _, h := range planned.Hosts {
			if h.Site == inventory.Standby {
				e.Addresses[h.Name] = h.PrivateAddress.String()
			}
		}
	})
	for name, s := range cloud {
		if !s.InstallPackages || s.Agent == nil || s.Agent.URL != cfg.Agent.URL || s.Agent.SHA256 != cfg.Agent.SHA256 {
			t.Errorf("%s (cloud): InstallPackages=%v Agent=%+v", name, s.InstallPackages, s.Agent)
		}
		if s.DB != nil && !s.DB.Monitor && s.DB.ArchiveTimeout != 45 {
			t.Errorf("%s: DB.ArchiveTimeout = %d, want belay:backups.archiveTimeoutSeconds 45", name, s.DB.ArchiveTimeout)
		}
	}
	lab, _ := build(t, cfg, true, nil)
	for name, s := range lab {
		if s.InstallPackages || s.Agent != nil {
			t.Errorf("%s (lab): InstallPackages=%v Agent=%+v, want neither", name, s.InstallPackages, s.Agent)
		}
	}
}

// TestBuildTLS: the config's tls reaches every server of the app, primary and
// standby alike (each obtains its own certificate); mode off renders none.
func TestBuildTLS(t *testing.T) {
	cfg := hetznerPrimary(t)
	cfg.Apps[0].TLS.HSTS = config.HSTS{Enabled: true, MaxAge: 600, IncludeSubdomains: true}
	addrs := func(e *Env) { e.Addresses["backup"], e.Addresses["db-standby"] = "10.20.0.6", "10.20.0.5" }
	specs, topo := build(t, cfg, false, addrs)
	for _, h := range append(append([]string{}, topo.AppHosts["web"]...), topo.StandbyApp["web"]) {
		got := specs[h].App.TLS
		want := &roles.TLS{Mode: roles.TLSModeACME, ACMEDirectory: cfg.Apps[0].TLS.ACMEDirectory, Email: "ops@example.com", HSTSMaxAge: 600, HSTSIncludeSubdomains: true}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: TLS = %+v, want %+v", h, got, want)
		}
	}
	for _, h := range topo.AppHosts["admin"] {
		got := specs[h].App.TLS
		if got == nil || got.Mode != roles.TLSModeCustom || got.Certificate != testCert || got.Key != testKey || got.HSTSMaxAge != 0 {
			t.Errorf("%s: TLS = %+v, want custom with the admin certificate and no HSTS", h, got)
		}
	}
	cfg.Apps[0].TLS = config.TLS{Mode: config.TLSOff}
	specs, topo = build(t, cfg, false, addrs)
	if got := specs[topo.AppHosts["web"][0]].App.TLS; got != nil {
		t.Errorf("mode off: TLS = %+v, want nil", got)
	}
}

func mustKey(t *testing.T, pub string) ssh.PublicKey {
	t.Helper()
	k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(pub))
	if err != nil {
		t.Fatal(err)
	}
	return k
}
