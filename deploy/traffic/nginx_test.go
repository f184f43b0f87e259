package traffic

// These tests run the rendered files in a real nginx on loopback, with Go
// backends standing in for the stable and canary releases. They skip when nginx
// is not installed (scripts/deps.sh installs it).

import (
	"context"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/belay-sh/belay/deploy/analysis"
)

const nginxBin = "/usr/sbin/nginx"

// fixture is one nginx with the base config the roles render (see doc.go), and
// backends: stable on 127.0.0.1:P and 127.0.0.2:P, canary on 127.0.0.2:P+1.
type fixture struct {
	t      *testing.T
	dir    string
	app    string
	port   int // app port P
	listen string
	log    string
	cmd    *exec.Cmd
	maint  *Maintenance // rendered into every stage when set
	health string       // the keepalived health server's address (127.0.0.2:N)
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	if _, err := os.Stat(nginxBin); err != nil {
		t.Skipf("no nginx (%v); apt-get install nginx", err)
	}
	f := &fixture{t: t, dir: t.TempDir(), app: "shop-app"}
	f.log = filepath.Join(f.dir, "access.log")
	f.port = startBackends(t)
	f.listen = freeAddr(t)
	for _, d := range []string{"tmp", "etc/" + f.app} {
		if err := os.MkdirAll(filepath.Join(f.dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;" // workers must read the temp dir; never as root outside a test
	}
	conf := fmt.Sprintf(`%[4]s
worker_processes 2;
error_log %[1]s/error.log warn;
pid %[1]s/nginx.pid;
events { worker_connections 512; }
http {
    access_log off;
    client_body_temp_path %[1]s/tmp/body;
    proxy_temp_path %[1]s/tmp/proxy;
    fastcgi_temp_path %[1]s/tmp/fastcgi;
    uwsgi_temp_path %[1]s/tmp/uwsgi;
    scgi_temp_path %[1]s/tmp/scgi;
    %[5]s
    include %[1]s/etc/%[2]s/http.conf;
    server {
        listen %[3]s;
        access_log %[1]s/access.log belay;
        include %[1]s/etc/%[2]s/routing.conf;
        location / {
            proxy_pass http://belay_%[2]s_$belay_pool;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
        }
    }
}
`, f.dir, f.app, f.listen, user, analysis.LogFormat)
	if err := os.WriteFile(filepath.Join(f.dir, "nginx.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) spec(stage Stage) Spec {
	return Spec{
		App: f.app, Port: f.port,
		StableAddrs: []string{"127.0.0.1", "127.0.0.2"},
		CanaryAddrs: []string{"127.0.0.2"},
		Stage:       stage,
		Maintenance: f.maint,
	}
}

// write renders stage into the fixture's include files.
func (f *fixture) write(stage Stage) {
	f.t.Helper()
	files, err := Render(f.spec(stage))
	if err != nil {
		f.t.Fatal(err)
	}
	for name, b := range map[string][]byte{"http.conf": files.HTTP, "routing.conf": files.Routing} {
		// Write then rename, as the deployer does, so a reload never reads half a file.
		p := filepath.Join(f.dir, "etc", f.app, name)
		if err := os.WriteFile(p+".tmp", b, 0o644); err != nil {
			f.t.Fatal(err)
		}
		if err := os.Rename(p+".tmp", p); err != nil {
			f.t.Fatal(err)
		}
	}
}

func (f *fixture) nginx(args ...string) error {
	all := append([]string{"-p", f.dir, "-c", filepath.Join(f.dir, "nginx.conf")}, args...)
	out, err := exec.Command(nginxBin, all...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("nginx %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

func (f *fixture) start(stage Stage) {
	f.t.Helper()
	f.write(stage)
	if err := f.nginx("-t", "-q"); err != nil {
		f.t.Fatal(err)
	}
	f.cmd = exec.Command(nginxBin, "-p", f.dir, "-c", filepath.Join(f.dir, "nginx.conf"), "-g", "daemon off;")
	f.cmd.Stderr = os.Stderr
	if err := f.cmd.Start(); err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() {
		_ = f.nginx("-s", "quit")
		done := make(chan struct{})
		go func() { _ = f.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = f.cmd.Process.Kill()
			<-done
		}
	})
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.Dial("tcp", f.listen)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("nginx does not listen on %s: %v", f.listen, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// reload switches a running nginx to stage and waits until new workers (and
// only they) serve: a reload is asynchronous, old workers finish their requests
// with the old config and then exit.
func (f *fixture) reload(stage Stage) {
	f.t.Helper()
	old := workers(f.cmd.Process.Pid)
	f.write(stage)
	if err := f.nginx("-t", "-q"); err != nil {
		f.t.Fatal(err)
	}
	if err := f.nginx("-s", "reload"); err != nil {
		f.t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		now := workers(f.cmd.Process.Pid)
		fresh := len(now) == 2
		for pid := range now {
			if old[pid] {
				fresh = false
			}
		}
		if fresh {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	f.t.Fatalf("nginx workers were not replaced after reload")
}

// workers lists the master's child processes (nginx workers) by scanning /proc.
func workers(master int) map[int]bool {
	out := map[int]bool{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// Fields after the parenthesized command: state ppid ...
		i := strings.LastIndexByte(string(b), ')')
		var state string
		var ppid int
		if i < 0 {
			continue
		}
		if _, err := fmt.Sscanf(string(b[i+1:]), " %s %d", &state, &ppid); err == nil && ppid == master && state != "Z" {
			out[pid] = true
		}
	}
	return out
}

// startBackends listens on P and P+1 and returns P: the stable backends answer
// "stable <addr>", the canary "canary <addr>".
func startBackends(t *testing.T) int {
	t.Helper()
	for try := 0; try < 50; try++ {
		l1, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := l1.Addr().(*net.TCPAddr).Port
		if p >= 65534 {
			l1.Close()
			continue
		}
		l2, err2 := net.Listen("tcp", fmt.Sprintf("127.0.0.2:%d", p))
		l3, err3 := net.Listen("tcp", fmt.Sprintf("127.0.0.2:%d", p+1))
		if err2 != nil || err3 != nil {
			for _, l := range []net.Listener{l1, l2, l3} {
				if l != nil {
					l.Close()
				}
			}
			continue
		}
		for _, b := range []struct {
			l    net.Listener
			name string
		}{{l1, "stable"}, {l2, "stable"}, {l3, "canary"}} {
			srv := &http.Server{Handler: echo(b.name + " " + b.l.Addr().String())}
			go srv.Serve(b.l)
			t.Cleanup(func() { srv.Close() })
		}
		return p
	}
	t.Fatal("no free port pair on loopback")
	return 0
}

// echo answers who it is; the canary fails requests carrying fail=1, a release
// with a bug the stable one does not have.
func echo(who string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(who, "canary") && r.URL.Query().Get("fail") == "1" {
			http.Error(w, who+" failed", http.StatusInternalServerError)
			return
		}
		io.WriteString(w, who)
	})
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// client sends requests from one loopback source address.
type client struct {
	hc *http.Client
}

func newClient(t *testing.T, src string) *client {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second}
	if src != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
	}
	tr := &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 4}
	t.Cleanup(tr.CloseIdleConnections)
	return &client{hc: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
}

type req struct {
	query   string            // raw query
	headers map[string]string // extra headers
	cookie  string            // raw Cookie header
}

// pool sends r and returns "stable" or "canary" (from the answering backend).
func (c *client) pool(f *fixture, r req) (string, error) {
	hr, err := http.NewRequestWithContext(context.Background(), "GET", "http://"+f.listen+"/x?"+r.query, nil)
	if err != nil {
		return "", err
	}
	for k, v := range r.headers {
		hr.Header.Set(k, v)
	}
	if r.cookie != "" {
		hr.Header.Set("Cookie", r.cookie)
	}
	resp, err := c.hc.Do(hr)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	who, _, _ := strings.Cut(string(b), " ")
	return who, nil
}

func (f *fixture) mustPool(c *client, r req) string {
	f.t.Helper()
	p, err := c.pool(f, r)
	if err != nil {
		f.t.Fatalf("request %+v: %v", r, err)
	}
	return p
}

var allStages = []Stage{
	{Kind: Stable},
	{Kind: Whitelist, Rules: Rules{
		Shops:   []string{"a.example.com", "b.example.com"},
		Clients: []string{"127.0.0.7", "127.0.8.0/24", "::1", "fd00::/8"},
		Headers: []Match{{"X-Beta", "on"}, {"X-Team", "~.*"}, {"X-Mode", "default"}},
		Cookies: []Match{{"beta", "yes"}, {"beta", "include"}},
	}},
	{Kind: Percent, Percent: 10},
	{Kind: Percent, Percent: 50, Sticky: ByShop, Rules: Rules{Shops: []string{"a.example.com"}, Clients: []string{"127.0.0.7"}}},
	{Kind: Full},
}

func TestNginxAcceptsEveryStage(t *testing.T) {
	f := newFixture(t)
	for _, st := range allStages {
		f.write(st)
		if err := f.nginx("-t", "-q"); err != nil {
			t.Errorf("stage %s: %v", st, err)
		}
	}
}

// TestNginxRandomValidInputs renders random rule sets made of every character the
// validator accepts; nginx must load each one (nothing valid breaks the syntax).
func TestNginxRandomValidInputs(t *testing.T) {
	f := newFixture(t)
	rng := rand.New(rand.NewSource(1))
	const valueChars = "!#%&()*+,-./0123456789:<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[]^_`abcdefghijklmnopqrstuvwxyz|~"
	val := func() string {
		b := make([]byte, 1+rng.Intn(20))
		for i := range b {
			b[i] = valueChars[rng.Intn(len(valueChars))]
		}
		return string(b)
	}
	for i := 0; i < 20; i++ {
		r := Rules{
			Shops:   []string{fmt.Sprintf("s%d-x.example.com", rng.Intn(1000))},
			Headers: []Match{{"X-H" + fmt.Sprint(rng.Intn(3)), val()}, {"X-H0", val()}},
			Cookies: []Match{{"c_" + fmt.Sprint(rng.Intn(3)), val()}},
		}
		st := Stage{Kind: Whitelist, Rules: r}
		f.write(st)
		if err := f.nginx("-t", "-q"); err != nil {
			t.Fatalf("rules %+v: %v", r, err)
		}
	}
}

func TestNginxWhitelist(t *testing.T) {
	f := newFixture(t)
	f.start(allStages[1])
	local := newClient(t, "127.0.0.1")

	canary := []req{
		{query: "shop=a.example.com"},
		{query: "shop=B.Example.COM"},
		{query: "SHOP=b.example.com"},
		{query: "x=1&shop=a.example.com&y=2"},
		{headers: map[string]string{"X-Shop-Domain": "a.example.com"}},
		{headers: map[string]string{"x-shop-domain": "B.EXAMPLE.COM"}},
		{cookie: "shop=a.example.com"},
		{cookie: "other=1; shop=b.example.com"},
		{headers: map[string]string{"X-Beta": "on"}},
		{headers: map[string]string{"X-Beta": "ON"}},
		{headers: map[string]string{"X-Team": "~.*"}}, // the literal, not a regex
		{headers: map[string]string{"X-Mode": "default"}},
		{cookie: "beta=yes"},
		{cookie: "beta=include"},
	}
	for _, r := range canary {
		for i := 0; i < 5; i++ {
			if p := f.mustPool(local, r); p != "canary" {
				t.Errorf("%+v went to %s, want canary", r, p)
				break
			}
		}
	}
	for _, ip := range []string{"127.0.0.7", "127.0.8.1", "127.0.8.254"} {
		c := newClient(t, ip)
		for i := 0; i < 5; i++ {
			if p := f.mustPool(c, req{query: "shop=zzz.example.com"}); p != "canary" {
				t.Errorf("client %s went to %s, want canary", ip, p)
				break
			}
		}
	}

	// Near misses: a '.' in a shop must not act as a regex wildcard, suffixes and
	// prefixes must not match, and regex-looking header values only match literally.
	nearMiss := []req{
		{query: "shop=a.example.com.evil.com"},
		{query: "shop=xa.example.com"},
		{query: "shop=a-example.com"},
		{query: "shop=aXexample.com"},
		{query: "shop=a.example.co"},
		{query: "shopx=a.example.com"},
		{query: "xshop=a.example.com"},
		{headers: map[string]string{"X-Shop-Domainx": "a.example.com"}},
		{headers: map[string]string{"X-Shop-Domain": "a.example.com.evil"}},
		{cookie: "xshop=a.example.com"},
		{headers: map[string]string{"X-Beta": "off"}}, // (trailing spaces are not part of a header value in HTTP)
		{headers: map[string]string{"X-Beta": "onn"}},
		{headers: map[string]string{"X-Team": "anything"}},
		{headers: map[string]string{"X-Mode": "other"}},
		{cookie: "beta=no"},
	}
	for _, r := range nearMiss {
		if p := f.mustPool(local, r); p != "stable" {
			t.Errorf("%+v went to %s, want stable", r, p)
		}
	}

	// Many random non-listed shops by every carrier, from non-listed addresses:
	// none may ever reach the canary.
	rng := rand.New(rand.NewSource(2))
	const n = 2000
	leaks := 0
	others := []*client{local, newClient(t, "127.0.0.8"), newClient(t, "127.0.9.1"), newClient(t, "127.0.0.6")}
	for i := 0; i < n; i++ {
		shop := fmt.Sprintf("%c%x.example.com", 'a'+rng.Intn(26), rng.Int63())
		var r req
		switch i % 3 {
		case 0:
			r.query = "shop=" + shop
		case 1:
			r.headers = map[string]string{"X-Shop-Domain": shop}
		case 2:
			r.cookie = "shop=" + shop
		}
		if p := f.mustPool(others[i%len(others)], r); p != "stable" {
			leaks++
		}
	}
	t.Logf("whitelist: %d random non-listed requests, %d reached the canary", n, leaks)
	if leaks != 0 {
		t.Errorf("%d of %d non-listed requests reached the canary", leaks, n)
	}

	// The access log names the pool that served each request.
	rep := readLog(t, f)
	if rep.Garbage != 0 || rep.Other.Requests != 0 {
		t.Errorf("log: %d garbage, %d without pool; samples %q", rep.Garbage, rep.Other.Requests, rep.GarbageSample)
	}
	wantCanary := int64(len(canary)*5 + 3*5)
	if rep.Canary.Requests != wantCanary || rep.Stable.Requests != int64(len(nearMiss)+n) {
		t.Errorf("log: canary %d stable %d, want %d and %d", rep.Canary.Requests, rep.Stable.Requests, wantCanary, len(nearMiss)+n)
	}
}

func readLog(t *testing.T, f *fixture) analysis.Report {
	t.Helper()
	// nginx writes each line with one write(2) after the response; give it a beat.
	time.Sleep(100 * time.Millisecond)
	lf, err := os.Open(f.log)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	rep, err := analysis.Analyze(analysis.Window{}, lf)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// TestNginxPercent checks the share, stickiness per client, and that the clients
// on the canary at 10 % are still there at 50 % (reload in between).
func TestNginxPercent(t *testing.T) {
	f := newFixture(t)
	f.start(Stage{Kind: Percent, Percent: 10})
	const clients, each = 1000, 3
	addrs := make([]string, clients)
	for i := range addrs {
		addrs[i] = fmt.Sprintf("127.1.%d.%d", i/250, 1+i%250)
	}
	run := func(percent int) map[string]bool {
		on := map[string]bool{}
		canaryN := 0
		for _, a := range addrs {
			c := newClient(t, a)
			first := ""
			for k := 0; k < each; k++ {
				p := f.mustPool(c, req{query: fmt.Sprintf("shop=s%d.example.com", k)})
				if first == "" {
					first = p
				} else if p != first {
					t.Errorf("percent %d: client %s not sticky: %s then %s", percent, a, first, p)
				}
			}
			c.hc.CloseIdleConnections()
			if first == "canary" {
				on[a] = true
				canaryN++
			}
		}
		share := 100 * float64(canaryN) / clients
		t.Logf("percent %d: %d of %d clients (%.1f%%) on the canary, each sticky over %d requests", percent, canaryN, clients, share, each)
		if share < float64(percent)-3 || share > float64(percent)+3 {
			t.Errorf("percent %d: %.1f%% of clients on the canary, want %d±3", percent, share, percent)
		}
		return on
	}
	at10 := run(10)
	f.reload(Stage{Kind: Percent, Percent: 50})
	at50 := run(50)
	moved := 0
	for a := range at10 {
		if !at50[a] {
			moved++
		}
	}
	if moved != 0 {
		t.Errorf("%d clients on the canary at 10%% went back to stable at 50%%", moved)
	}
}

// TestNginxPercentByShop: the shop decides, whichever carrier names it and
// whichever address the request comes from.
func TestNginxPercentByShop(t *testing.T) {
	f := newFixture(t)
	f.start(Stage{Kind: Percent, Percent: 10, Sticky: ByShop, Rules: Rules{Shops: []string{"vip.example.com"}}})
	cs := []*client{newClient(t, "127.0.0.1"), newClient(t, "127.0.0.3"), newClient(t, "127.0.0.4")}
	const shops = 600
	canaryN := 0
	for i := 0; i < shops; i++ {
		shop := fmt.Sprintf("shop%d.example.com", i)
		ps := []string{
			f.mustPool(cs[0], req{query: "shop=" + shop}),
			f.mustPool(cs[1], req{headers: map[string]string{"X-Shop-Domain": shop}}),
			f.mustPool(cs[2], req{cookie: "shop=" + shop}),
		}
		if ps[0] != ps[1] || ps[1] != ps[2] {
			t.Errorf("shop %s split across pools by carrier/address: %v", shop, ps)
		}
		if ps[0] == "canary" {
			canaryN++
		}
	}
	share := 100 * float64(canaryN) / shops
	t.Logf("percent 10 by shop: %d of %d shops (%.1f%%) on the canary", canaryN, shops, share)
	if share < 6 || share > 14 {
		t.Errorf("%.1f%% of shops on the canary, want 10±4", share)
	}
	for _, c := range cs {
		if p := f.mustPool(c, req{query: "shop=vip.example.com"}); p != "canary" {
			t.Errorf("whitelisted shop went to %s in the percent stage", p)
		}
	}
}

func TestNginxFull(t *testing.T) {
	f := newFixture(t)
	f.start(Stage{Kind: Full})
	c := newClient(t, "127.0.0.1")
	for i := 0; i < 50; i++ {
		if p := f.mustPool(c, req{query: fmt.Sprintf("shop=s%d.example.com", i)}); p != "canary" {
			t.Fatalf("full stage sent a request to %s", p)
		}
	}
}

// TestNginxReloadDropsNothing walks every stage with `nginx -s reload` while
// clients keep sending requests; not one may fail.
func TestNginxReloadDropsNothing(t *testing.T) {
	f := newFixture(t)
	f.start(Stage{Kind: Stable})
	var sent, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		c := newClient(t, fmt.Sprintf("127.0.0.%d", 20+w))
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				_, err := c.pool(f, req{query: fmt.Sprintf("shop=w%d-%d.example.com", w, i)})
				sent.Add(1)
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				}
			}
		}(w)
	}
	reloads := 0
	for round := 0; round < 3; round++ {
		for _, st := range allStages {
			f.reload(st)
			reloads++
			time.Sleep(150 * time.Millisecond)
		}
	}
	close(stop)
	wg.Wait()
	t.Logf("reload: %d reloads, %d requests, %d failed", reloads, sent.Load(), failed.Load())
	if failed.Load() != 0 {
		t.Errorf("%d of %d requests failed across %d reloads; first: %v", failed.Load(), sent.Load(), reloads, firstErr.Load())
	}
	if sent.Load() < int64(reloads)*10 {
		t.Errorf("only %d requests during %d reloads: the loop did not run", sent.Load(), reloads)
	}
	// Every logged line parses and carries a pool.
	rep := readLog(t, f)
	if rep.Garbage != 0 || rep.Other.Requests != 0 || rep.Stable.Requests+rep.Canary.Requests != sent.Load() {
		t.Errorf("log: stable %d canary %d other %d garbage %d, sent %d", rep.Stable.Requests, rep.Canary.Requests, rep.Other.Requests, rep.Garbage, sent.Load())
	}
}

// TestNginxLogVerdict: the log nginx writes, read by analysis, rolls back a
// canary that fails 10 % of its requests and passes one that does not.
func TestNginxLogVerdict(t *testing.T) {
	f := newFixture(t)
	f.start(Stage{Kind: Whitelist, Rules: Rules{Shops: []string{"c1.example.com", "c2.example.com"}}})
	c := newClient(t, "127.0.0.1")
	phase := func(failEvery int) analysis.Verdict {
		t.Helper()
		time.Sleep(50 * time.Millisecond)
		st, err := os.Stat(f.log)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 1800; i++ {
			shop := fmt.Sprintf("s%d.example.com", i)
			if i%6 == 0 {
				shop = []string{"c1.example.com", "c2.example.com"}[i%2]
			}
			q := "shop=" + shop
			if failEvery > 0 && i%(6*failEvery) == 0 {
				q += "&fail=1"
			}
			hr, _ := http.NewRequest("GET", "http://"+f.listen+"/?"+q, nil)
			resp, err := c.hc.Do(hr)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		time.Sleep(100 * time.Millisecond)
		lf, err := os.Open(f.log)
		if err != nil {
			t.Fatal(err)
		}
		defer lf.Close()
		// Read only what this phase appended, as the deployer does with the offset
		// it noted when the stage began.
		if _, err := lf.Seek(st.Size(), io.SeekStart); err != nil {
			t.Fatal(err)
		}
		rep, err := analysis.Analyze(analysis.Window{}, lf)
		if err != nil {
			t.Fatal(err)
		}
		v := analysis.Evaluate(rep.Canary, rep.Stable, analysis.Thresholds{})
		t.Logf("fail every %d: %s", failEvery, v)
		return v
	}
	if v := phase(10); v.Decision != analysis.Rollback || v.Canary.Errors != 30 || v.Canary.Requests != 300 || v.Baseline.Requests != 1500 {
		t.Errorf("failing canary: %s (%+v)", v, v.Canary)
	}
	if v := phase(0); v.Decision != analysis.Pass || v.Canary.Requests != 300 {
		t.Errorf("healthy canary: %s", v)
	}
}

// TestNginxLargeWhitelist: the limits load in nginx (the default map hash would
// refuse a 253-byte shop or a few hundred shops), and matching still works.
func TestNginxLargeWhitelist(t *testing.T) {
	f := newFixture(t)
	long := strings.Repeat("a", 63) + "." + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 61)
	r := Rules{Shops: []string{long}}
	for i := 0; len(r.Shops) < MaxShops; i++ {
		r.Shops = append(r.Shops, fmt.Sprintf("shop-%d-%sz.myshopify.com", i, strings.Repeat("x", i%40)))
	}
	for i := 0; len(r.Clients) < MaxClients; i++ {
		r.Clients = append(r.Clients, fmt.Sprintf("10.%d.%d.0/24", i/256, i%256))
	}
	for i := 0; i < MaxMatches; i++ {
		r.Headers = append(r.Headers, Match{fmt.Sprintf("X-M%d", i%7), fmt.Sprintf("%03d", i) + strings.Repeat("v", 253)})
	}
	f.start(Stage{Kind: Whitelist, Rules: r})
	c := newClient(t, "127.0.0.1")
	for _, rq := range []req{
		{query: "shop=" + long},
		{headers: map[string]string{"X-Shop-Domain": r.Shops[MaxShops/2]}},
		{headers: map[string]string{"X-M3": r.Headers[3].Value}},
	} {
		if p := f.mustPool(c, rq); p != "canary" {
			t.Errorf("large whitelist: request went to %s, want canary", p)
		}
	}
	if p := f.mustPool(c, req{query: "shop=shop-1-x.myshopify.com"}); p != "stable" {
		t.Errorf("non-listed shop went to %s", p)
	}
	// Over the limits: refused before nginx sees anything.
	r.Shops = append(r.Shops, "one-more.example.com")
	if _, err := Render(f.spec(Stage{Kind: Whitelist, Rules: r})); err == nil || !strings.Contains(err.Error(), "whitelist shops: 10001, at most 10000") {
		t.Errorf("over the limit: %v", err)
	}
}
