//go:build lab

package deploy_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
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

// TestLabHTTPSACME: Debian's pebble on the primary site's host leg issues a
// certificate to each server of the pair (HTTP-01 through the VIP: one
// validation answered directly, the other through the peer fallback), the
// certificate verifies with `curl --cacert` through the VIP, still does after
// the VIP holder is killed, and after a forced renewal on the new holder.
// The lab stack points the app at this pebble (lab/default-stack.yaml).
// Afterwards each server is put back on its placeholder (plain HTTP, no
// redirect), as the other lab tests expect.
//
// The killed holder is healed in the test body, the error checked, and the
// test waits until it is back (sshd answers, nginx and the app healthy)
// before anything is restored; the cleanup heals again and fails loudly, so a
// machine left down is this test's failure, not the next tests'.
func TestLabHTTPSACME(t *testing.T) {
	for _, bin := range []string{"pebble", "pebble-challtestsrv", "curl"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s is not installed on the lab host (apt-get install -y pebble curl): %v", bin, err)
		}
	}
	if len(app.Domains) == 0 || app.VIP == "" || len(app.Hosts) < 2 {
		t.Fatalf("the lab app needs a domain, a VIP and a pair: %+v", app)
	}
	ctx := context.Background()
	domain, leg := app.Domains[0], lab.PebbleAddr().String()
	root := func(host string, argv ...string) string {
		t.Helper()
		out, err := lab.Console(ctx, lab.DefaultPaths, nil, host, argv...)
		if err != nil {
			t.Fatalf("%s: %v: %v\n%s", host, argv, err, out)
		}
		return string(out)
	}
	script := roles.ACMEScript(app.Name)
	t.Cleanup(func() {
		// Back to the state before the test: every machine up, the
		// placeholder, no redirect, no account at a pebble that is gone.
		if healed, err := lab.Heal(ctx, lab.DefaultPaths, nil, nil); err != nil {
			t.Errorf("cleanup: heal the lab (healed %v): %v: the machines after this test may be down", healed, err)
		}
		for _, h := range app.Hosts {
			if err := waitBack(ctx, h); err != nil {
				t.Errorf("cleanup: %s is not back: %v", h, err)
				continue
			}
			out, err := lab.Console(ctx, lab.DefaultPaths, nil, h, "sh", "-c",
				"rm -rf "+roles.TLSCertFile(app.Name)+" "+roles.ACMEStateDir(app.Name)+" && "+script+" --placeholder && systemctl reload nginx.service")
			if err != nil {
				t.Errorf("%s: restore the placeholder: %v\n%s", h, err, out)
			}
		}
	})

	pebble := labtest.StartPebble(t, leg, app.VIP, lab.PebbleAPICert, lab.PebbleAPIKey)

	// Each server asks; the CA reaches the VIP holder, which answers its own
	// token and forwards the other's to its peer.
	for _, h := range app.Hosts {
		start := time.Now()
		t.Logf("%s: %s", h, root(h, script))
		t.Logf("%s: issued in %s", h, time.Since(start).Round(time.Millisecond))
	}
	caFile := pebble.RootFile(t)
	serial := func(addr string) string {
		t.Helper()
		pool := x509.NewCertPool()
		b, _ := os.ReadFile(caFile)
		pool.AppendCertsFromPEM(b)
		var last error
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			c, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", addr+":443", &tls.Config{ServerName: domain, RootCAs: pool})
			if err == nil {
				defer c.Close()
				return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
			}
			last = err
		}
		t.Fatalf("%s: no certificate verified by pebble's root: %v", addr, last)
		return ""
	}
	curlVIP := func(when string) {
		t.Helper()
		var out []byte
		var err error
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
			out, err = exec.Command("curl", "-sS", "-m", "5", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", caFile,
				"--resolve", domain+":443:"+app.VIP, "https://"+domain+"/").CombinedOutput()
			if err == nil && strings.TrimSpace(string(out)) != "000" {
				t.Logf("%s: curl --cacert https://%s/ through the VIP: %s", when, domain, out)
				return
			}
		}
		t.Fatalf("%s: curl --cacert through the VIP: %v %s", when, err, out)
	}
	for _, h := range app.Hosts {
		serial(labInv.Host(h).PrivateAddress)
	}
	curlVIP("after issuance")
	if code := httpCode(t, "http://"+app.VIP+"/", domain); code != "301" {
		t.Errorf("plain HTTP through the VIP: %s, want 301 to HTTPS", code)
	}

	holder := vipHolder(t, root)
	if err := lab.Inject(ctx, lab.DefaultPaths, nil, lab.Fault{Kind: lab.FaultKill, Machine: holder}); err != nil {
		t.Fatalf("kill %s: %v", holder, err)
	}
	curlVIP("after killing " + holder)
	survivor := app.Hosts[0]
	if survivor == holder {
		survivor = app.Hosts[1]
	}
	before := serial(app.VIP)
	t.Logf("%s --force: %s", survivor, root(survivor, script, "--force"))
	for deadline := time.Now().Add(30 * time.Second); serial(app.VIP) == before; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after a forced renewal the VIP still serves serial %s", before)
		}
	}
	curlVIP("after a forced renewal on " + survivor)

	// Bring the killed holder back now, and check it: a heal that fails here
	// is reported here.
	hctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	healed, err := lab.Heal(hctx, lab.DefaultPaths, nil, nil)
	if err != nil {
		t.Fatalf("heal %s (healed %v): %v", holder, healed, err)
	}
	if err := waitBack(hctx, holder); err != nil {
		t.Fatalf("%s after the heal: %v", holder, err)
	}
	serial(labInv.Host(holder).PrivateAddress) // it serves its pebble certificate again
}

// waitBack waits until a lab app server answers as before a kill: sshd
// sends its banner on the inventory's SSH address, and inside the machine
// ssh, nginx and the app's unit are active and the app's health path answers
// 200 on its port.
func waitBack(ctx context.Context, host string) error {
	h := labInv.Host(host)
	if h == nil {
		return fmt.Errorf("%s: not in the lab inventory", host)
	}
	addr := net.JoinHostPort(h.SSHAddress, fmt.Sprint(h.SSHPort))
	check := fmt.Sprintf("systemctl is-active --quiet ssh.service nginx.service && curl -fsS -m 3 -o /dev/null http://127.0.0.1:%d%s", app.Port, app.HealthPath)
	var last error
	for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); time.Sleep(time.Second) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			last = fmt.Errorf("sshd %s: %w", addr, err)
			continue
		}
		_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
		banner := make([]byte, 4)
		_, err = io.ReadFull(c, banner)
		c.Close()
		if err != nil || string(banner) != "SSH-" {
			last = fmt.Errorf("sshd %s: no SSH banner (%q, %v)", addr, banner, err)
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		out, err := lab.Console(cctx, lab.DefaultPaths, nil, host, "sh", "-c", check)
		cancel()
		if err != nil {
			last = fmt.Errorf("services or app health: %v: %s", err, out)
			continue
		}
		return nil
	}
	return fmt.Errorf("not back within 3m: %w", last)
}

func httpCode(t *testing.T, url, host string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Host = host
	c := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	resp.Body.Close()
	return fmt.Sprint(resp.StatusCode)
}

// vipHolder is the app server that has the VIP on an interface.
func vipHolder(t *testing.T, root func(string, ...string) string) string {
	t.Helper()
	for _, h := range app.Hosts {
		if strings.Contains(root(h, "ip", "-br", "-4", "addr"), " "+app.VIP+"/") {
			return h
		}
	}
	t.Fatalf("no app server holds the VIP %s", app.VIP)
	return ""
}
