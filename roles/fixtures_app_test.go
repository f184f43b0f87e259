package roles

import (
	"testing"

	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/seedkeys"
)

// abSeed is a fixed test seed: fixtures (and so the goldens) are stable.
const abSeed = "0123456789abcdef0123456789abcdef-roles-app-backup-tests"

// abKey derives a stable test key for name.
func abKey(t testing.TB, name string) seedkeys.Key {
	t.Helper()
	k, err := seedkeys.Derive(abSeed, "test", name, 0)
	if err != nil {
		t.Fatalf("derive %s: %v", name, err)
	}
	return k
}

// abBase is the common part of every app/backup fixture.
func abBase(t testing.TB, host string, site inventory.SiteName, addr string, roles ...inventory.Role) *Spec {
	t.Helper()
	siteCIDR, peer := "10.213.0.0/25", "10.213.0.128/25"
	if site == inventory.Standby {
		siteCIDR, peer = peer, siteCIDR
	}
	return &Spec{
		Stack:      "test",
		Hostname:   host,
		Site:       site,
		Roles:      roles,
		DeployUser: "deploy",
		AdminKeys:  []string{abKey(t, "admin").Public},
		HostKey:    abKey(t, "host-"+host),
		SSHFrom:    []string{"203.0.113.0/24"},
		Net: Net{
			PrivateInterface: "enp7s0",
			PublicInterface:  "eth0",
			PrivateAddress:   addr,
			SiteCIDR:         siteCIDR,
			PeerSiteCIDR:     peer,
		},
	}
}

