package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/belay-sh/belay/config"
)

// stackFile is the path of a checked-in stack file.
func stackFile(name string) string { return filepath.Join("..", "stacks", "Pulumi."+name+".yaml") }

func TestStackFilesParse(t *testing.T) {
	t.Setenv(config.EnvHostKeySeed, "")
	cases := []struct {
		stack   string
		check   func(t *testing.T, c *config.Config)
		primary config.Provider
		standby config.Provider
		apps    int
	}{
		{"prod", func(t *testing.T, c *config.Config) {
			if c.Apps[0].Replicas != 3 || c.Apps[1].Replicas != 2 {
				t.Errorf("replicas = %d, %d; want 3, 2", c.Apps[0].Replicas, c.Apps[1].Replicas)
			}
		}, config.Hetzner, config.DigitalOcean, 3},
		{"dev", func(t *testing.T, c *config.Config) {
			if c.Apps[0].Size != config.SmallestSize(config.DigitalOcean, "nyc3") || c.Apps[0].StandbySize != config.SmallestSize(config.Hetzner, "ash") {
				t.Errorf("dev app sizes = %s/%s, want the smallest", c.Apps[0].Size, c.Apps[0].StandbySize)
			}
			if c.Database.MonitorSize != "s-1vcpu-1gb" || c.Admin.DeployUser != "deploy" {
				t.Errorf("dev defaults = %+v %+v", c.Database, c.Admin)
			}
		}, config.DigitalOcean, config.Hetzner, 1},
		{"example", func(t *testing.T, c *config.Config) {
			// The token is encrypted in the file: present but unknown here.
			if c.HostAPITokens.DigitalOcean != "" {
				t.Errorf("encrypted token decoded to %q", c.HostAPITokens.DigitalOcean)
			}
			if c.Apps[1].TLS.Mode != config.TLSCustom || c.TLSCertificates["admin"].Key != "" {
				t.Errorf("custom app: tls %+v, key decoded to %q", c.Apps[1].TLS, c.TLSCertificates["admin"].Key)
			}
		}, config.DigitalOcean, config.Hetzner, 2},
	}
	for _, tc := range cases {
		t.Run(tc.stack, func(t *testing.T) {
			c, err := config.ParseStackFile(stackFile(tc.stack), config.WithHostKeySeed(testSeed))
			if err != nil {
				t.Fatalf("ParseStackFile: %v", err)
			}
			if c.Sites.Primary.Provider != tc.primary || c.Sites.Standby.Provider != tc.standby || len(c.Apps) != tc.apps {
				t.Fatalf("got primary %s, standby %s, %d apps; want %s, %s, %d", c.Sites.Primary.Provider, c.Sites.Standby.Provider, len(c.Apps), tc.primary, tc.standby, tc.apps)
			}
			if c.HostKeySeed != testSeed {
				t.Error("seed option not used")
			}
			tc.check(t, c)
		})
	}
}

func TestStackFileSeedMustBeSecretPlaceholder(t *testing.T) {
	for _, stack := range []string{"prod", "dev", "example"} {
		data, err := os.ReadFile(stackFile(stack))
		if err != nil {
			t.Fatal(err)
		}
		text := string(data)
		if !strings.Contains(text, `pulumi config set --secret belay:hostKeySeed "$(openssl rand -hex 32)"`) {
			t.Errorf("%s: no comment telling how to set the seed", stack)
		}
		if !strings.Contains(text, "belay:hostKeySeed:\n    secure: ") {
			t.Errorf("%s: hostKeySeed is not a secure: value", stack)
		}
	}
}

