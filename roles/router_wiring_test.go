package roles

import (
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/belay-sh/belay/internal/labapp"
	"github.com/belay-sh/belay/internal/shq/shqtest"
	"github.com/belay-sh/belay/router"
	rt "github.com/belay-sh/belay/router/routertest"
	rsync "github.com/belay-sh/belay/router/sync"
)

// TestRouterEngineFiles: every file the routing engine reads is the engine's
// own rendering, so what router-sync and shop-db parse on the host is what
// the role wrote (one renderer per file).
func TestRouterEngineFiles(t *testing.T) {
	for name, tc := range map[string]struct {
		mk      func(testing.TB) *Spec
		enable  []string
		unknown string
	}{
		"router":         {routerSpec, []string{"systemctl", "enable", "--now", "belay-router-sync@shop.service"}, "unknown 421\n"},
		"standby-router": {standbyRouterSpec, []string{"systemctl", "enable", "belay-router-sync@shop.service"}, "default eu-2\n"},
	} {
		t.Run(name, func(t *testing.T) {
			c, _ := renderParsed(t, tc.mk(t))
			raw := fileAt(t, c, RouterCellsFile("shop")).Content
			cells, err := router.ParseCells("shop", []byte(raw))
			if err != nil {
				t.Fatalf("router.ParseCells(cells.conf) = %v\n%s", err, raw)
			}
			if got := strings.Join(cells.Names(), ","); got != "c1,eu-2" || !strings.Contains(raw, tc.unknown) || cells.Keys.Header != "X-Shop-Domain" {
				t.Errorf("cells.conf: cells %s, want c1,eu-2 and %q:\n%s", got, tc.unknown, raw)
			}
			if got, want := fileAt(t, c, RouterMapFile("shop")).Content, string(router.Render(cells, router.DefaultPaths("shop"))); got != want {
				t.Errorf("map.conf is not the engine's rendering:\n%s", got)
			}
			if got, want := fileAt(t, c, RouterNginxFile("shop")).Content, "include /etc/belay/router/shop/map.conf;\n"+router.ServerConf(cells, "80 default_server"); !strings.HasSuffix(got, want) {
				t.Errorf("server block:\n%s\nwant suffix:\n%s", got, want)
			}
			if got := fileAt(t, c, RouterSyncUnitFile).Content; got != router.SyncUnit(BelayBinary) {
				t.Errorf("sync unit is not router.SyncUnit:\n%s", got)
			}
			found := false
			for _, cmd := range c.Runcmd {
				found = found || slices.Equal(cmd, tc.enable)
			}
			if !found {
				t.Errorf("runcmd lacks %v: %v", tc.enable, c.Runcmd)
			}
			for _, f := range c.WriteFiles {
				if strings.Contains(f.Path, "router.env") || strings.HasSuffix(f.Path, "/belay-router-sync.service") {
					t.Errorf("stale file of the unwired router: %s", f.Path)
				}
			}
		})
	}
}

// TestRouterSudoers: the deploy user may run exactly the shop commands'
// helper for this app on a router, and visudo accepts the file.
func TestRouterSudoers(t *testing.T) {
	c, _ := renderParsed(t, routerSpec(t))
	f := fileAt(t, c, RouterSudoersFile("shop"))
	if f.Permissions != "0440" || f.Owner != "root:root" {
		t.Errorf("sudoers mode/owner = %s %s", f.Permissions, f.Owner)
	}
	want := "Cmnd_Alias BELAY_ROUTER_SHOP = /usr/local/bin/belay host shop-db --app shop\ndeploy ALL=(root) NOPASSWD: BELAY_ROUTER_SHOP\n"
	if !strings.HasSuffix(f.Content, want) || strings.Contains(f.Content, "*") {
		t.Errorf("router sudoers:\n%s\nwant exactly:\n%s", f.Content, want)
	}
	visudoCheck(t, f.Content)
}

