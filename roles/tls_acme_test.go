package roles

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"github.com/belay-sh/belay/internal/labtest"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/belay-sh/belay/httpprobe"
)

// TestACMEIssuanceOnLoopback runs the real thing on loopback: Debian's pebble
// (an ACME CA) and pebble-challtestsrv (its DNS), the rendered belay-acme
// script driving the real lego, and two real nginx instances with the
// rendered config on 127.0.0.21 and 127.0.0.22 standing in for a pair. DNS
// points the domain at the member that did NOT ask, so every HTTP-01
// validation goes through the peer fallback. Then: HTTPS verified against
// pebble's root with curl, the redirect, a forced renewal, a no-op renewal.
func TestACMEIssuanceOnLoopback(t *testing.T) {
	for _, bin := range []string{"pebble", "pebble-challtestsrv", "lego", "openssl", "curl"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s is not installed (apt-get install -y pebble lego openssl curl): %v", bin, err)
		}
	}
	nginx := tool(t, "nginx")
	const domain = "shop.example.com"
	nodes := []string{"127.0.0.21", "127.0.0.22"}
	root := t.TempDir()
	// nginx's workers run as nobody, like www-data on a server: they must reach the webroot.
	for _, d := range []string{filepath.Dir(root), root} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}

	pb := startLoopbackPebble(t, root, nodes[1])
	apiCert, acmePort, mgmtPort, dnsMgmt, httpPort := pb.apiCert, pb.acmePort, pb.mgmtPort, pb.dnsMgmt, pb.httpPort
	httpsPort, appPort := freeTCP(t), freeTCP(t)

	type node struct{ addr, dir, script, conf string }
	var ns []node
	for i, addr := range nodes {
		peer := nodes[1-i]
		s := abAppSpec(t)
		s.Hostname = fmt.Sprintf("web-%d", i+1)
		s.Net.PrivateAddress, s.Net.SiteCIDR = addr, "127.0.0.0/8"
		s.App.Port = appPort
		s.App.Domains = []string{domain}
		s.App.VRRP.Peers = []string{peer}
		s.App.TLS = &TLS{Mode: TLSModeACME, ACMEDirectory: fmt.Sprintf("https://127.0.0.1:%d/dir", acmePort), ACMECACertificate: apiCert, Email: "ops@example.com"}
		c, _ := renderParsed(t, s)
		dir := filepath.Join(root, s.Hostname)
		n := node{addr: addr, dir: dir, conf: dir + "/nginx.conf"}
		nginxCmd := "nginx -p " + dir + " -c " + n.conf
		rewrite := strings.NewReplacer(
			"/etc/belay/nginx/", dir+"/belay-nginx/", "/var/log/nginx/", dir+"/logs/", "/etc/belay/tls/", dir+"/tls/",
			"/var/lib/belay/acme/", dir+"/acme/", ACMEWebroot, dir+"/webroot",
			"listen 80;", fmt.Sprintf("listen %s:%d;", addr, httpPort),
			"listen 443 ssl http2;", fmt.Sprintf("listen %s:%d ssl http2;", addr, httpsPort),
			"listen 127.0.0.2:80;", fmt.Sprintf("listen %s:%d;", addr, freeTCP(t)),
			":80 max_fails=0;", fmt.Sprintf(":%d max_fails=0;", httpPort),
			"systemctl -q is-active nginx.service", "true",
			"nginx -t -q", nginxCmd+" -t -q",
			"systemctl reload nginx.service", nginxCmd+" -s reload",
		)
		for _, f := range c.WriteFiles {
			switch {
			case strings.HasPrefix(f.Path, "/etc/nginx/conf.d/"):
				writeTemp(t, dir, "conf.d/"+filepath.Base(f.Path), rewrite.Replace(f.Content), 0o644)
			case strings.HasPrefix(f.Path, "/etc/belay/nginx/"):
				writeTemp(t, dir, "belay-nginx/"+strings.TrimPrefix(f.Path, "/etc/belay/nginx/"), rewrite.Replace(f.Content), 0o644)
			case strings.HasPrefix(f.Path, "/etc/belay/tls/"):
				writeTemp(t, dir, "tls/"+strings.TrimPrefix(f.Path, "/etc/belay/tls/"), rewrite.Replace(f.Content), 0o600)
			case f.Path == ACMEScript("web"):
				n.script = writeTemp(t, dir, "belay-acme-web", rewrite.Replace(f.Content), 0o755)
			}
		}
		// As first boot: the webroot world-readable, state and certificates root-only.
		for d, mode := range map[string]os.FileMode{dir: 0o755, dir + "/webroot": 0o755, dir + "/logs": 0o755, dir + "/logs/belay": 0o755, dir + "/tls": 0o700, dir + "/acme": 0o700} {
			if err := os.MkdirAll(d, mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(d, mode); err != nil {
				t.Fatal(err)
			}
		}
		runScript(t, n.script, "--placeholder")
		writeTemp(t, dir, "nginx.conf", "user nobody nogroup;\npid "+dir+"/nginx.pid;\nerror_log "+dir+"/logs/error.log;\nevents {}\nhttp {\n    access_log off;\n    include "+dir+"/conf.d/*.conf;\n}\n", 0o644)
		startDaemon(t, dir, "nginx", []string{nginx, "-p", dir, "-c", n.conf, "-g", "daemon off;"}, nil, fmt.Sprintf("%s:%d", addr, httpPort))
		startApp(t, fmt.Sprintf("%s:%d", addr, appPort), "app on "+addr)
		ns = append(ns, n)
	}

	get := func(args ...string) (code, body string) {
		t.Helper()
		out, err := exec.Command("curl", append([]string{"-sS", "-m", "10", "-o", "-", "-w", "\n%{http_code} %{redirect_url}"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("curl %v: %v\n%s", args, err, out)
		}
		i := bytes.LastIndexByte(out, '\n')
		return string(out[i+1:]), string(out[:i])
	}
	httpURL := func(n node, path string) []string {
		return []string{"--resolve", fmt.Sprintf("%s:%d:%s", domain, httpPort, n.addr), fmt.Sprintf("http://%s:%d%s", domain, httpPort, path)}
	}
	httpsURL := func(n node) []string {
		return []string{"--resolve", fmt.Sprintf("%s:%d:%s", domain, httpsPort, n.addr), fmt.Sprintf("https://%s:%d/", domain, httpsPort)}
	}

	// Before any issuance: HTTP serves the app (no redirect to a placeholder),
	// HTTPS answers with the placeholder.
	if code, body := get(httpURL(ns[0], "/")...); code != "200 " || !strings.HasPrefix(body, "app on 127.0.0.2") {
		t.Fatalf("before issuance, http: %q %q, want 200 from the app", code, body)
	}
	if code, _ := get(append([]string{"-k"}, httpsURL(ns[0])...)...); code != "200 " {
		t.Fatalf("before issuance, https with the placeholder: %q, want 200", code)
	}

	// web-1 asks while DNS points at web-2: pebble's validation reaches web-2,
	// which has no token and forwards to web-1.
	out := runScript(t, ns[0].script)
	if !strings.Contains(out, "installed a new certificate") {
		t.Fatalf("first run did not install a certificate:\n%s", out)
	}
	caFile := writeTemp(t, root, "pebble-root.pem", pebbleRoots(t, mgmtPort, apiCert), 0o644)
	// nginx -s reload (systemctl reload) returns before the new workers serve.
	waitVerified := func(n node) {
		t.Helper()
		// Old workers may still accept a connection or two right after the
		// reload: wait for 10 verified handshakes in a row.
		deadline := time.Now().Add(20 * time.Second)
		for ok := 0; ok < 10; {
			if err := servedSerialErr(n.addr, httpsPort, domain, caFile); err != nil {
				ok = 0
				if time.Now().After(deadline) {
					t.Fatalf("%s does not serve a certificate verified by pebble's root: %v", n.addr, err)
				}
				time.Sleep(50 * time.Millisecond)
				continue
			}
			ok++
		}
	}
	waitVerified(ns[0])
	if code, body := get(append([]string{"--cacert", caFile}, httpsURL(ns[0])...)...); code != "200 " || !strings.HasPrefix(body, "app on 127.0.0.2") {
		t.Fatalf("https after issuance: %q %q, want 200 from the app, verified against pebble's root", code, body)
	}
	if code, _ := get(httpURL(ns[0], "/x?y=1")...); code != "301 https://"+domain+"/x?y=1" {
		t.Errorf("http after issuance: %q, want a 301 to https://%s/x?y=1", code, domain)
	}
	// The challenge path is never redirected; an unknown token ends in a 404
	// after one hop (the forwarded request is not forwarded back).
	if code, _ := get(httpURL(ns[0], "/.well-known/acme-challenge/nope")...); code != "404 " {
		t.Errorf("unknown token: %q, want 404", code)
	}
	if code, _ := get(append([]string{"-k"}, httpsURL(ns[1])...)...); code != "200 " {
		t.Errorf("web-2 still on its placeholder: https %q, want 200", code)
	}
	if code, _ := get(httpURL(ns[1], "/")...); code != "200 " {
		t.Errorf("web-2 without a certificate must not redirect: %q", code)
	}
	// The drills' and the site switch's probe (httpprobe) against the real
	// rendered nginx and a real chain: HTTPS, verified, on the member with a
	// certificate; plain HTTP with a note on the one still on its placeholder.
	roots, err := httpprobe.LoadRoots(caFile)
	if err != nil {
		t.Fatal(err)
	}
	probe := func(n node, wantHTTPS bool) {
		t.Helper()
		tg, err := httpprobe.Resolve(context.Background(), httpprobe.Options{Addr: n.addr, HTTPPort: httpPort, HTTPSPort: httpsPort,
			Domain: domain, TLSMode: TLSModeACME, Roots: roots, Timeout: 5 * time.Second})
		if err != nil || tg.HTTPS() != wantHTTPS || (tg.Note == "") != wantHTTPS {
			t.Fatalf("%s: probe target %+v %v, want https=%v", n.addr, tg, err, wantHTTPS)
		}
		req, _ := tg.Request(context.Background())
		resp, err := httpprobe.NewClient(5*time.Second, tg.TLS, false).Do(req)
		if err != nil {
			t.Fatalf("%s: probe %s: %v", n.addr, tg.URL, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: probe %s: %d", n.addr, tg.URL, resp.StatusCode)
		}
	}
	probe(ns[0], true)
	probe(ns[1], false)

	// web-2 asks while DNS points at web-1 (the failover case: the VIP moved).
	setDefaultIPv4(t, dnsMgmt, ns[0].addr)
	if out := runScript(t, ns[1].script); !strings.Contains(out, "installed a new certificate") {
		t.Fatalf("web-2's first run did not install a certificate:\n%s", out)
	}
	waitVerified(ns[1])
	probe(ns[1], true) // as the site switch's verify step finds a standby after its issuance
	for _, n := range ns {
		if code, body := get(append([]string{"--cacert", caFile}, httpsURL(n)...)...); code != "200 " || !strings.HasPrefix(body, "app on 127.0.0.2") {
			t.Errorf("%s https: %q %q, want 200 from a member, verified", n.addr, code, body)
		}
	}

	// Not due: the timer's run changes nothing. Forced: a new certificate is
	// issued (validated through the peer again), installed and served.
	before := servedSerial(t, ns[0].addr, httpsPort, domain, caFile)
	if out := runScript(t, ns[0].script); strings.Contains(out, "installed") {
		t.Errorf("a run with 30+ days left installed a certificate:\n%s", out)
	}
	if got := servedSerial(t, ns[0].addr, httpsPort, domain, caFile); got != before {
		t.Errorf("serial changed without renewal: %s -> %s", before, got)
	}
	setDefaultIPv4(t, dnsMgmt, ns[1].addr)
	if out := runScript(t, ns[0].script, "--force"); !strings.Contains(out, "installed a new certificate") {
		t.Fatalf("forced renewal installed nothing:\n%s", out)
	}
	deadline := time.Now().Add(10 * time.Second)
	for servedSerial(t, ns[0].addr, httpsPort, domain, caFile) == before {
		if time.Now().After(deadline) {
			t.Fatalf("after a forced renewal nginx still serves serial %s", before)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code, _ := get(append([]string{"--cacert", caFile}, httpsURL(ns[0])...)...); code != "200 " {
		t.Errorf("https after renewal: %q", code)
	}
	for _, n := range ns {
		st, err := os.Stat(n.dir + "/tls/web/cert.pem")
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s cert.pem: mode %v, want 0600", n.addr, st.Mode().Perm())
		}
	}
}

func runScript(t *testing.T, path string, args ...string) string {
	t.Helper()
	out, err := exec.Command(path, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", filepath.Base(path), args, err, out)
	}
	return string(out)
}

func freeTCP(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startDaemon runs argv in the background until the test ends and waits
// until addr accepts connections; its output lands in dir/<name>.log.
func startDaemon(t *testing.T, dir, name string, argv, env []string, addr string) {
	t.Helper()
	labtest.Daemon(t, dir, name, env, addr, argv...)
}

func startApp(t *testing.T, addr, body string) {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, body) })}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
}

// loopbackPebble is Debian's pebble (an ACME CA) and pebble-challtestsrv
// (its DNS) on 127.0.0.1, as the ACME tests on loopback run them.
type loopbackPebble struct {
	// apiCert is pebble's own HTTPS certificate, which lego must trust
	// (Spec.*.TLS.ACMECACertificate, LEGO_CA_CERTIFICATES).
	apiCert string
	// acmePort serves the directory (/dir), mgmtPort the roots, dnsMgmt is
	// challtestsrv's management (setDefaultIPv4), httpPort the port the CA
	// validates HTTP-01 on: the nginx under test must listen there.
	acmePort, mgmtPort, dnsMgmt, httpPort int
}

// startLoopbackPebble starts both under root (killed at cleanup); every name
// resolves to defaultIPv4 until setDefaultIPv4 changes it.
func startLoopbackPebble(t *testing.T, root, defaultIPv4 string) loopbackPebble {
	t.Helper()
	apiCert, apiKey := loopbackCert(t)
	writeTemp(t, root, "pebble/cert.pem", apiCert, 0o600)
	writeTemp(t, root, "pebble/key.pem", apiKey, 0o600)
	p := loopbackPebble{apiCert: apiCert, acmePort: freeTCP(t), mgmtPort: freeTCP(t), dnsMgmt: freeTCP(t), httpPort: freeTCP(t)}
	dnsPort := freeTCP(t)
	startDaemon(t, root, "challtestsrv", []string{"pebble-challtestsrv",
		"-defaultIPv4", defaultIPv4, "-defaultIPv6", "",
		"-dns01", fmt.Sprintf("127.0.0.1:%d", dnsPort), "-http01", "", "-https01", "", "-tlsalpn01", "",
		"-management", fmt.Sprintf("127.0.0.1:%d", p.dnsMgmt)}, nil, fmt.Sprintf("127.0.0.1:%d", p.dnsMgmt))
	conf, _ := json.Marshal(map[string]any{"pebble": map[string]any{
		"listenAddress": fmt.Sprintf("127.0.0.1:%d", p.acmePort), "managementListenAddress": fmt.Sprintf("127.0.0.1:%d", p.mgmtPort),
		"certificate": root + "/pebble/cert.pem", "privateKey": root + "/pebble/key.pem",
		"httpPort": p.httpPort, "tlsPort": freeTCP(t), "ocspResponderURL": "", "externalAccountBindingRequired": false,
	}})
	writeTemp(t, root, "pebble/config.json", string(conf), 0o644)
	startDaemon(t, root, "pebble", []string{"pebble", "-config", root + "/pebble/config.json", "-dnsserver", fmt.Sprintf("127.0.0.1:%d", dnsPort)},
		// No random sleeps; every order validates afresh (no reused authorizations),
		// so a renewal proves the challenge path again.
		[]string{"PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0"}, fmt.Sprintf("127.0.0.1:%d", p.acmePort))
	return p
}

// loopbackCert is a self-signed certificate for 127.0.0.1 (pebble's API).
func loopbackCert(t *testing.T) (certPEM, keyPEM string) {
	t.Helper()
	return selfSignedCA(t, "pebble test API", []string{"localhost"}, net.ParseIP("127.0.0.1"))
}

// selfSignedCA is a self-signed server certificate (its own CA) for names
// and ips, valid for a day, and its key, both PEM.
func selfSignedCA(t *testing.T, cn string, names []string, ips ...net.IP) (certPEM, keyPEM string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		IPAddresses: ips, DNSNames: names,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}))
}

