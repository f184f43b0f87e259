package router

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckDomain(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"acme.example.com", true},
		{"a-b.test", true},
		{"xn--bcher-kva.test", true},
		{"ACME.test", false},
		{"*.acme.test", false},
		{"single", false},
		{"default", false},
		{"acme.test.", false},
		{"-a.test", false},
		{"a_b.test", false},
		{"a.test;", false},
		{`a.test" c1; include /etc/passwd`, false},
		{"a.test\n", false},
		{"a..test", false},
		{"~a.test", false},
		{strings.Repeat("a", 64) + ".test", false},
		{strings.Repeat("a.", 127) + "test", false},
		{"", false},
	} {
		if err := CheckDomain(tc.in); (err == nil) != tc.ok {
			t.Errorf("CheckDomain(%q) = %v, want ok=%v", tc.in, err, tc.ok)
		}
	}
	if d, err := NormalizeDomain(" Acme.Example.COM. "); err != nil || d != "acme.example.com" {
		t.Errorf("NormalizeDomain: %q %v", d, err)
	}
}

const goodCells = `# cells of shop
cell c1 10.0.1.10:80
cell c2 10.0.2.10:80 10.0.2.11:80   # a pair without a VIP
default c1
retry-after 15
shop-header X-Shop
`

func TestParseCells(t *testing.T) {
	c, err := ParseCells("shop", []byte(goodCells))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Cells) != 2 || len(c.Cells[1].Addrs) != 2 || c.Default != "c1" || c.RetryAfter != 15 || c.Keys.Header != "X-Shop" || c.Keys.Param != "shop" {
		t.Errorf("parsed %+v", c)
	}
	for name, bad := range map[string]string{
		"no cells":            "default c1\n",
		"bad cell name":       "cell C1 10.0.0.1:80\n",
		"sentinel name":       "cell _frozen 10.0.0.1:80\n",
		"hostname address":    "cell c1 cell1.internal:80\n",
		"no port":             "cell c1 10.0.0.1\n",
		"injected address":    "cell c1 10.0.0.1:80;\n",
		"duplicate cell":      "cell c1 10.0.0.1:80\ncell c1 10.0.0.2:80\n",
		"unknown default":     "cell c1 10.0.0.1:80\ndefault c9\n",
		"retry-after range":   "cell c1 10.0.0.1:80\nretry-after 0\n",
		"bad param":           "cell c1 10.0.0.1:80\nshop-param a-b\n",
		"bad header":          "cell c1 10.0.0.1:80\nshop-header X_Shop\n",
		"unknown directive":   "cell c1 10.0.0.1:80\ninclude /etc/passwd\n",
		"twice":               "cell c1 10.0.0.1:80\ndefault c1\ndefault c1\n",
		"unknown 500":         "cell c1 10.0.0.1:80\nunknown 500\n",
		"unknown cellname":    "cell c1 10.0.0.1:80\nunknown default\n",
		"unknown twice":       "cell c1 10.0.0.1:80\nunknown 404\nunknown 404\n",
		"unknown and default": "cell c1 10.0.0.1:80\nunknown 404\ndefault c1\n",
	} {
		if _, err := ParseCells("shop", []byte(bad)); err == nil {
			t.Errorf("%s: accepted %q", name, bad)
		}
	}
	if _, err := ParseCells("Shop", []byte(goodCells)); err == nil {
		t.Error("bad app name accepted")
	}
}

func TestValidate(t *testing.T) {
	c, _ := ParseCells("shop", []byte(goodCells))
	ok := Mapping{App: "shop", Shops: []Shop{{Domain: "a.test", App: "shop", Cell: "c1", State: Active}, {Domain: "b.test", App: "shop", Cell: "c2", State: Frozen, MoveTo: "c1", MoveStep: "freezing"}}}
	if err := Validate(ok, c); err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]Shop{
		"unknown cell":   {Domain: "c.test", App: "shop", Cell: "c9", State: Active},
		"uppercase":      {Domain: "C.test", App: "shop", Cell: "c1", State: Active},
		"wildcard":       {Domain: "*.test", App: "shop", Cell: "c1", State: Active},
		"other app":      {Domain: "c.test", App: "blog", Cell: "c1", State: Active},
		"bad state":      {Domain: "c.test", App: "shop", Cell: "c1", State: "gone"},
		"unknown target": {Domain: "c.test", App: "shop", Cell: "c1", State: Frozen, MoveTo: "c9"},
		"duplicate":      {Domain: "a.test", App: "shop", Cell: "c1", State: Active},
	} {
		m := ok
		m.Shops = append(append([]Shop(nil), ok.Shops...), s)
		err := Validate(m, c)
		if err == nil || !strings.Contains(err.Error(), s.Domain) {
			t.Errorf("%s: %v, want an error naming %q", name, err, s.Domain)
		}
	}
}