// TestCellServerSudoers: a cell's app server grants the move hooks of its
// app (export and import of one shop), an app without cells does not.
func TestCellServerSudoers(t *testing.T) {
	s := abAppSpec(t)
	plain := fileAt(t, mustParsed(t, s), "/etc/sudoers.d/belay-web").Content
	if strings.Contains(plain, "move-hook") {
		t.Errorf("an app without cells grants move hooks:\n%s", plain)
	}
	s.App.Cell = "c1"
	cell := fileAt(t, mustParsed(t, s), "/etc/sudoers.d/belay-web").Content
	for _, want := range []string{"/usr/local/bin/belay host move-hook web export *", "/usr/local/bin/belay host move-hook web import *"} {
		if strings.Count(cell, want) != 1 {
			t.Errorf("cell server sudoers lacks %q once:\n%s", want, cell)
		}
	}
	visudoCheck(t, cell)
	for _, bad := range []string{"C1", "c1;x", "-c1", strings.Repeat("c", 17)} {
		s.App.Cell = bad
		if _, err := Render(s); err == nil || !strings.Contains(err.Error(), "Spec.App.Cell") {
			t.Errorf("Spec.App.Cell = %q: Render() = %v, want an error naming Spec.App.Cell", bad, err)
		}
	}
}

func mustParsed(t *testing.T, s *Spec) *CloudConfig {
	t.Helper()
	c, _ := renderParsed(t, s)
	return c
}

func visudoCheck(t *testing.T, content string) {
	t.Helper()
	visudo := tool(t, "visudo")
	p := writeTemp(t, t.TempDir(), "belay-sudoers", content, 0o440)
	if out, err := exec.Command(visudo, "-c", "-f", p).CombinedOutput(); err != nil {
		t.Fatalf("visudo -cf: %v\n%s\n%s", err, out, content)
	}
}

