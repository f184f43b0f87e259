package roles

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/belay-sh/belay/router"
	"github.com/belay-sh/belay/router/routertest"
)

// TestRouterACMEIssuanceOnLoopback is TestACMEIssuanceOnLoopback for a
// router pair: Debian's pebble and lego, the rendered belay-acme script and
// two real nginx with the router's rendered files (map, the three server
// blocks) on 127.0.0.31 and .32. DNS points the domain at the router that
// did NOT ask, so the validation goes through the covered port-80 block's
// peer fallback to the other router. Then HTTPS verified against pebble's
// root reaches the cell with X-Forwarded-Proto https, the domain redirects,
// another shop does not.
func TestRouterACMEIssuanceOnLoopback(t *testing.T) {
	for _, bin := range []string{"pebble", "pebble-challtestsrv", "lego", "openssl", "curl"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s is not installed (apt-get install -y pebble lego openssl curl): %v", bin, err)
		}
	}
	nginx := tool(t, "nginx")
	const domain = "shop.example.com"
	nodes := []string{"127.0.0.31", "127.0.0.32"}
	root := t.TempDir()
	for _, d := range []string{filepath.Dir(root), root} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	pb := startLoopbackPebble(t, root, nodes[1])
	apiCert, acmePort, mgmtPort, httpPort, httpsPort := pb.apiCert, pb.acmePort, pb.mgmtPort, pb.httpPort, freeTCP(t)
	cell := echoCell(t)

	var scripts []string
	for i, addr := range nodes {
		s := acmeRouterSpec(t)
		s.Hostname = fmt.Sprintf("shop-router-%d", i+1)
		s.Net.PrivateAddress, s.Net.SiteCIDR = addr, "127.0.0.0/8"
		s.Router.Domains = []string{domain}
		s.Router.VRRP.Peers = []string{nodes[1-i]}
		s.Router.TLS.ACMEDirectory, s.Router.TLS.ACMECACertificate = fmt.Sprintf("https://127.0.0.1:%d/dir", acmePort), apiCert
		for j := range s.Router.Cells {
			s.Router.Cells[j].Address, s.Router.Cells[j].Port = "127.0.0.1", cell
		}
		c, _ := renderParsed(t, s)
		dir := filepath.Join(root, s.Hostname)
		nginxCmd := "nginx -p " + dir + " -c " + dir + "/nginx.conf"
		rewrite := strings.NewReplacer(
			"/etc/belay/router/", dir+"/belay-router/", "/etc/belay/tls/", dir+"/tls/",
			"/var/lib/belay/acme/", dir+"/acme/", ACMEWebroot, dir+"/webroot",
			"listen 80 default_server;", fmt.Sprintf("listen %s:%d default_server;", addr, httpPort),
			"listen 80;", fmt.Sprintf("listen %s:%d;", addr, httpPort),
			"listen 443 ssl http2 default_server;", fmt.Sprintf("listen %s:%d ssl http2 default_server;", addr, httpsPort),
			"listen 127.0.0.2:80;", fmt.Sprintf("listen %s:%d;", addr, freeTCP(t)),
			":80 max_fails=0;", fmt.Sprintf(":%d max_fails=0;", httpPort),
			"systemctl -q is-active nginx.service", "true",
			"nginx -t -q", nginxCmd+" -t -q",
			"systemctl reload nginx.service", nginxCmd+" -s reload",
		)
		var script string
		for _, f := range c.WriteFiles {
			switch {
			case strings.HasPrefix(f.Path, "/etc/nginx/conf.d/"):
				writeTemp(t, dir, "conf.d/"+filepath.Base(f.Path), rewrite.Replace(f.Content), 0o644)
			case strings.HasPrefix(f.Path, "/etc/belay/tls/"):
				writeTemp(t, dir, "tls/"+strings.TrimPrefix(f.Path, "/etc/belay/tls/"), rewrite.Replace(f.Content), 0o600)
			case f.Path == ACMEScript("shop"):
				script = writeTemp(t, dir, "belay-acme-shop", rewrite.Replace(f.Content), 0o755)
			}
		}
		cells, err := router.ParseCells("shop", []byte(fileAt(t, c, RouterCellsFile("shop")).Content))
		if err != nil {
			t.Fatal(err)
		}
		m := router.Mapping{App: "shop", Version: 1, Shops: []router.Shop{
			{Domain: domain, App: "shop", Cell: "c1", State: router.Active},
			{Domain: "other.example.net", App: "shop", Cell: "eu-2", State: router.Active},
		}}
		// The routes as router-sync leaves them: routes.txt, which nginx
		// loads at start (its Lua dicts are empty then).
		routes, _ := router.RenderRoutes(m)
		writeTemp(t, dir, "belay-router/shop/"+router.RoutesFile, string(routes), 0o644)
		writeTemp(t, dir, "belay-router/shop/map.conf", string(router.Render(cells, router.Paths{
			Routes: filepath.Join(dir, "belay-router/shop", router.RoutesFile), Socket: filepath.Join(dir, "run", "shop.sock"),
		})), 0o644)
		for d, mode := range map[string]os.FileMode{dir: 0o755, dir + "/run": 0o700, dir + "/webroot": 0o755, dir + "/tls": 0o700, dir + "/acme": 0o700} {
			if err := os.MkdirAll(d, mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(d, mode); err != nil {
				t.Fatal(err)
			}
		}
		runScript(t, script, "--placeholder")
		writeTemp(t, dir, "nginx.conf", "user nobody nogroup;\n"+routertest.LoadModules+"pid "+dir+"/nginx.pid;\nerror_log "+dir+"/error.log;\nevents {}\nhttp {\n    access_log off;\n    include "+dir+"/conf.d/*.conf;\n}\n", 0o644)
		startDaemon(t, dir, "nginx", []string{nginx, "-p", dir, "-c", dir + "/nginx.conf", "-g", "daemon off;"}, nil, fmt.Sprintf("%s:%d", addr, httpPort))
		scripts = append(scripts, script)
	}

	curl := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("curl", append([]string{"-sS", "-m", "10", "-o", "-", "-w", " %{http_code} %{redirect_url}"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("curl %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	plain := func(host, node string) string {
		return curl("--resolve", fmt.Sprintf("%s:%d:%s", host, httpPort, node), fmt.Sprintf("http://%s:%d/p", host, httpPort))
	}
	if got := plain(domain, nodes[0]); got != "proto=http cell=c1 200 " {
		t.Fatalf("before issuance, http %s: %q, want the cell (no redirect to a placeholder)", domain, got)
	}
	// Router 1 asks while DNS points at router 2: the validation reaches
	// router 2's covered block, which has no token and asks router 1.
	if out := runScript(t, scripts[0]); !strings.Contains(out, "installed a new certificate") {
		t.Fatalf("first run did not install a certificate:\n%s", out)
	}
	caFile := writeTemp(t, root, "pebble-root.pem", pebbleRoots(t, mgmtPort, apiCert), 0o644)
	var got string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		out, err := exec.Command("curl", "-sS", "-m", "5", "-o", "-", "-w", " %{http_code}", "--cacert", caFile,
			"--resolve", fmt.Sprintf("%s:%d:%s", domain, httpsPort, nodes[0]), fmt.Sprintf("https://%s:%d/", domain, httpsPort)).CombinedOutput()
		if got = string(out); err == nil && got == "proto=https cell=c1 200" {
			break
		}
	}
	if got != "proto=https cell=c1 200" {
		t.Fatalf("https through router 1, verified against pebble's root: %q, want the cell with proto https", got)
	}
	// The redirect comes with the same reload as the certificate, but an old
	// worker of that graceful reload may still take a connection on port 80
	// for a moment on a busy box (one unit run saw the cell answer): wait for
	// the reload to settle, as for HTTPS above.
	redirected := func(got string) bool {
		return got == fmt.Sprintf("301 https://%s:%d/p", domain, httpPort) || strings.HasSuffix(got, " 301 https://"+domain+"/p")
	}
	got = plain(domain, nodes[0])
	for deadline := time.Now().Add(20 * time.Second); !redirected(got) && time.Now().Before(deadline); got = plain(domain, nodes[0]) {
		time.Sleep(100 * time.Millisecond)
	}
	if !redirected(got) {
		t.Errorf("http %s after issuance: %q, want a 301 to https", domain, got)
	}
	if got := plain("other.example.net", nodes[0]); got != "proto=http cell=eu-2 200 " {
		t.Errorf("http for a shop outside the certificate: %q, want the cell, not a redirect", got)
	}
	if got := plain(domain, nodes[1]); got != "proto=http cell=c1 200 " {
		t.Errorf("router 2 without a certificate must not redirect: %q", got)
	}
}
