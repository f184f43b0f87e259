package shopcert_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"github.com/belay-sh/belay/internal/labtest"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/belay-sh/belay/router"
	"github.com/belay-sh/belay/router/shopcert"
)

func freeTCP(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// daemon starts argv until the test ends and waits until addr accepts.
func daemon(t *testing.T, dir string, env []string, addr string, argv ...string) {
	t.Helper()
	labtest.Daemon(t, dir, filepath.Base(argv[0]), env, addr, argv...)
}

// TestIssuerWithPebble: real lego against Debian's pebble on loopback.
// pebble's DNS (challtestsrv) resolves every name to 127.0.0.1, where the
// webroot is served on pebble's HTTP-01 port (the router's nginx serves
// the same directory; its challenge locations are the roles' tests'),
// except nodns.test, pointed at 127.0.0.9 where nothing answers (a shop
// whose DNS is not at the router yet). a.test is issued with a chain
// pebble's root verifies, installed 0600 and pushed; nodns.test fails with
// lego's reason and backs off, without keeping a.test from being issued.
func TestIssuerWithPebble(t *testing.T) {
	for _, bin := range []string{"pebble", "pebble-challtestsrv", "lego"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("no %s (apt-get install pebble lego): %v", bin, err)
		}
	}
	dir := t.TempDir()
	ca := newCA(t)
	api := ca.leafIP(t, "127.0.0.1")
	if err := os.WriteFile(filepath.Join(dir, "api.pem"), api, 0o600); err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "api-ca.pem")
	if err := os.WriteFile(caFile, pemCert(ca.cert), 0o644); err != nil {
		t.Fatal(err)
	}
	acme, mgmt, dnsMgmt, dnsPort, httpPort := freeTCP(t), freeTCP(t), freeTCP(t), freeTCP(t), freeTCP(t)
	daemon(t, dir, nil, fmt.Sprintf("127.0.0.1:%d", dnsMgmt), "pebble-challtestsrv", "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
		"-dns01", fmt.Sprintf("127.0.0.1:%d", dnsPort), "-http01", "", "-https01", "", "-tlsalpn01", "",
		"-management", fmt.Sprintf("127.0.0.1:%d", dnsMgmt))
	conf, _ := json.Marshal(map[string]any{"pebble": map[string]any{
		"listenAddress": fmt.Sprintf("127.0.0.1:%d", acme), "managementListenAddress": fmt.Sprintf("127.0.0.1:%d", mgmt),
		"certificate": filepath.Join(dir, "api.pem"), "privateKey": filepath.Join(dir, "api.pem"),
		"httpPort": httpPort, "tlsPort": freeTCP(t), "ocspResponderURL": "", "externalAccountBindingRequired": false,
	}})
	if err := os.WriteFile(filepath.Join(dir, "pebble.json"), conf, 0o644); err != nil {
		t.Fatal(err)
	}
	daemon(t, dir, []string{"PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0"}, fmt.Sprintf("127.0.0.1:%d", acme),
		"pebble", "-config", filepath.Join(dir, "pebble.json"), "-dnsserver", fmt.Sprintf("127.0.0.1:%d", dnsPort))
	if resp, err := http.Post(fmt.Sprintf("http://127.0.0.1:%d/add-a", dnsMgmt), "application/json",
		strings.NewReader(`{"host":"nodns.test.","addresses":["127.0.0.9"]}`)); err != nil || resp.StatusCode != 200 {
		t.Fatalf("challtestsrv add-a: %v %v", resp, err)
	}

	webroot := filepath.Join(dir, "webroot")
	if err := os.MkdirAll(webroot, 0o755); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", httpPort))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.FileServer(http.Dir(webroot)), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	ng := &fakeNginx{held: map[string]string{}}
	state, certs := filepath.Join(dir, "state"), filepath.Join(dir, "certs")
	iss, err := shopcert.New(shopcert.Options{App: "shop",
		Conf:     router.ShopACME{Server: fmt.Sprintf("https://127.0.0.1:%d/dir", acme), Email: "ops@shop.test", CAFile: caFile, Webroot: webroot},
		StateDir: state, CertsDir: certs, Nginx: ng, Timeout: 2 * time.Minute, Log: testLog{t}})
	if err != nil {
		t.Fatal(err)
	}
	iss.SetShops([]string{"a.test", "nodns.test"})
	start := time.Now()
	if err := iss.Pass(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Logf("one pass (one issued, one failed) in %s", time.Since(start).Round(time.Millisecond))
	st := byDomain(iss.States())
	if st["a.test"].State != shopcert.Issued || st["nodns.test"].State != shopcert.Failed {
		t.Fatalf("states %+v, want a.test issued and nodns.test failed", st)
	}
	if st["nodns.test"].Error == "" || st["nodns.test"].NextTry.Before(time.Now().Add(14*time.Minute)) {
		t.Errorf("nodns.test: %+v, want lego's reason and a retry in 15 min", st["nodns.test"])
	}
	if strings.Contains(st["nodns.test"].Error, "PRIVATE KEY") {
		t.Error("the reported reason carries key material")
	}

	// The installed chain verifies against pebble's root for a.test.
	installed, err := shopcert.Installed(certs)
	if err != nil || installed["a.test"] == nil {
		t.Fatalf("installed %v %v", keys(installed), err)
	}
	if fi, err := os.Stat(filepath.Join(certs, "a.test.pem")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("a.test.pem: %v %v, want 0600", fi, err)
	}
	if ng.held["a.test"] != shopcert.Digest(installed["a.test"]) {
		t.Errorf("nginx holds %v, want a.test's installed certificate", ng.held)
	}
	roots := x509.NewCertPool()
	cl := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsConfig(ca)}}
	resp, err := cl.Get(fmt.Sprintf("https://127.0.0.1:%d/roots/0", mgmt))
	if err != nil {
		t.Fatal(err)
	}
	rootPEM, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	roots.AppendCertsFromPEM(rootPEM)
	leaf, inter := parseChain(t, installed["a.test"])
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "a.test", Roots: roots, Intermediates: inter}); err != nil {
		t.Errorf("a.test's certificate does not verify against pebble's root: %v", err)
	}

	// A second pass now: nothing due (a.test valid, nodns.test backing off).
	if err := iss.Pass(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s := byDomain(iss.States())["nodns.test"]; s.Failures != 1 {
		t.Errorf("nodns.test retried before its backoff: %+v", s)
	}
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
