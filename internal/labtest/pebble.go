package labtest

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// Pebble is Debian's pebble ACME test server (with its challenge test server
// as DNS) running on the lab host's leg of the lab bridge.
type Pebble struct {
	dir, leg, apiCert string
}

// StartPebble starts pebble-challtestsrv (every name resolves to
// defaultIPv4, the address the CA validates against: a VIP) and pebble on
// leg, both stopped at the test's cleanup. apiCert/apiKey are the PEM pair
// pebble's API serves (the lab's, lab.PebbleAPICert/Key: passed in because
// this leaf package may not import lab).
func StartPebble(t testing.TB, leg, defaultIPv4, apiCert, apiKey string) *Pebble {
	t.Helper()
	p := &Pebble{dir: t.TempDir(), leg: leg, apiCert: apiCert}
	p.write(t, "api.pem", apiCert)
	p.write(t, "api.key", apiKey)
	conf, _ := json.Marshal(map[string]any{"pebble": map[string]any{
		"listenAddress": leg + ":14000", "managementListenAddress": leg + ":15000",
		"certificate": p.dir + "/api.pem", "privateKey": p.dir + "/api.key",
		"httpPort": 80, "tlsPort": 443, "ocspResponderURL": "", "externalAccountBindingRequired": false,
	}})
	p.write(t, "pebble.json", string(conf))
	Daemon(t, p.dir, "challtestsrv", nil, leg+":8055", "pebble-challtestsrv", "-defaultIPv4", defaultIPv4, "-defaultIPv6", "",
		"-dns01", leg+":8053", "-http01", "", "-https01", "", "-tlsalpn01", "", "-management", leg+":8055")
	Daemon(t, p.dir, "pebble", []string{"PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0"}, leg+":14000",
		"pebble", "-config", p.dir+"/pebble.json", "-dnsserver", leg+":8053")
	return p
}

// RootFile writes the root pebble signs with (new at every start) to a file
// for curl --cacert and returns its path.
func (p *Pebble) RootFile(t testing.TB) string {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(p.apiCert))
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := c.Get("https://" + p.leg + ":15000/roots/0")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("pebble root: %d %v", resp.StatusCode, err)
	}
	return p.write(t, "pebble-root.pem", string(b))
}

func (p *Pebble) write(t testing.TB, name, content string) string {
	t.Helper()
	f := filepath.Join(p.dir, name)
	if err := os.WriteFile(f, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// Daemon starts argv in dir, in its own process group (killed at cleanup,
// its log dir/NAME.log shown on failure), and waits up to 20 s until it
// listens on addr: the pebble, challtestsrv and nginx of the lab's and the
// loopback ACME tests.
func Daemon(t testing.TB, dir, name string, env []string, addr string, argv ...string) {
	t.Helper()
	logf, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir, cmd.Env = dir, append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("%s log:\n%s", name, b)
		}
		logf.Close()
	})
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		c, err := net.DialTimeout("tcp", addr, 300*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not listen on %s: %v", name, addr, err)
		}
	}
}