// TestExampleDocumentsEveryKey: the example must show every key and field.
func TestExampleDocumentsEveryKey(t *testing.T) {
	data, err := os.ReadFile(stackFile("example"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	for _, k := range config.Keys {
		if !strings.Contains(text, "  "+k+":") {
			t.Errorf("example lacks %s", k)
		}
	}
	for _, f := range []string{"sshKeys", "sshCidrs", "deployUser", "name", "size", "standbySize", "replicas", "port", "healthPath", "domains",
		"monitorSize", "postgresVersion", "synchronous", "fullEvery", "retentionDays", "repoSize", "archiveTimeoutSeconds",
		"provider", "zone", "ttl", "primaryCidr", "standbyCidr", "keepReleases", "shopParam", "shopHeader", "shopCookie", "digitalocean",
		"tls", "mode", "email", "acmeDirectory", "acmeCaCertificate", "hsts", "enabled", "maxAge", "includeSubdomains", "certificate", "key"} {
		if !strings.Contains(text, " "+f+":") {
			t.Errorf("example lacks field %s", f)
		}
	}
}

func TestStackFileSeedSources(t *testing.T) {
	t.Run("env", func(t *testing.T) {
		t.Setenv(config.EnvHostKeySeed, testSeed)
		c, err := config.ParseStackFile(stackFile("dev"))
		if err != nil {
			t.Fatal(err)
		}
		if c.HostKeySeed != testSeed {
			t.Error("seed from environment not used")
		}
	})
	t.Run("option wins", func(t *testing.T) {
		t.Setenv(config.EnvHostKeySeed, strings.Repeat("e", 40))
		c, err := config.ParseStackFile(stackFile("dev"), config.WithHostKeySeed(testSeed))
		if err != nil {
			t.Fatal(err)
		}
		if c.HostKeySeed != testSeed {
			t.Error("option did not override the environment")
		}
	})
	t.Run("none", func(t *testing.T) {
		t.Setenv(config.EnvHostKeySeed, "")
		_, err := config.ParseStackFile(stackFile("dev"))
		if err == nil {
			t.Fatal("parsed without a seed")
		}
		msg := err.Error()
		if !strings.Contains(msg, "Pulumi.dev.yaml: belay:hostKeySeed: encrypted (secure:) and cannot be decrypted outside Pulumi, expected the seed in $BELAY_HOST_KEY_SEED") {
			t.Errorf("error = %v", err)
		}
	})
}

func TestStackYAMLErrors(t *testing.T) {
	t.Setenv(config.EnvHostKeySeed, "")
	base, err := os.ReadFile(stackFile("dev"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		edit func(string) string
		path string
		want string
	}{
		{"plain seed", func(s string) string {
			return strings.Replace(s, "belay:hostKeySeed:\n    secure: REPLACE-ME-with-pulumi-config-set-secret-belay-hostKeySeed", "belay:hostKeySeed: "+testSeed, 1)
		}, "belay:hostKeySeed", "stored in plain text, expected a secret"},
		{"unknown key", func(s string) string { return s + "  belay:dnss:\n    zone: x\n" }, "belay:dnss", "unknown key, expected one of"},
		{"unknown field", func(s string) string {
			return strings.Replace(s, "      port: 3000\n", "      port: 3000\n      prot: 3001\n", 1)
		}, "belay:apps[0].prot", "unknown field"},
		{"encrypted plain key", func(s string) string {
			return strings.Replace(s, "  belay:dns:\n    provider: digitalocean\n    zone: example.com\n", "  belay:dns:\n    secure: abc\n", 1)
		}, "belay:dns", "encrypted (secure:) and cannot be decrypted outside Pulumi, expected a plain value"},
		{"encrypted nested field", func(s string) string {
			return strings.Replace(s, "      port: 3000\n", "      port:\n        secure: abc\n", 1)
		}, "belay:apps[0].port", "expected a plain value"},
		{"replicas 1", func(s string) string {
			return strings.Replace(s, "      port: 3000\n", "      port: 3000\n      replicas: 1\n", 1)
		}, "belay:apps[0].replicas", "1, expected at least 2"},
		{"float port", func(s string) string { return strings.Replace(s, "port: 3000", "port: 3000.5", 1) }, "belay:apps[0].port", "expected an integer"},
		{"bad yaml", func(s string) string { return s + "  belay:x: [\n" }, "", "not valid YAML"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data := tc.edit(string(base))
			if data == string(base) {
				t.Fatal("edit did not apply")
			}
			_, err := config.ParseStackYAML([]byte(data), "stacks/Pulumi.dev.yaml", config.WithHostKeySeed(testSeed))
			if err == nil {
				t.Fatal("accepted")
			}
			msg := strings.TrimPrefix(err.Error(), "stacks/Pulumi.dev.yaml: ")
			if tc.path == "" {
				if !strings.Contains(msg, tc.want) {
					t.Errorf("error = %v, want %q", err, tc.want)
				}
				return
			}
			line := findLine(errorString(msg), tc.path)
			if line == "" || !strings.Contains(line, tc.want) {
				t.Errorf("error = %v\nwant a line %s: ...%s", err, tc.path, tc.want)
			}
		})
	}
}

type errorString string

func (e errorString) Error() string { return string(e) }

func TestStackYAMLOtherNamespacesAndEncryptedTokens(t *testing.T) {
	data := `
config:
  digitalocean:token:
    secure: v1:abc
  hcloud:token: plain
  belay:sites: {primary: {provider: lab}, standby: {provider: lab}}
  belay:admin: {sshKeys: ["` + keyAlice + `"], sshCidrs: [10.0.0.0/8]}
  belay:apps: [{name: web, port: 3000, domains: [www.example.com], tls: {email: ops@example.com}}]
  belay:database: {}
  belay:backups: {fullEvery: daily, retentionDays: 1}
  belay:dns: {provider: lab, zone: example.com}
  belay:hostApiTokens:
    secure: v1:whole-object-encrypted
`
	c, err := config.ParseStackYAML([]byte(data), "lab.yaml", config.WithLab(), config.WithHostKeySeed(testSeed))
	if err != nil {
		t.Fatalf("ParseStackYAML: %v", err)
	}
	if c.Apps[0].Replicas != 2 || c.HostAPITokens != (config.HostAPITokens{}) {
		t.Errorf("got %+v, tokens %+v", c.Apps, c.HostAPITokens)
	}
	if _, err := config.ParseStackFile(filepath.Join(t.TempDir(), "missing.yaml")); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("missing file error = %v", err)
	}
}
