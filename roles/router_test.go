package roles

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/belay-sh/belay/inventory"
)

// routerSpec is shop-router-1, the first router of app shop's two cells.
func routerSpec(t testing.TB) *Spec {
	t.Helper()
	s := abBase(t, "shop-router-1", inventory.Primary, "10.213.0.20", inventory.RoleRouter)
	s.Router = &Router{
		App:         "shop",
		Domains:     []string{"shop.example.com", "*.shops.example.com"},
		Cells:       []RouterCell{{Name: "c1", Address: "10.213.0.125", Port: 80}, {Name: "eu-2", Address: "10.213.0.124", Port: 80}},
		UnknownShop: "421",
		ShopParam:   "shop", ShopHeader: "X-Shop-Domain", ShopCookie: "shop",
		DatabaseURL: "postgresql://app:secretpw@10.213.0.10:5432,10.213.0.11:5432/app?target_session_attrs=read-write&connect_timeout=3",
		VRRP: &VRRP{
			RouterID: 51, Priority: 150, Peers: []string{"10.213.0.21"},
			VIP: "10.213.0.100", VIPInterface: "eth0", AdvertInterval: 0.1,
		},
	}
	return s
}

func standbyRouterSpec(t testing.TB) *Spec {
	t.Helper()
	s := abBase(t, "shop-router-standby", inventory.Standby, "10.213.0.148", inventory.RoleStandbyRouter)
	r := *routerSpec(t).Router
	r.Standby, r.VRRP = true, nil
	r.UnknownShop, r.DefaultCell = "default", "eu-2"
	s.Router = &r
	return s
}

func TestRouterGolden(t *testing.T) {
	for name, mk := range map[string]func(testing.TB) *Spec{"router": routerSpec, "standby-router": standbyRouterSpec} {
		t.Run(name, func(t *testing.T) { checkGolden(t, name, mustRender(t, mk(t))) })
	}
}

func TestRouterRole(t *testing.T) {
	c, _ := renderParsed(t, routerSpec(t))
	if f := fileAt(t, c, RouterEnvFile("shop")); f.Permissions != "0600" || f.Owner != "root:root" {
		t.Errorf("router.env holds the DB password: %+v", f)
	}
	if f := fileAt(t, c, RouterMapFile("shop")); f.Owner != "root:root" || strings.Contains(f.Content, ";") {
		t.Errorf("map.conf must start root-owned and empty of entries: %+v", f)
	}
	unit := fileAt(t, c, "/etc/systemd/system/"+RouterSyncUnit).Content
	if !strings.Contains(unit, "ExecStart=/usr/local/bin/belay host router-sync --app shop\n") {
		t.Errorf("sync unit:\n%s", unit)
	}
	cells := fileAt(t, c, RouterCellsFile("shop")).Content
	for _, want := range []string{"upstream belay_cell_shop_c1 {\n    server 10.213.0.125:80", "upstream belay_cell_shop_eu-2 {\n    server 10.213.0.124:80"} {
		if !strings.Contains(cells, want) {
			t.Errorf("cells.conf lacks %q:\n%s", want, cells)
		}
	}
	ka := fileAt(t, c, "/etc/keepalived/keepalived.conf").Content
	if !strings.Contains(ka, "vrrp_instance belay_router_shop") || strings.Contains(ka, "belay_app") {
		t.Errorf("router keepalived tracks nginx only:\n%s", ka)
	}
	sc, _ := renderParsed(t, standbyRouterSpec(t))
	for _, f := range sc.WriteFiles {
		if strings.Contains(f.Path, "keepalived") {
			t.Errorf("standby router renders %s", f.Path)
		}
	}
}

func TestRouterValidation(t *testing.T) {
	tests := []struct {
		name string
		edit func(s *Spec)
		want string
	}{
		{"no cells", func(s *Spec) { s.Router.Cells = nil }, "Spec.Router.Cells"},
		{"bad cell name", func(s *Spec) { s.Router.Cells[0].Name = "c1;evil" }, "Spec.Router.Cells[0].Name"},
		{"duplicate cell", func(s *Spec) { s.Router.Cells[1].Name = "c1" }, "Spec.Router.Cells[1].Name"},
		{"bad address", func(s *Spec) { s.Router.Cells[0].Address = "cell.example.com" }, "Spec.Router.Cells[0].Address"},
		{"bad unknown", func(s *Spec) { s.Router.UnknownShop = "500" }, "Spec.Router.UnknownShop"},
		{"default without cell", func(s *Spec) { s.Router.UnknownShop = "default" }, "Spec.Router.DefaultCell"},
		{"header syntax", func(s *Spec) { s.Router.ShopHeader = "X Shop" }, "Spec.Router.ShopHeader"},
		{"no vrrp", func(s *Spec) { s.Router.VRRP = nil }, "Spec.Router.VRRP"},
		{"missing section", func(s *Spec) { s.Router = nil }, "Spec.Router"},
		{"bad domain", func(s *Spec) { s.Router.Domains = []string{"a b"} }, "Spec.Router.Domains[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := routerSpec(t)
			tt.edit(s)
			_, err := Render(s)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Render() = %v, want an error naming %s", err, tt.want)
			}
		})
	}
}

