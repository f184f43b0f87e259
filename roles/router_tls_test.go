package roles

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/router"
	"github.com/belay-sh/belay/router/routertest"
	rsync "github.com/belay-sh/belay/router/sync"
)

func acmeRouterSpec(t testing.TB) *Spec {
	t.Helper()
	s := routerSpec(t)
	s.Router.Domains = []string{"shop.example.com", "www.shop.example.com"}
	s.Router.TLS = &TLS{Mode: TLSModeACME, ACMEDirectory: "https://acme.example.net/dir", Email: "ops@example.com", HSTSMaxAge: 300}
	return s
}

func customRouterSpec(t testing.TB) *Spec {
	t.Helper()
	s := routerSpec(t)
	s.Router.Domains = []string{"shop.example.com", "*.myshops.example.com"}
	s.Router.TLS = &TLS{Mode: TLSModeCustom, Certificate: fixtureCert, Key: fixtureKey}
	return s
}

// TestRouterTLSGolden: a router with tls acme and custom (off is "router").
func TestRouterTLSGolden(t *testing.T) {
	for name, mk := range map[string]func(testing.TB) *Spec{"router-tls-acme": acmeRouterSpec, "router-tls-custom": customRouterSpec, "standby-router-tls-acme": func(t testing.TB) *Spec {
		s := standbyRouterSpec(t)
		a := acmeRouterSpec(t).Router
		s.Router.Domains, s.Router.TLS = a.Domains, a.TLS
		return s
	}} {
		t.Run(name, func(t *testing.T) { checkGolden(t, name, mustRender(t, mk(t))) })
	}
}

// TestRouterTLSWiring: the router renders the app servers' TLS files under
// the same per-app names, opens 443, starts ACME after nginx (primary only),
// and its peer fallback names the other router.
func TestRouterTLSWiring(t *testing.T) {
	c, raw := renderParsed(t, acmeRouterSpec(t))
	for _, p := range []string{ACMEScript("shop"), ACMEPeersFile("shop"), "/etc/systemd/system/" + ACMETimer("shop"), "/etc/nginx/conf.d/belay-shop-acme.conf"} {
		fileAt(t, c, p)
	}
	if peers := fileAt(t, c, ACMEPeersFile("shop")).Content; !strings.Contains(peers, "server 10.213.0.21:80 max_fails=0;") {
		t.Errorf("the challenge fallback is the other router:\n%s", peers)
	}
	if !strings.Contains(string(raw), "https router shop") {
		t.Error("the router's firewall does not open 443")
	}
	order := func(want ...string) {
		t.Helper()
		at := -1
		for _, w := range want {
			i := -1
			for j, cmd := range c.Runcmd {
				if j > at && strings.Join(cmd, " ") == w {
					i = j
					break
				}
			}
			if i < 0 {
				t.Fatalf("runcmd lacks %q after position %d: %v", w, at, c.Runcmd)
			}
			at = i
		}
	}
	order(ACMEScript("shop")+" --placeholder", "sh -c nginx -t && systemctl restart nginx.service", "systemctl enable --now "+ACMETimer("shop"), "systemctl start --no-block "+ACMEUnit("shop"))
	sb := standbyRouterSpec(t)
	sb.Router.Domains, sb.Router.TLS = acmeRouterSpec(t).Router.Domains, acmeRouterSpec(t).Router.TLS
	for _, cmd := range mustParsed(t, sb).Runcmd {
		if strings.Join(cmd, " ") == "systemctl start --no-block "+ACMEUnit("shop") {
			t.Error("the standby router asks the CA at boot; DNS points at the primary site")
		}
	}
	if off := mustParsed(t, routerSpec(t)); strings.Contains(fileAt(t, off, RouterNginxFile("shop")).Content, "443") {
		t.Error("a router without TLS listens on 443")
	}
}