// luaModules loads Debian's Lua module (libnginx-mod-http-lua) in a test
// nginx.conf (a router host loads it from /etc/nginx/modules-enabled).
const luaModules = "load_module /usr/lib/nginx/modules/ndk_http_module.so;\nload_module /usr/lib/nginx/modules/ngx_http_lua_module.so;\n"

func TestRender(t *testing.T) {
	c, _ := ParseCells("shop-x", []byte(goodCells))
	got := string(Render(c, Paths{Routes: "/r/routes.txt", Socket: "/run/x/shop-x.sock"}))
	for _, want := range []string{
		"upstream belay_cell_shop-x_c2 {\n    server 10.0.2.10:80 max_fails=0;\n    server 10.0.2.11:80 max_fails=0;",
		`map "$arg_shop|$http_x_shop|$cookie_shop|$host" $belay_shop_x_shop {`,
		"lua_shared_dict belay_shop_x_routes0 64m;\nlua_shared_dict belay_shop_x_routes1 64m;\nlua_shared_dict belay_shop_x_inflight 64m;\nlua_shared_dict belay_shop_x_ctl 1m;\n",
		`local default_cell, frozen = "c1", "_frozen"`,
		`io.open("/r/routes.txt", "rb")`,
		"listen unix:/run/x/shop-x.sock;",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("map.conf lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "a.test") || strings.Contains(got, "map_hash") {
		t.Errorf("map.conf carries routes (they live in the shared dict):\n%s", got)
	}
}

func TestRenderRoutes(t *testing.T) {
	m := Mapping{App: "shop-x", Version: 9, Shops: []Shop{
		{Domain: "b.test", App: "shop-x", Cell: "c2", State: Active},
		{Domain: "a.test", App: "shop-x", Cell: "c1", State: Frozen, MoveTo: "c2", MoveStep: "freezing"},
	}}
	body, id := RenderRoutes(m)
	if !strings.HasPrefix(id, "9 ") || len(id) != 2+16 {
		t.Errorf("id %q, want the version and 16 hex digits", id)
	}
	if want := "belay-routes 1\nid " + id + "\na.test _frozen\nb.test c2\nend 2\n"; string(body) != want {
		t.Errorf("routes:\n%s\nwant:\n%s", body, want)
	}
	// The id changes with the routes, not only with the version.
	m.Shops[1].State = Active
	if _, id2 := RenderRoutes(m); id2 == id {
		t.Errorf("id %q unchanged after an unfreeze", id2)
	}
	if got := FrozenShops(m); len(got) != 0 {
		t.Errorf("FrozenShops = %v, want none", got)
	}
}

// TestRenderNginxAccepts runs map.conf and the server block through nginx -t
// (init_by_lua loads a routes file of 5000 shops).
func TestRenderNginxAccepts(t *testing.T) {
	for _, p := range []string{"/usr/sbin/nginx", "/usr/lib/nginx/modules/ngx_http_lua_module.so"} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("no %s: apt-get install nginx libnginx-mod-http-lua", p)
		}
	}
	c, _ := ParseCells("shop", []byte(goodCells))
	var shops []Shop
	for i := 0; i < 5000; i++ {
		shops = append(shops, Shop{Domain: "shop" + strings.Repeat("x", i%200) + "-" + itoa(i) + ".example.com", App: "shop", Cell: []string{"c1", "c2"}[i%2], State: Active})
	}
	dir := t.TempDir()
	routes, _ := RenderRoutes(Mapping{App: "shop", Shops: shops})
	if err := os.WriteFile(filepath.Join(dir, RoutesFile), routes, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "map.conf"), Render(c, Paths{Routes: filepath.Join(dir, RoutesFile), Socket: filepath.Join(dir, "s.sock")}), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := luaModules + "error_log " + dir + "/error.log;\npid " + dir + "/nginx.pid;\nevents {}\nhttp {\n    include " + dir + "/map.conf;\n" + ServerConf(c, "127.0.0.1:1") + "}\n"
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("/usr/sbin/nginx", "-t", "-q", "-p", dir, "-c", filepath.Join(dir, "nginx.conf")).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	s := ""
	for ; i > 0; i /= 10 {
		s = string(rune('0'+i%10)) + s
	}
	return s
}

func TestSyncUnitVerifies(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("no systemd-analyze")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "belay")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	unit := filepath.Join(dir, "belay-router-sync@shop.service")
	if err := os.WriteFile(unit, []byte(SyncUnit(bin)), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(sa, "verify", "--man=no", unit)
	cmd.Env = append(os.Environ(), "SYSTEMD_LOG_LEVEL=notice")
	if out, err := cmd.CombinedOutput(); err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