// TestRouterNginxConfigTest runs nginx -t on the router's files with an
// empty map (first boot) and with a map the sync service would write.
func TestRouterNginxConfigTest(t *testing.T) {
	nginx := tool(t, "nginx")
	for name, mk := range map[string]func(testing.TB) *Spec{"router": routerSpec, "standby-router": standbyRouterSpec} {
		t.Run(name, func(t *testing.T) {
			c, _ := renderParsed(t, mk(t))
			dir := t.TempDir()
			rewrite := strings.NewReplacer("/etc/belay/router/", dir+"/belay-router/", "/var/log/nginx/", dir+"/logs/")
			for _, f := range c.WriteFiles {
				switch {
				case strings.HasPrefix(f.Path, "/etc/nginx/conf.d/"):
					writeTemp(t, dir, "conf.d/"+filepath.Base(f.Path), rewrite.Replace(f.Content), 0o644)
				case strings.HasPrefix(f.Path, "/etc/belay/router/") && strings.HasSuffix(f.Path, ".conf"):
					writeTemp(t, dir, "belay-router/"+strings.TrimPrefix(f.Path, "/etc/belay/router/"), f.Content, 0o644)
				}
			}
			if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o755); err != nil {
				t.Fatal(err)
			}
			main := writeTemp(t, dir, "nginx.conf", "pid "+dir+"/nginx.pid;\nerror_log "+dir+"/logs/error.log;\nevents {}\nhttp {\n    access_log "+dir+"/logs/access.log;\n    include "+dir+"/conf.d/*.conf;\n}\n", 0o644)
			if out, err := exec.Command(nginx, "-t", "-p", dir, "-c", main).CombinedOutput(); err != nil {
				t.Fatalf("nginx -t with the empty map: %v\n%s", err, out)
			}
			writeTemp(t, dir, "belay-router/shop/map.conf", "\"acme.example.com\" c1;\n\"*.eu.example.com\" eu-2;\nbeta eu-2;\n", 0o644)
			if out, err := exec.Command(nginx, "-t", "-p", dir, "-c", main).CombinedOutput(); err != nil {
				t.Fatalf("nginx -t with a populated map: %v\n%s", err, out)
			}
		})
	}
}

func TestRouterKeepalivedConfigTest(t *testing.T) {
	keepalived := tool(t, "keepalived")
	unshare := tool(t, "unshare")
	ip := tool(t, "ip")
	s := routerSpec(t)
	c, _ := renderParsed(t, s)
	dir := t.TempDir()
	conf := strings.ReplaceAll(fileAt(t, c, "/etc/keepalived/keepalived.conf").Content, "script_user "+KeepalivedScriptUser, "script_user root")
	f := writeTemp(t, dir, "keepalived.conf", conf, 0o644)
	var setup []string
	for i, iface := range uniq(s.Net.PrivateInterface, s.Router.VRRP.VIPInterface) {
		setup = append(setup, ip+" link add "+iface+" type veth peer name belaytst"+string(rune('0'+i)))
	}
	script := strings.Join(setup, " && ") + " && { " + keepalived + " -t -l -n -f " + f + "; rc=$?; echo keepalived -t exit $rc; exit $rc; }"
	out, err := exec.Command(unshare, "-rn", "sh", "-c", script).CombinedOutput()
	if err != nil {
		t.Fatalf("keepalived -t: %v\n%s\n%s", err, out, conf)
	}
	if strings.Contains(string(out), "WARNING") || strings.Contains(string(out), "Unknown") {
		t.Errorf("keepalived -t complained:\n%s", out)
	}
}

func TestRouterSystemdVerify(t *testing.T) {
	sa := tool(t, "systemd-analyze")
	c, _ := renderParsed(t, routerSpec(t))
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin") + "/"
	writeTemp(t, dir, "bin/belay", "#!/bin/sh\n", 0o755)
	unit := strings.ReplaceAll(fileAt(t, c, "/etc/systemd/system/"+RouterSyncUnit).Content, "/usr/local/bin/", bin)
	// EnvironmentFile must exist for verify; the unit names it absolutely.
	unit = strings.ReplaceAll(unit, RouterEnvFile("shop"), writeTemp(t, dir, "router.env", "X=1\n", 0o600))
	path := writeTemp(t, dir, "units/"+RouterSyncUnit, unit, 0o644)
	cmd := exec.Command(sa, "verify", "--man=no", path)
	cmd.Dir = filepath.Join(dir, "units")
	cmd.Env = append(os.Environ(), "SYSTEMD_LOG_LEVEL=notice")
	if out, err := cmd.CombinedOutput(); err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