func TestRouterTLSRefused(t *testing.T) {
	for name, tc := range map[string]struct {
		mod  func(s *Spec)
		want string
	}{
		"no domains":       {func(s *Spec) { s.Router.Domains = nil }, "Spec.Router.Domains is empty"},
		"wildcard on acme": {func(s *Spec) { s.Router.Domains = []string{"*.shop.example.com"} }, "Spec.Router.Domains[0]"},
		"hostile domain":   {func(s *Spec) { s.Router.Domains = []string{"a.example.com;return"} }, "Spec.Router.Domains[0]"},
		"duplicate domain": {func(s *Spec) { s.Router.Domains = []string{"a.example.com", "a.example.com"} }, "Spec.Router.Domains[1]"},
		"no email":         {func(s *Spec) { s.Router.TLS.Email = "" }, "Spec.Router.TLS.Email"},
		"bad mode":         {func(s *Spec) { s.Router.TLS.Mode = "on" }, "Spec.Router.TLS.Mode"},
		"with an app":      {func(s *Spec) { s.App, s.Roles = abAppSpec(t).App, append(s.Roles, inventory.RoleApp) }, "Spec.Router.TLS: set on a host that is also a server of app"},
	} {
		t.Run(name, func(t *testing.T) {
			s := acmeRouterSpec(t)
			tc.mod(s)
			if _, err := Render(s); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Render() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestRouterServerNames(t *testing.T) {
	got := strings.Join(routerServerNames([]string{"shop.example.com", "*.my-shops.example.com"}), " ")
	if want := `shop.example.com ~^[^.]+\.my-shops\.example\.com$`; got != want {
		t.Errorf("routerServerNames = %q, want %q", got, want)
	}
}

// TestRouterTLSServesWithRoleFiles runs real nginx on loopback with the
// files a router with a custom wildcard certificate ships (ports and paths
// moved): the certificate's names redirect to HTTPS, a shop on another
// domain (and a name two labels under the wildcard) stays on plain HTTP,
// HTTPS reaches the cell with X-Forwarded-Proto https and HSTS. The acme
// variant's configuration (challenge locations, peers upstream, placeholder
// redirect include) passes nginx -t.
func TestRouterTLSServesWithRoleFiles(t *testing.T) {
	nginx := tool(t, "nginx")
	cell := echoCell(t)
	certPEM, keyPEM := wildcardCert(t, "shop.example.com", "*.myshops.example.com")
	s := customRouterSpec(t)
	s.Router.TLS.Certificate, s.Router.TLS.Key, s.Router.TLS.HSTSMaxAge = certPEM, keyPEM, 600
	s.Router.UnknownShop = "404"
	for i := range s.Router.Cells {
		s.Router.Cells[i].Address, s.Router.Cells[i].Port = "127.0.0.1", cell
	}
	c, _ := renderParsed(t, s)
	dir := t.TempDir()
	httpPort, httpsPort := freeTCP(t), freeTCP(t)
	startRouterNginx(t, nginx, c, dir, httpPort, httpsPort)
	var shops []router.Shop
	for _, d := range []string{"shop.example.com", "a.myshops.example.com", "a.b.myshops.example.com", "other-shop.example.net"} {
		shops = append(shops, router.Shop{Domain: d, App: "shop", Cell: "c1", State: router.Active})
	}
	routeBy(t, dir, router.Mapping{App: "shop", Version: 1, Shops: shops})
	plain := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for host, want := range map[string]string{
		"shop.example.com":        "301 https://shop.example.com/x?q=1",
		"a.myshops.example.com":   "301 https://a.myshops.example.com/x?q=1",
		"a.b.myshops.example.com": "200 proto=http cell=c1",
		"other-shop.example.net":  "200 proto=http cell=c1",
	} {
		var got string
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			got = fetch(plain, "http://127.0.0.1:"+strconv.Itoa(httpPort)+"/x?q=1", host, "")
			if got == want || time.Now().After(deadline) {
				break
			}
		}
		if got != want {
			t.Errorf("http %s: %q, want %q", host, got, want)
		}
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(certPEM))
	secure := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "a.myshops.example.com"}}}
	if got := fetch(secure, "https://127.0.0.1:"+strconv.Itoa(httpsPort)+"/", "a.myshops.example.com", "max-age=600"); got != "200 proto=https cell=c1" {
		t.Errorf("https a.myshops.example.com: %q, want the cell with proto https and HSTS", got)
	}

	// mode acme: the same files with the challenge parts pass nginx -t.
	ac, _ := renderParsed(t, acmeRouterSpec(t))
	adir := t.TempDir()
	writeRouterFiles(t, ac, adir, freeTCP(t), freeTCP(t))
	writeTemp(t, adir, "tls/shop/cert.pem", certPEM+keyPEM, 0o600)
	writeTemp(t, adir, "tls/shop/redirect.conf", redirectOff, 0o600)
	main := routerNginxMain(t, adir)
	if out, err := exec.Command(nginx, "-t", "-p", adir, "-c", main).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t of the acme router: %v\n%s\n%s", err, out, fileAt(t, ac, RouterNginxFile("shop")).Content)
	}
}

