package roles

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// tlsRewrite maps the host paths of the nginx and TLS files under dir.
func tlsRewrite(dir string) *strings.Replacer {
	return strings.NewReplacer(
		"/etc/belay/nginx/", dir+"/belay-nginx/",
		"/var/log/nginx/", dir+"/logs/",
		"/etc/belay/tls/", dir+"/tls/",
		"/var/lib/belay/acme/", dir+"/acme/",
		ACMEWebroot, dir+"/webroot",
	)
}

// installTLS writes c's /etc/belay/tls files under dir and, for ACME, runs
// the rendered script's --placeholder step as first boot does.
func installTLS(t *testing.T, c *CloudConfig, dir string, rewrite *strings.Replacer) {
	t.Helper()
	for _, f := range c.WriteFiles {
		switch {
		case strings.HasPrefix(f.Path, "/etc/belay/tls/"):
			writeTemp(t, dir, "tls/"+strings.TrimPrefix(f.Path, "/etc/belay/tls/"), rewrite.Replace(f.Content), 0o600)
		case strings.HasPrefix(f.Path, "/usr/local/bin/belay-acme-"):
			p := writeTemp(t, dir, filepath.Base(f.Path), rewrite.Replace(f.Content), 0o755)
			if out, err := exec.Command(p, "--placeholder").CombinedOutput(); err != nil {
				t.Fatalf("%s --placeholder: %v\n%s", f.Path, err, out)
			}
			// Idempotent: a second boot keeps the certificate it finds.
			before, _ := os.ReadFile(filepath.Join(dir, "tls", strings.TrimPrefix(f.Path, "/usr/local/bin/belay-acme-"), "cert.pem"))
			if out, err := exec.Command(p, "--placeholder").CombinedOutput(); err != nil {
				t.Fatalf("%s --placeholder (again): %v\n%s", f.Path, err, out)
			}
			after, _ := os.ReadFile(filepath.Join(dir, "tls", strings.TrimPrefix(f.Path, "/usr/local/bin/belay-acme-"), "cert.pem"))
			if len(before) == 0 || string(before) != string(after) {
				t.Fatalf("--placeholder: no certificate, or a second run replaced it")
			}
		}
	}
}

// TestTLSFilesAreRootOnly: certificates, keys and includes under TLSDir are
// 0600 root (nginx's master reads them as root; belay-app and the deploy user cannot).
func TestTLSFilesAreRootOnly(t *testing.T) {
	for name, mk := range map[string]func(testing.TB) *Spec{"acme": abAppSpec, "custom": abStandbyAppSpec} {
		t.Run(name, func(t *testing.T) {
			c, _ := renderParsed(t, mk(t))
			n := 0
			for _, f := range c.WriteFiles {
				if strings.HasPrefix(f.Path, "/etc/belay/tls/") {
					n++
					if f.Owner != "root:root" || f.Permissions != "0600" {
						t.Errorf("%s: %s %s, want root:root 0600", f.Path, f.Owner, f.Permissions)
					}
				}
			}
			if n == 0 {
				t.Fatal("no /etc/belay/tls files rendered")
			}
			want := []string{"install", "-d", "-m", "0700", "-o", "root", "-g", "root", TLSDir("web")}
			found := false
			for _, r := range c.Runcmd {
				found = found || strings.Join(r, " ") == strings.Join(want, " ")
			}
			if !found {
				t.Errorf("runcmd does not make %s 0700 root", TLSDir("web"))
			}
		})
	}
}

// TestTLSOrderAtBoot: the placeholder exists before nginx starts, and the
// first issuance starts after it (the challenge needs nginx).
func TestTLSOrderAtBoot(t *testing.T) {
	c, _ := renderParsed(t, abAppSpec(t))
	idx := func(want string) int {
		for i, r := range c.Runcmd {
			if strings.Contains(strings.Join(r, " "), want) {
				return i
			}
		}
		t.Fatalf("runcmd has no %q", want)
		return -1
	}
	placeholder, nginx, issue := idx("belay-acme-web --placeholder"), idx("systemctl restart nginx.service"), idx("start --no-block "+ACMEUnit("web"))
	if !(placeholder < nginx && nginx < issue) {
		t.Errorf("runcmd order placeholder %d, nginx %d, issuance %d; want increasing", placeholder, nginx, issue)
	}
}

