//go:build lab

package lab_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/belay-sh/belay/internal/labtest"
	"github.com/belay-sh/belay/lab"
	"github.com/belay-sh/belay/roles"
	"github.com/belay-sh/belay/router/store"
)

// TestLabShopCertificates: a shop on its own domain (outside the app's
// certificate) flagged with `belay shop tls` gets a certificate from the
// lab's pebble on both routers (HTTP-01 through the router VIP: the VIP
// holder answers, the other router's validation goes through the peer
// fallback), `belay shop certs` shows it issued on both, `curl --cacert`
// with the shop's SNI through the router VIP reaches its cell, plain HTTP
// for it redirects, and nginx's workers are the same processes (no reload).
// `tls off` brings back the app's certificate. Cleanup removes the shops'
// lego state (pebble's account dies with the test) and restarts router-sync.
func TestLabShopCertificates(t *testing.T) {
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
	if a == nil || a.Router == nil || a.TLS != "acme" {
		t.Fatalf("inventory app %s: want a router tier with tls acme (lab/cells-stack.yaml): %+v", app, a)
	}
	var routers []string
	for _, h := range appRouters(inv, app) {
		routers = append(routers, h.Name)
	}
	if len(routers) < 2 {
		t.Fatalf("the primary site has routers %v, want a pair", routers)
	}
	ctx := context.Background()
	vip, leg := a.Router.VIP, lab.PebbleAddr().String()
	shop := fmt.Sprintf("own-%d.shopcerts.test", time.Now().Unix()%100000)
	t.Cleanup(func() {
		_, _ = belayRun("tls", shop, "off", "--app", app)
		for _, h := range routers {
			out, err := lab.Console(ctx, lab.DefaultPaths, nil, h, "sh", "-c",
				"rm -rf "+roles.ACMEStateDir(app)+"/shops && systemctl restart "+roles.RouterSyncUnit(app))
			if err != nil {
				t.Errorf("%s: cleanup of the shops' lego state: %v\n%s", h, err, out)
			}
		}
	})

	release := fmt.Sprintf("sc%d", time.Now().Unix()%100000)
	if _, err := belayBinary(t)("deploy", "--app", app, "--artifact", labtest.LabAppTarball(t, release), "--release", release,
		"--steps", "none", "--pause", "0", "--health-timeout", "30s", "--wave-size", "2"); err != nil {
		t.Fatalf("deploying the lab app to every cell: %v", err)
	}
	belay(t, "assign", shop, "--app", app, "--cell", "c1")
	pebble := labtest.StartPebble(t, leg, vip, lab.PebbleAPICert, lab.PebbleAPIKey)
	caFile := pebble.RootFile(t)

	workers := map[string]string{}
	for _, h := range routers {
		w, err := nginxWorkers(h)
		if err != nil {
			t.Fatal(err)
		}
		workers[h] = w
	}
	start := time.Now()
	belay(t, "tls", shop, "on", "--app", app)
	took := eventually(t, 5*time.Minute, "the shop's certificate issued on every router", func() error {
		out, _ := belayRun("certs", shop, "--app", app, "--json")
		var certs []store.Cert
		if err := json.Unmarshal([]byte(out), &certs); err != nil {
			return fmt.Errorf("belay shop certs --json: %v: %s", err, out)
		}
		issued := 0
		for _, c := range certs {
			if c.State == "issued" {
				issued++
			}
		}
		if issued < len(routers) {
			return fmt.Errorf("issued on %d of %d routers: %s", issued, len(routers), out)
		}
		return nil
	})
	t.Logf("tls on → issued and reported on %d routers in %s (command start %s ago)", len(routers), took.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	for _, h := range routers {
		tlsVerify(t, inv.Host(h).PrivateAddress, shop, caFile)
	}
	var out []byte
	var err error
	ok := false
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && !ok; time.Sleep(500 * time.Millisecond) {
		out, err = exec.Command("curl", "-sS", "-m", "5", "-D", "-", "-o", "/dev/null", "--cacert", caFile,
			"--resolve", shop+":443:"+vip, "https://"+shop+"/").CombinedOutput()
		ok = err == nil && strings.Contains(strings.ToLower(string(out)), "x-belay-cell: c1")
	}
	if !ok {
		t.Fatalf("curl --cacert https://%s/ through the router VIP: %v\n%s", shop, err, out)
	}
	if code, loc := tlsPlain(t, vip, shop); code != 301 || loc != "https://"+shop+"/" {
		t.Errorf("plain HTTP for %s through the router VIP: %d %q, want 301 to https", shop, code, loc)
	}
	for _, h := range routers {
		if w, err := nginxWorkers(h); err != nil || w != workers[h] {
			t.Errorf("%s: nginx workers %q (%v), were %q: issuing must not reload", h, w, err, workers[h])
		}
	}

	belay(t, "tls", shop, "off", "--app", app)
	eventually(t, 3*time.Minute, "the shop back on plain HTTP after tls off", func() error {
		if code, _ := tlsPlain(t, vip, shop); code == 301 {
			return fmt.Errorf("still redirected")
		}
		return nil
	})
}