// fetch GETs url with Host host: "STATUS Location" for a redirect, else
// "STATUS body"; wantHSTS, when set, must be the Strict-Transport-Security value.
func fetch(c *http.Client, url, host, wantHSTS string) string {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Host = host
	resp, err := c.Do(req)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if wantHSTS != "" && resp.Header.Get("Strict-Transport-Security") != wantHSTS {
		return "HSTS " + resp.Header.Get("Strict-Transport-Security")
	}
	if resp.StatusCode/100 == 3 {
		return strconv.Itoa(resp.StatusCode) + " " + resp.Header.Get("Location")
	}
	return strconv.Itoa(resp.StatusCode) + " " + strings.TrimSpace(string(b))
}

// echoCell answers with the X-Forwarded-Proto and X-Belay-Cell it got.
func echoCell(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "proto="+r.Header.Get("X-Forwarded-Proto")+" cell="+r.Header.Get("X-Belay-Cell"))
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return l.Addr().(*net.TCPAddr).Port
}

// routeBy makes the test router route by m as router-sync would: the
// snapshot pushed through the control socket (nginx's Lua routes).
func routeBy(t *testing.T, dir string, m router.Mapping) {
	t.Helper()
	body, _ := router.RenderRoutes(m)
	ctl := rsync.NewControl(filepath.Join(dir, "run", "shop.sock"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ctl.Load(ctx, body); err != nil {
		t.Fatalf("pushing the routes: %v", err)
	}
}

// writeRouterFiles writes the role's nginx, router and TLS files under dir
// (paths and ports moved to loopback).
func writeRouterFiles(t *testing.T, c *CloudConfig, dir string, httpPort, httpsPort int) {
	t.Helper()
	h, hs := strconv.Itoa(httpPort), strconv.Itoa(httpsPort)
	// The control socket's directory (nginx.service's RuntimeDirectory on a host).
	if err := os.MkdirAll(filepath.Join(dir, "run"), 0o700); err != nil {
		t.Fatal(err)
	}
	rewrite := strings.NewReplacer("/etc/belay/router/", dir+"/belay-router/", "/etc/belay/tls/", dir+"/tls/", ACMEWebroot, dir+"/webroot",
		router.RuntimeDir+"/", dir+"/run/",
		"listen 80 default_server;", "listen 127.0.0.1:"+h+" default_server;", "listen 80;", "listen 127.0.0.1:"+h+";",
		"listen 443 ssl http2 default_server;", "listen 127.0.0.1:"+hs+" ssl default_server;", "listen 127.0.0.2:80;", "listen 127.0.0.2:"+h+";")
	for _, f := range c.WriteFiles {
		switch {
		case strings.HasPrefix(f.Path, "/etc/nginx/conf.d/"):
			writeTemp(t, dir, "conf.d/"+filepath.Base(f.Path), rewrite.Replace(f.Content), 0o644)
		case strings.HasPrefix(f.Path, "/etc/belay/router/"):
			writeTemp(t, dir, "belay-router/"+strings.TrimPrefix(f.Path, "/etc/belay/router/"), rewrite.Replace(f.Content), 0o600)
		case strings.HasPrefix(f.Path, "/etc/belay/tls/"):
			writeTemp(t, dir, "tls/"+strings.TrimPrefix(f.Path, "/etc/belay/tls/"), f.Content, 0o600)
		}
	}
}

func routerNginxMain(t *testing.T, dir string) string {
	t.Helper()
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;\n" // workers must read the temp dir; never as root outside a test
	}
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	return writeTemp(t, dir, "nginx.conf", user+routertest.LoadModules+"pid "+dir+"/nginx.pid;\nerror_log "+dir+"/error.log;\nevents {}\nhttp {\n    access_log off;\n"+
		"    client_body_temp_path "+dir+"/tmp/body;\n    proxy_temp_path "+dir+"/tmp/proxy;\n    fastcgi_temp_path "+dir+"/tmp/fcgi;\n    uwsgi_temp_path "+dir+"/tmp/uwsgi;\n    scgi_temp_path "+dir+"/tmp/scgi;\n"+
		"    include "+dir+"/conf.d/*.conf;\n}\n", 0o644)
}

// startRouterNginx runs nginx with the router's files; it returns the
// arguments naming its prefix and config (for -s reload).
func startRouterNginx(t *testing.T, nginx string, c *CloudConfig, dir string, httpPort, httpsPort int) []string {
	t.Helper()
	writeRouterFiles(t, c, dir, httpPort, httpsPort)
	args := []string{"-p", dir, "-c", routerNginxMain(t, dir)}
	cmd := exec.Command(nginx, append(args, "-g", "daemon off;")...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = exec.Command(nginx, append(args, "-s", "quit")...).Run()
		_ = cmd.Wait()
	})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		_, perr := os.Stat(filepath.Join(dir, "nginx.pid"))
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(httpsPort), time.Second)
		if err == nil && perr == nil {
			c.Close()
			return args
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx does not listen on %d (pid file: %v): %v", httpsPort, perr, err)
		}
	}
}