func TestValidateTLS(t *testing.T) {
	cases := []struct {
		name string
		edit func(a *App)
		want string
	}{
		{"bad mode", func(a *App) { a.TLS.Mode = "off" }, "Spec.App.TLS.Mode"},
		{"http directory", func(a *App) { a.TLS.ACMEDirectory = "http://x/dir" }, "Spec.App.TLS.ACMEDirectory"},
		{"bad email", func(a *App) { a.TLS.Email = "a b@c" }, "Spec.App.TLS.Email"},
		{"wildcard", func(a *App) { a.Domains = []string{"*.shop.example.com"} }, "Spec.App.Domains[0]"},
		{"no domains", func(a *App) { a.Domains = nil }, "Spec.App.TLS: set, but Spec.App.Domains is empty"},
		{"custom without key", func(a *App) { a.TLS = &TLS{Mode: TLSModeCustom, Certificate: fixtureCert} }, "Spec.App.TLS.Key"},
		{"key with acme", func(a *App) { a.TLS.Key = fixtureKey }, "Spec.App.TLS.Certificate/Key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := abAppSpec(t)
			tc.edit(s.App)
			_, err := Render(s)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Render: %v, want an error naming %s", err, tc.want)
			}
		})
	}
}

// TestACMEPeersRefresh runs the snippet the DigitalOcean peer discovery appends:
// discovered peers become the challenge fallback's servers, rewritten only on change.
func TestACMEPeersRefresh(t *testing.T) {
	dir := t.TempDir()
	peers := writeTemp(t, dir, "peers.conf", "10.10.0.21\n10.10.0.22\n", 0o644)
	out := filepath.Join(dir, "acme-peers.conf")
	script := "#!/bin/sh\nset -eu\n" + strings.NewReplacer(PeersFile, peers, ACMEPeersFile("web"), out).Replace(acmePeersRefresh("web"))
	p := writeTemp(t, dir, "refresh", script, 0o755)
	shellcheck(t, p)
	for i := 0; i < 2; i++ {
		if b, err := exec.Command(p).CombinedOutput(); err != nil {
			t.Fatalf("run %d: %v\n%s", i, err, b)
		}
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	want := "# Rendered by belay-vrrp-peers: the group members found at boot.\nserver 127.0.0.1:9 down;\nserver 10.10.0.21:80 max_fails=0;\nserver 10.10.0.22:80 max_fails=0;\n"
	if string(got) != want {
		t.Errorf("acme-peers.conf =\n%s\nwant\n%s", got, want)
	}
	if left, _ := filepath.Glob(out + ".*"); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

// TestACMEStandbyDoesNotHammerTheCA: the standby's validations fail until a
// site switch, so it neither issues at boot nor retries every 15 minutes.
func TestACMEStandbyDoesNotHammerTheCA(t *testing.T) {
	s := abStandbyAppSpec(t)
	s.App.TLS = &TLS{Mode: TLSModeACME, ACMEDirectory: "https://acme.example/dir", Email: "ops@example.com"}
	c, _ := renderParsed(t, s)
	if unit := fileAt(t, c, "/etc/systemd/system/"+ACMEUnit("web")).Content; strings.Contains(unit, "Restart=") {
		t.Errorf("standby unit retries:\n%s", unit)
	}
	for _, r := range c.Runcmd {
		if strings.Contains(strings.Join(r, " "), "start --no-block "+ACMEUnit("web")) {
			t.Error("standby starts an issuance at boot")
		}
	}
	c, _ = renderParsed(t, abAppSpec(t))
	if unit := fileAt(t, c, "/etc/systemd/system/"+ACMEUnit("web")).Content; !strings.Contains(unit, "Restart=on-failure\nRestartSec=15min\n") {
		t.Errorf("primary unit does not retry:\n%s", unit)
	}
}