// abCert is pub's certificate from the fixtures' restic CA for principal.
func abCert(t testing.TB, pub, principal string) string {
	t.Helper()
	c, err := seedkeys.UserCert(abKey(t, "restic-ca"), pub, principal)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// abAppSpec is web-1, the first member of a two-node Hetzner-style VRRP group.
func abAppSpec(t testing.TB) *Spec {
	t.Helper()
	s := abBase(t, "web-1", inventory.Primary, "10.213.0.20", inventory.RoleApp)
	s.App = &App{
		Name:           "web",
		Port:           3000,
		HealthPath:     "/healthz",
		Domains:        []string{"shop.example.com", "www.shop.example.com"},
		DatabaseURL:    "postgresql://app:secretpw@10.213.0.10:5432,10.213.0.11:5432/app?target_session_attrs=read-write&connect_timeout=3",
		ResticRepo:     "sftp:restic-web@10.213.0.138:/repo",
		ResticPassword: "restic-secret",
		BackupKey:      abKey(t, "restic-web"),
		BackupCert:     abCert(t, abKey(t, "restic-web").Public, "restic-web"),
		RepoHostKey:    abKey(t, "host-backup").Public,
		VRRP: &VRRP{
			RouterID:       51,
			Priority:       150,
			Peers:          []string{"10.213.0.21"},
			VIP:            "10.213.0.100",
			VIPInterface:   "eth0",
			ClaimCommand:   "/usr/local/bin/belay vip claim --provider hetzner --ip 10.213.0.100 --token-file " + ClaimTokenFile,
			ClaimToken:     "claim-token-secret",
			AuthPass:       "unused",
			AdvertInterval: 0.1,
		},
		TLS: &TLS{Mode: TLSModeACME, ACMEDirectory: "https://acme-v02.api.letsencrypt.org/directory", Email: "ops@example.com", HSTSMaxAge: 31536000},
	}
	return s
}

// abAppDOSpec is a DigitalOcean-style member: no pinned address, peers discovered at boot.
func abAppDOSpec(t testing.TB) *Spec {
	t.Helper()
	s := abAppSpec(t)
	s.Net.PrivateInterface, s.Net.PrivateAddress = "eth1", ""
	s.App.VRRP.Peers = nil
	s.App.VRRP.VIP, s.App.VRRP.VIPInterface = "", ""
	s.App.VRRP.PeerDiscovery = &PeerDiscovery{Provider: "digitalocean", Selector: "belay-test-web", Token: "do-read-token"}
	return s
}

// abStandbyAppSpec is web-standby on the standby site.
func abStandbyAppSpec(t testing.TB) *Spec {
	t.Helper()
	s := abBase(t, "web-standby", inventory.Standby, "10.213.0.148", inventory.RoleStandbyApp)
	a := *abAppSpec(t).App
	a.Standby, a.VRRP = true, nil
	// The standby fixture covers custom certificates.
	a.TLS = &TLS{Mode: TLSModeCustom, Certificate: fixtureCert, Key: fixtureKey}
	s.App = &a
	return s
}

// fixtureCert and fixtureKey are a self-signed pair for shop.example.com and
// www.shop.example.com valid for 100 years (fixed bytes keep the goldens stable;
// nginx -t loads them).
const (
	fixtureCert = `-----BEGIN CERTIFICATE-----
MIIBwzCCAWigAwIBAgIUMyMjz5785BU/9HgLMRF/ZpbTgl8wCgYIKoZIzj0EAwIw
GzEZMBcGA1UEAwwQc2hvcC5leGFtcGxlLmNvbTAgFw0yNjEyMDYwMjQ2NDVaGA8y
MTI2MTExMjAyNDY0NVowGzEZMBcGA1UEAwwQc2hvcC5leGFtcGxlLmNvbTBZMBMG
ByqGSM49AgEGCCqGSM49AwEHA0IABOgS/s3NMTpdWhyubQnMCxVpXtiY3efCbaPW
1NmshpCP/51f/+uq6m1AtTD53dzBuKNjmlv3+SW92bCWs8b+7g+jgYcwgYQwHQYD
VR0OBBYEFAbMwylOZmcCyCoctGI0jwcO8AawMB8GA1UdIwQYMBaAFAbMwylOZmcC
yCoctGI0jwcO8AawMA8GA1UdEwEB/wQFMAMBAf8wMQYDVR0RBCowKIIQc2hvcC5l
eGFtcGxlLmNvbYIUd3d3LnNob3AuZXhhbXBsZS5jb20wCgYIKoZIzj0EAwIDSQAw
RgIhAOpSLvBTy78lVkCaPH6gy9g5QRhDMQdDk+HVaD5/1H1UAiEAhnC+OhvrMEol
prrGKkwpbI/o+uNnwcRnJj2QUEEQO7s=
-----END CERTIFICATE-----
`
	fixtureKey = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgELTX9SgLjC8amVU/
0WLMXu9ID7yWBHIpzLvtThuFFtShRANCAAToEv7NzTE6XVocrm0JzAsVaV7YmN3n
wm2j1tTZrIaQj/+dX//rquptQLUw+d3cwbijY5pb9/klvdmwlrPG/u4P
-----END PRIVATE KEY-----
`
)

// abBackupSpec is the repository host on the standby site.
func abBackupSpec(t testing.TB) *Spec {
	t.Helper()
	s := abBase(t, "backup", inventory.Standby, "10.213.0.138", inventory.RoleBackupRepo)
	s.SSHFrom = append(s.SSHFrom, "10.213.0.128/25", "10.213.0.0/25")
	s.Backup = &Backup{
		Stanza: "belay",
		DBHosts: []KnownHost{
			{Name: "db-1", Address: "10.213.0.10", HostKey: abKey(t, "host-db-1").Public},
			{Name: "db-2", Address: "10.213.0.11", HostKey: abKey(t, "host-db-2").Public},
		},
		ClientKeys:      []string{abKey(t, "pg-client-db-1").Public, abKey(t, "pg-client-db-2").Public, abKey(t, "pg-client-db-standby").Public},
		ResticApps:      []string{"web", "api"},
		ResticCA:        abKey(t, "restic-ca").Public,
		RepoKey:         abKey(t, "pg-repo"),
		FullEvery:       "weekly",
		RetentionDays:   14,
		ResticPassword:  "restic-secret",
		PostgresVersion: 15,
	}
	return s
}