// wildcardCert is a self-signed certificate for names (its own CA).
func wildcardCert(t *testing.T, names ...string) (certPEM, keyPEM string) {
	t.Helper()
	return selfSignedCA(t, names[0], names)
}

// TestCellServerForwardedProto: a cell's server tells its app the router's
// X-Forwarded-Proto (the router terminates HTTPS); an app pair without
// cells keeps its own scheme (its clients could claim anything).
func TestCellServerForwardedProto(t *testing.T) {
	s := abAppSpec(t)
	s.App.TLS = nil
	plain := fileAt(t, mustParsed(t, s), "/etc/nginx/conf.d/belay-web.conf").Content
	if !strings.Contains(plain, "proxy_set_header X-Forwarded-Proto $scheme;") || strings.Contains(plain, "$http_x_forwarded_proto") {
		t.Errorf("an app pair trusts a client's X-Forwarded-Proto:\n%s", plain)
	}
	s.App.Cell = "c1"
	cell := fileAt(t, mustParsed(t, s), "/etc/nginx/conf.d/belay-web.conf").Content
	for _, want := range []string{"map $http_x_forwarded_proto $belay_web_forwarded_proto {\n    default $scheme;\n    https https;\n}", "proxy_set_header X-Forwarded-Proto $belay_web_forwarded_proto;"} {
		if !strings.Contains(cell, want) {
			t.Errorf("cell server conf lacks %q:\n%s", want, cell)
		}
	}
}
