package vip

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/belay-sh/belay/cloud/api"
	"github.com/belay-sh/belay/cloud/double"
	"github.com/belay-sh/belay/cloud/retry"
)

const testToken = "dop_v1_double-token-0123456789abcdef"

var (
	vipAddr  = netip.MustParseAddr("203.0.113.10")
	fastPoll = 2 * time.Millisecond
	fastPol  = retry.Policy{Base: time.Millisecond, Max: 4 * time.Millisecond}
)

// logBuf collects log lines concurrently and checks they never hold the token.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(&l.b, format+"\n", args...)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func checkNoToken(t *testing.T, logs string, err error) {
	t.Helper()
	if strings.Contains(logs, testToken) {
		t.Errorf("token leaked into logs:\n%s", logs)
	}
	if err != nil && strings.Contains(err.Error(), testToken) {
		t.Errorf("token leaked into error: %v", err)
	}
}

// fakeRunner records interface commands and answers `ip addr show` with addrs.
type fakeRunner struct {
	mu    sync.Mutex
	addrs []string
	fail  string // a command prefix that fails
	cmds  []string
}

func (f *fakeRunner) Run(_ context.Context, argv []string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	cmd := strings.Join(argv, " ")
	f.cmds = append(f.cmds, cmd)
	if f.fail != "" && strings.HasPrefix(cmd, f.fail) {
		return nil, fmt.Errorf("%s: exit status 2: RTNETLINK answers: Operation not permitted", cmd)
	}
	if strings.HasPrefix(cmd, "ip -o -4 addr show") {
		var b strings.Builder
		for i, a := range f.addrs {
			fmt.Fprintf(&b, "%d: eth0    inet %s scope global eth0\\       valid_lft forever preferred_lft forever\n", i+2, a)
		}
		return []byte(b.String()), nil
	}
	if strings.HasPrefix(cmd, "ip addr add ") {
		f.addrs = append(f.addrs, argv[3])
	}
	return nil, nil
}

func newDODouble(t *testing.T) *double.DigitalOceanDouble {
	t.Helper()
	d := double.NewDigitalOceanDouble(testToken)
	t.Cleanup(d.Close)
	d.AddDroplet(double.DODroplet{ID: 111, Name: "shop-1", Region: "fra1", Tags: []string{"belay-shop"}, PublicIP: "198.51.100.11", PrivateIP: "10.114.0.3"})
	d.AddDroplet(double.DODroplet{ID: 222, Name: "shop-2", Region: "fra1", Tags: []string{"belay-shop"}, PublicIP: "198.51.100.12", PrivateIP: "10.114.0.2"})
	d.AddDroplet(double.DODroplet{ID: 333, Name: "other", Region: "ams3", Tags: []string{"belay-blog"}, PublicIP: "198.51.100.13", PrivateIP: "10.114.0.9"})
	return d
}

func doClaimer(t *testing.T, d *double.DigitalOceanDouble, token string, logs *logBuf) DigitalOcean {
	t.Helper()
	c, err := api.NewDigitalOcean(token, d.URL())
	if err != nil {
		t.Fatal(err)
	}
	return DigitalOcean{API: c, Opts: Options{PollInterval: fastPoll, Retry: fastPol, Logf: logs.Logf}}
}

func newHetznerDouble(t *testing.T) *double.HetznerDouble {
	t.Helper()
	h := double.NewHetznerDouble(testToken)
	t.Cleanup(h.Close)
	h.AddServer(double.HetznerServer{ID: 11, Name: "shop-1", Labels: map[string]string{"belay-app": "shop", "stack": "prod"}, PublicIP: "198.51.100.21", PrivateIP: "10.0.1.11", NetworkID: 7})
	h.AddServer(double.HetznerServer{ID: 12, Name: "shop-2", Labels: map[string]string{"belay-app": "shop", "stack": "prod"}, PublicIP: "198.51.100.22", PrivateIP: "10.0.1.12", NetworkID: 7})
	h.AddServer(double.HetznerServer{ID: 13, Name: "blog-1", Labels: map[string]string{"belay-app": "blog", "stack": "prod"}, PublicIP: "198.51.100.23", PrivateIP: "10.0.1.13", NetworkID: 7})
	h.AddFloatingIP(double.HetznerFloatingIP{ID: 4711, Name: "shop-vip", IP: "198.51.100.99"})
	h.AddFloatingIP(double.HetznerFloatingIP{ID: 4712, Name: "blog-vip", IP: vipAddr.String()})
	return h
}

func hetznerClaimer(h *double.HetznerDouble, token string, logs *logBuf, run *fakeRunner) Hetzner {
	return Hetzner{API: api.NewHetzner(token, h.URL()), Opts: Options{PollInterval: fastPoll, Retry: fastPol, Logf: logs.Logf, Run: run.Run}}
}

func mustAddr(t *testing.T, s string) netip.Addr {
	t.Helper()
	a, err := netip.ParseAddr(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