// TestRouterServesWithRoleFiles runs real nginx on loopback with the files
// the role ships (paths moved into a temp dir, port 80 moved to a free
// loopback port): before any sync an unknown shop gets the configured 404
// page; with routes pushed through the role's control socket (as
// router-sync does, no reload), a shop reaches its cell.
func TestRouterServesWithRoleFiles(t *testing.T) {
	nginx := tool(t, "nginx")
	c1, c2 := rt.StartCell(t, "c1"), rt.StartCell(t, "eu-2")
	s := routerSpec(t)
	s.Router.UnknownShop = "404"
	s.Router.Cells[0].Address, s.Router.Cells[0].Port = c1.Addr.Addr().String(), int(c1.Addr.Port())
	s.Router.Cells[1].Address, s.Router.Cells[1].Port = c2.Addr.Addr().String(), int(c2.Addr.Port())
	c, _ := renderParsed(t, s)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	listen := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	rewrite := strings.NewReplacer("/etc/belay/router/", dir+"/belay-router/", router.RuntimeDir+"/", dir+"/run/", "listen 80 default_server;", "listen "+listen+";", "listen 127.0.0.2:80;", "listen 127.0.0.2:"+strings.Split(listen, ":")[1]+";")
	for _, f := range c.WriteFiles {
		switch {
		case strings.HasPrefix(f.Path, "/etc/nginx/conf.d/"):
			writeTemp(t, dir, "conf.d/"+filepath.Base(f.Path), rewrite.Replace(f.Content), 0o644)
		case strings.HasPrefix(f.Path, "/etc/belay/router/"):
			writeTemp(t, dir, "belay-router/"+strings.TrimPrefix(f.Path, "/etc/belay/router/"), rewrite.Replace(f.Content), 0o600)
		}
	}
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;\n" // workers must read the temp dir; never as root outside a test
	}
	for _, d := range []string{"tmp", "run"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	main := writeTemp(t, dir, "nginx.conf", rt.LoadModules+user+"pid "+dir+"/nginx.pid;\nerror_log "+dir+"/error.log;\nevents {}\nhttp {\n    access_log off;\n"+
		"    client_body_temp_path "+dir+"/tmp/body;\n    proxy_temp_path "+dir+"/tmp/proxy;\n    fastcgi_temp_path "+dir+"/tmp/fcgi;\n    uwsgi_temp_path "+dir+"/tmp/uwsgi;\n    scgi_temp_path "+dir+"/tmp/scgi;\n"+
		"    include "+dir+"/conf.d/*.conf;\n}\n", 0o644)
	args := []string{"-p", dir, "-c", main}
	cmd := exec.Command(nginx, append(args, "-g", "daemon off;")...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = exec.Command(nginx, append(args, "-s", "quit")...).Run()
		_ = cmd.Wait()
	})
	get := func(shop string) (int, string, string, error) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+listen+"/", nil)
		req.Host = shop
		resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
		if err != nil {
			return 0, "", "", err
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get(router.HeaderRouter), resp.Header.Get(labapp.HeaderRelease), nil
	}
	expect := func(shop string, status int, routerHdr, cell string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			code, rh, rel, err := get(shop)
			if err == nil && code == status && rh == routerHdr && rel == cell {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET %s: %d %q %q %v, want %d %q from cell %q", shop, code, rh, rel, err, status, routerHdr, cell)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	expect("nobody.example.com", 404, "unknown", "")
	cells, err := router.ParseCells("shop", []byte(fileAt(t, c, RouterCellsFile("shop")).Content))
	if err != nil {
		t.Fatal(err)
	}
	m := router.Mapping{App: "shop", Version: 1, Shops: []router.Shop{{Domain: "acme.example.com", App: "shop", Cell: "eu-2", State: router.Active}}}
	if err := router.Validate(m, cells); err != nil {
		t.Fatal(err)
	}
	routes, _ := router.RenderRoutes(m)
	// As router-sync pushes: with the control key nginx made next to the socket.
	if err := rsync.NewControl(dir+"/run/shop.sock").Load(context.Background(), routes); err != nil {
		t.Fatalf("push through the role's control socket: %v", err)
	}
	expect("acme.example.com", 200, "", "eu-2")
	expect("nobody.example.com", 404, "unknown", "")
}

// TestHostileRouterValuesRefused: every router value that reaches a root
// file (cells.conf, the server block, the sudoers line, the unit instance)
// refuses each hostile value, naming the field, before anything is rendered.
func TestHostileRouterValuesRefused(t *testing.T) {
	fields := []struct {
		field, prefix string
		set           func(*Spec, string)
	}{
		{"Spec.Router.App", "shop", func(s *Spec, v string) { s.Router.App = v }},
		{"Spec.Router.Cells[0].Name", "c1", func(s *Spec, v string) { s.Router.Cells[0].Name = v }},
		{"Spec.Router.Cells[0].Address", "10.213.0.125", func(s *Spec, v string) { s.Router.Cells[0].Address = v }},
		{"Spec.Router.DefaultCell", "c1", func(s *Spec, v string) { s.Router.UnknownShop, s.Router.DefaultCell = "default", v }},
		{"Spec.Router.UnknownShop", "404", func(s *Spec, v string) { s.Router.UnknownShop = v }},
		{"Spec.Router.ShopParam", "shop", func(s *Spec, v string) { s.Router.ShopParam = v }},
		{"Spec.Router.ShopHeader", "X-Shop", func(s *Spec, v string) { s.Router.ShopHeader = v }},
		{"Spec.Router.ShopCookie", "shop", func(s *Spec, v string) { s.Router.ShopCookie = v }},
	}
	// After a valid prefix these values stay valid (or empty) for some fields.
	inert := map[string]bool{"empty": true, "leading dash": true}
	n := 0
	for _, f := range fields {
		for _, v := range shqtest.Values {
			for _, val := range []string{v.S, f.prefix + v.S} {
				if val != v.S && inert[v.Name] {
					continue
				}
				s := routerSpec(t)
				f.set(s, val)
				out, err := Render(s)
				// ShopParam and ShopCookie share one message.
				name := strings.TrimSuffix(strings.TrimSuffix(f.field, "Param"), "Cookie")
				if err == nil || !strings.Contains(err.Error(), name) {
					t.Errorf("%s = %q (%s): Render() = %v, want an error naming %s", f.field, val, v.Name, err, f.field)
				}
				if out != nil {
					t.Errorf("%s = %q: Render returned output with its error", f.field, val)
				}
				n++
			}
		}
	}
	t.Logf("%d hostile router values refused", n)
}