func apiClient(t *testing.T, caPEM string) *http.Client {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(caPEM)) {
		t.Fatal("bad CA PEM")
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

// pebbleRoots fetches the root pebble signs with (new at every pebble start).
func pebbleRoots(t *testing.T, mgmtPort int, apiCA string) string {
	t.Helper()
	resp, err := apiClient(t, apiCA).Get(fmt.Sprintf("https://127.0.0.1:%d/roots/0", mgmtPort))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("pebble roots: %d %v", resp.StatusCode, err)
	}
	return string(b)
}

func setDefaultIPv4(t *testing.T, mgmt int, ip string) {
	t.Helper()
	resp, err := http.Post(fmt.Sprintf("http://127.0.0.1:%d/set-default-ipv4", mgmt), "application/json", strings.NewReader(`{"ip":"`+ip+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("set-default-ipv4: %s", resp.Status)
	}
}

func servedSerialErr(addr string, port int, domain, caFile string) error {
	ca, err := os.ReadFile(caFile)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	c, err := tls.Dial("tcp", fmt.Sprintf("%s:%d", addr, port), &tls.Config{ServerName: domain, RootCAs: pool})
	if err != nil {
		return err
	}
	return c.Close()
}

// servedSerial is the serial of the certificate addr serves for domain,
// verified against the CA file.
func servedSerial(t *testing.T, addr string, port int, domain, caFile string) string {
	t.Helper()
	ca, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	c, err := tls.Dial("tcp", fmt.Sprintf("%s:%d", addr, port), &tls.Config{ServerName: domain, RootCAs: pool})
	if err != nil {
		t.Fatalf("tls to %s: %v", addr, err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
}
