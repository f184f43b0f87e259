package traffic

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/roles"
	"github.com/belay-sh/belay/seedkeys"
)

// TestRolesBaseConfigWiring is the contract between the base nginx config the
// roles render (cloud-init write_files) and the files Render writes: the real
// conf.d files of an app server, with every stage's http.conf and routing.conf,
// must pass `nginx -t`, and so must the initial files the roles ship.
func TestRolesBaseConfigWiring(t *testing.T) {
	if _, err := os.Stat(nginxBin); err != nil {
		t.Skipf("no nginx (%v); apt-get install nginx", err)
	}
	spec := rolesAppSpec(t)
	ud, err := roles.Render(spec)
	if err != nil {
		t.Fatalf("roles.Render: %v", err)
	}
	var cc roles.CloudConfig
	if err := yaml.Unmarshal(ud, &cc); err != nil {
		t.Fatalf("decode user data: %v", err)
	}

	dir := t.TempDir()
	app := spec.App.Name
	rewrite := func(s string) string {
		s = strings.ReplaceAll(s, "/etc/belay/nginx/", dir+"/etc/belay/nginx/")
		s = strings.ReplaceAll(s, "/var/log/nginx/", dir+"/log/")
		s = strings.ReplaceAll(s, "listen 80 default_server;", "listen 127.0.0.1:1 default_server;")
		s = strings.ReplaceAll(s, "listen 80;", "listen 127.0.0.1:1;")
		return strings.ReplaceAll(s, "listen 127.0.0.2:80;", "listen 127.0.0.2:1;")
	}
	var confd []string
	shipped := map[string]bool{}
	for _, f := range cc.WriteFiles {
		var dst string
		switch {
		case strings.HasPrefix(f.Path, "/etc/nginx/conf.d/"):
			dst = filepath.Join(dir, "conf.d", filepath.Base(f.Path))
			confd = append(confd, filepath.Base(f.Path))
		case strings.HasPrefix(f.Path, Dir(app)+"/"):
			dst = filepath.Join(dir, f.Path)
			shipped[filepath.Base(f.Path)] = true
		default:
			continue
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, []byte(rewrite(f.Content)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if len(confd) == 0 {
		t.Fatal("roles render no /etc/nginx/conf.d files for an app server")
	}
	for _, name := range []string{"http.conf", "routing.conf"} {
		if !shipped[name] {
			t.Errorf("roles do not ship the initial %s (nginx would refuse the include before the first deploy)", filepath.Join(Dir(app), name))
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "log", "belay"), 0o755); err != nil {
		t.Fatal(err)
	}
	// The Debian nginx.conf includes conf.d/*.conf at http level; this one does the same.
	conf := fmt.Sprintf(`error_log %[1]s/error.log;
pid %[1]s/nginx.pid;
events {}
http {
    client_body_temp_path %[1]s/tmp;
    proxy_temp_path %[1]s/tmp;
    fastcgi_temp_path %[1]s/tmp;
    uwsgi_temp_path %[1]s/tmp;
    scgi_temp_path %[1]s/tmp;
    include %[1]s/conf.d/*.conf;
}
`, dir)
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	check := func(what string) bool {
		t.Helper()
		out, err := exec.Command(nginxBin, "-t", "-q", "-p", dir, "-c", filepath.Join(dir, "nginx.conf")).CombinedOutput()
		if err != nil {
			base, _ := os.ReadFile(filepath.Join(dir, "conf.d", "belay-"+app+".conf"))
			t.Errorf("%s: nginx -t: %v: %s\nThe base config must `%s` at http level and leave the upstreams %s/%s to it (see doc.go).\nbelay-%s.conf from roles:\n%s",
				what, err, out, HTTPInclude(app), StableUpstream(app), CanaryUpstream(app), app, base)
			return false
		}
		return true
	}
	if shipped["http.conf"] && shipped["routing.conf"] {
		check("initial files shipped by roles")
		// They are byte for byte what the deployer renders for the stable stage
		// without canary hosts, so the first deploy's stable step changes nothing.
		want, err := Render(Spec{App: app, Port: spec.App.Port,
			StableAddrs: []string{spec.Net.PrivateAddress, spec.App.VRRP.Peers[0]}, Stage: Stage{Kind: Stable}})
		if err != nil {
			t.Fatal(err)
		}
		for name, w := range map[string][]byte{"http.conf": want.HTTP, "routing.conf": want.Routing} {
			for _, f := range cc.WriteFiles {
				if f.Path == filepath.Join(Dir(app), name) && f.Content != string(w) {
					t.Errorf("roles ship %s as\n%s\nRender gives for the stable stage\n%s", f.Path, f.Content, w)
				}
			}
		}
	}
	for _, st := range allStages {
		files, err := Render(Spec{
			App: app, Port: spec.App.Port,
			StableAddrs: []string{spec.Net.PrivateAddress, spec.App.VRRP.Peers[0]},
			CanaryAddrs: []string{spec.Net.PrivateAddress},
			Stage:       st,
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(dir, Dir(app)), 0o755); err != nil {
			t.Fatal(err)
		}
		for name, b := range map[string][]byte{HTTPPath(app): files.HTTP, RoutingPath(app): files.Routing} {
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if !check("stage " + st.String()) {
			return // one full explanation is enough
		}
	}
}

// rolesAppSpec is a two-member app group's first server, as hostspec builds it.
func rolesAppSpec(t *testing.T) *roles.Spec {
	t.Helper()
	key := func(name string) seedkeys.Key {
		k, err := seedkeys.Derive("0123456789abcdef0123456789abcdef-traffic-contract", "test", name, 0)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	cert, err := seedkeys.UserCert(key("restic-ca"), key("restic-web").Public, "restic-web")
	if err != nil {
		t.Fatal(err)
	}
	return &roles.Spec{
		Stack: "test", Hostname: "web-1", Site: inventory.Primary, Roles: []inventory.Role{inventory.RoleApp},
		DeployUser: "deploy", AdminKeys: []string{key("admin").Public}, HostKey: key("host-web-1"),
		SSHFrom: []string{"203.0.113.0/24"},
		Net: roles.Net{PrivateInterface: "enp7s0", PublicInterface: "eth0", PrivateAddress: "10.213.0.20",
			SiteCIDR: "10.213.0.0/25", PeerSiteCIDR: "10.213.0.128/25"},
		App: &roles.App{
			Name: "web", Port: 3000, HealthPath: "/healthz", Domains: []string{"shop.example.com"},
			DatabaseURL:    "postgresql://app:pw@10.213.0.10:5432,10.213.0.11:5432/app?target_session_attrs=read-write",
			ResticRepo:     "sftp:restic-web@10.213.0.138:/repo",
			ResticPassword: "restic-secret", BackupKey: key("restic-web"), BackupCert: cert, RepoHostKey: key("host-backup").Public,
			VRRP: &roles.VRRP{RouterID: 51, Priority: 150, Peers: []string{"10.213.0.21"}, VIP: "10.213.0.100",
				VIPInterface: "eth0", AuthPass: "unused", AdvertInterval: 0.1},
		},
	}
}

// TestRolesStageRendersTheShippedFiles: the stage.json the roles ship is the
// wire format `belay host route` reads (unknown fields refused), and rendering
// it gives byte for byte the http.conf and routing.conf they ship, so the
// route watcher's first re-render changes nothing but what it marks down.
func TestRolesStageRendersTheShippedFiles(t *testing.T) {
	spec := rolesAppSpec(t)
	ud, err := roles.Render(spec)
	if err != nil {
		t.Fatalf("roles.Render: %v", err)
	}
	var cc roles.CloudConfig
	if err := yaml.Unmarshal(ud, &cc); err != nil {
		t.Fatalf("decode user data: %v", err)
	}
	app := spec.App.Name
	shipped := map[string]string{}
	for _, f := range cc.WriteFiles {
		if strings.HasPrefix(f.Path, Dir(app)+"/") {
			shipped[filepath.Base(f.Path)] = f.Content
		}
	}
	dec := json.NewDecoder(strings.NewReader(shipped["stage.json"]))
	dec.DisallowUnknownFields()
	var s Spec
	if err := dec.Decode(&s); err != nil {
		t.Fatalf("roles' stage.json %q: %v", shipped["stage.json"], err)
	}
	files, err := Render(s)
	if err != nil {
		t.Fatalf("Render(roles' stage): %v", err)
	}
	if string(files.HTTP) != shipped["http.conf"] || string(files.Routing) != shipped["routing.conf"] {
		t.Fatalf("roles ship files that their own stage does not render:\nhttp.conf shipped:\n%s\nrendered:\n%s\nrouting.conf shipped:\n%s\nrendered:\n%s",
			shipped["http.conf"], files.HTTP, shipped["routing.conf"], files.Routing)
	}
}

// TestHealthHostContract: maintenance exempts exactly the Host the roles'
// health server answers.
func TestHealthHostContract(t *testing.T) {
	if got, want := HealthHost("shop"), roles.AppHealthHost("shop"); got != want {
		t.Fatalf("traffic.HealthHost %q, roles.AppHealthHost %q", got, want)
	}
}
