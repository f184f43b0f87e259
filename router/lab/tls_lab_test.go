//go:build lab

package lab_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/belay-sh/belay/internal/labtest"
	"github.com/belay-sh/belay/lab"
	"github.com/belay-sh/belay/roles"
)

// TestLabRouterHTTPSACME: the routers of the cells stack terminate HTTPS for
// the app's configured domain (lab/cells-stack.yaml: shop.lab.belay.test,
// tls acme at the lab's pebble). Debian's pebble on the primary site's host
// leg issues a certificate to each router (HTTP-01 through the router VIP:
// one validation answered by the VIP holder, the other through its peer
// fallback to the other router); `curl --cacert` through the router VIP
// returns the cell's answer (the domain is assigned to c1); plain HTTP for
// the domain redirects, a shop on another domain is not redirected; after
// the VIP-holding router is killed, HTTPS through the VIP still verifies and
// reaches the cell. Afterwards both routers are back on their placeholder
// (no redirect), as the other cells lab tests expect.
func TestLabRouterHTTPSACME(t *testing.T) {
	for _, bin := range []string{"pebble", "pebble-challtestsrv", "curl"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s is not installed on the lab host (apt-get install -y pebble curl): %v", bin, err)
		}
	}
	inv := labInventory(t)
	if os.Getenv("BELAY_INVENTORY") == "" {
		t.Setenv("BELAY_INVENTORY", "lab")
	}
	app := appName()
	a := inv.App(app)
	if a == nil || a.Router == nil || len(a.Domains) == 0 || a.TLS != "acme" {
		t.Fatalf("inventory app %s: want a router tier, a domain and tls acme (lab/cells-stack.yaml): %+v", app, a)
	}
	var routers []string
	for _, h := range appRouters(inv, app) {
		routers = append(routers, h.Name)
	}
	if len(routers) < 2 {
		t.Fatalf("the primary site has routers %v, want a pair", routers)
	}
	ctx := context.Background()
	domain, vip, leg := a.Domains[0], a.Router.VIP, lab.PebbleAddr().String()
	root := func(host string, argv ...string) string {
		t.Helper()
		out, err := lab.Console(ctx, lab.DefaultPaths, nil, host, argv...)
		if err != nil {
			t.Fatalf("%s: %v: %v\n%s", host, argv, err, out)
		}
		return string(out)
	}
	script := roles.ACMEScript(app)
	t.Cleanup(func() {
		if healed, err := lab.Heal(ctx, lab.DefaultPaths, nil, nil); err != nil {
			t.Errorf("cleanup: heal the lab (healed %v): %v: the machines after this test may be down", healed, err)
		}
		for _, h := range routers {
			if err := routerBack(ctx, h); err != nil {
				t.Errorf("cleanup: %s is not back: %v", h, err)
				continue
			}
			out, err := lab.Console(ctx, lab.DefaultPaths, nil, h, "sh", "-c",
				"rm -rf "+roles.TLSCertFile(app)+" "+roles.ACMEStateDir(app)+" && "+script+" --placeholder && systemctl reload nginx.service")
			if err != nil {
				t.Errorf("%s: restore the placeholder: %v\n%s", h, err, out)
			}
		}
	})

	// The lab app on every cell (as TestLabCells), and the domain on c1.
	release := fmt.Sprintf("tls%d", time.Now().Unix()%100000)
	if _, err := belayBinary(t)("deploy", "--app", app, "--artifact", labtest.LabAppTarball(t, release), "--release", release,
		"--steps", "none", "--pause", "0", "--health-timeout", "30s", "--wave-size", "2"); err != nil {
		t.Fatalf("deploying the lab app to every cell: %v", err)
	}
	if out, err := belayRun("assign", domain, "--app", app, "--cell", "c1"); err != nil && !strings.Contains(out, "already") {
		t.Fatalf("belay shop assign %s --cell c1: %v\n%s", domain, err, out)
	}

	pebble := labtest.StartPebble(t, leg, vip, lab.PebbleAPICert, lab.PebbleAPIKey)

	for _, h := range routers {
		start := time.Now()
		t.Logf("%s: %s", h, root(h, script))
		t.Logf("%s: issued in %s", h, time.Since(start).Round(time.Millisecond))
	}
	caFile := pebble.RootFile(t)
	for _, h := range routers {
		tlsVerify(t, inv.Host(h).PrivateAddress, domain, caFile)
	}
	curlVIP := func(when string) {
		t.Helper()
		var out []byte
		var err error
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
			out, err = exec.Command("curl", "-sS", "-m", "5", "-D", "-", "-o", "/dev/null", "--cacert", caFile,
				"--resolve", domain+":443:"+vip, "https://"+domain+"/").CombinedOutput()
			if err == nil && strings.HasPrefix(string(out), "HTTP/") && strings.Contains(strings.ToLower(string(out)), "x-belay-cell: c1") {
				t.Logf("%s: curl --cacert https://%s/ through the router VIP reached cell c1", when, domain)
				return
			}
		}
		t.Fatalf("%s: curl --cacert through the router VIP: %v\n%s", when, err, out)
	}
	curlVIP("after issuance")
	if code, loc := tlsPlain(t, vip, domain); code != 301 || loc != "https://"+domain+"/" {
		t.Errorf("plain HTTP for %s through the router VIP: %d %q, want 301 to https", domain, code, loc)
	}
	other := fmt.Sprintf("not-covered-%d.%s", time.Now().Unix()%100000, shopZone)
	if code, rh, err := routerAnswer(vip+":80", other); err != nil || code != 404 || rh != "unknown" {
		t.Errorf("plain HTTP for a shop outside the certificate (%s): %d %q %v, want the router's 404 (no redirect)", other, code, rh, err)
	}

	holder := ""
	for _, h := range routers {
		if strings.Contains(root(h, "ip", "-br", "-4", "addr"), " "+vip+"/") {
			holder = h
		}
	}
	if holder == "" {
		t.Fatalf("no router holds the VIP %s", vip)
	}
	if err := lab.Inject(ctx, lab.DefaultPaths, nil, lab.Fault{Kind: lab.FaultKill, Machine: holder}); err != nil {
		t.Fatalf("kill %s: %v", holder, err)
	}
	curlVIP("after killing " + holder)

	hctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if healed, err := lab.Heal(hctx, lab.DefaultPaths, nil, nil); err != nil {
		t.Fatalf("heal %s (healed %v): %v", holder, healed, err)
	}
	if err := routerBack(hctx, holder); err != nil {
		t.Fatalf("%s after the heal: %v", holder, err)
	}
	tlsVerify(t, inv.Host(holder).PrivateAddress, domain, caFile) // its pebble certificate survived the kill
}

// routerBack waits until a killed router answers again: nginx and its
// router-sync active, its health server answering.
func routerBack(ctx context.Context, host string) error {
	check := "systemctl is-active --quiet ssh.service nginx.service " + roles.RouterSyncUnit(appName()) +
		" && curl -fsS -m 3 -o /dev/null http://127.0.0.2/belay-nginx-health"
	var last error
	for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); time.Sleep(time.Second) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		out, err := lab.Console(cctx, lab.DefaultPaths, nil, host, "sh", "-c", check)
		cancel()
		if err == nil {
			return nil
		}
		last = fmt.Errorf("%v: %s", err, out)
	}
	return fmt.Errorf("not back within 3m: %w", last)
}

// tlsVerify waits until addr:443 serves domain a chain pebble's root verifies.
func tlsVerify(t *testing.T, addr, domain, caFile string) {
	t.Helper()
	pool := x509.NewCertPool()
	b, _ := os.ReadFile(caFile)
	pool.AppendCertsFromPEM(b)
	var last error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", addr+":443", &tls.Config{ServerName: domain, RootCAs: pool})
		if err == nil {
			c.Close()
			return
		}
		last = err
	}
	t.Fatalf("%s: no certificate for %s verified by pebble's root: %v", addr, domain, last)
}

// tlsPlain GETs http://vip/ with Host host, redirects not followed.
func tlsPlain(t *testing.T, vip, host string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+vip+"/", nil)
	req.Host = host
	c := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET http://%s/ (Host %s): %v", vip, host, err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Location")
}
