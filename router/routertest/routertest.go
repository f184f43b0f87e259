// Package routertest runs the router's real pieces on loopback for tests: an
// nginx with the router's server block and map.conf, cells served by the lab
// app (each answering with its cell name as release), a PostgreSQL with the
// mapping, and router-sync daemons. It imports "testing" and is used from
// _test.go files only.
package routertest

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/belay-sh/belay/internal/labapp"
	"github.com/belay-sh/belay/internal/nginxctl"
	"github.com/belay-sh/belay/internal/pgtest"
	"github.com/belay-sh/belay/router"
	"github.com/belay-sh/belay/router/store"
	rsync "github.com/belay-sh/belay/router/sync"
)

const nginxBin = "/usr/sbin/nginx"

// LoadModules loads Debian's Lua module (libnginx-mod-http-lua, with the
// NDK it needs) in a test's nginx.conf; a router host loads them from
// /etc/nginx/modules-enabled, which a -p prefix would misplace.
const LoadModules = "load_module /usr/lib/nginx/modules/ndk_http_module.so;\nload_module /usr/lib/nginx/modules/ngx_http_lua_module.so;\n"

const luaModule = "/usr/lib/nginx/modules/ngx_http_lua_module.so"

// Cell is one cell: a lab app on loopback with its own data directory.
type Cell struct {
	Name    string
	Addr    netip.AddrPort
	DataDir string
	srv     *http.Server
	ln      net.Listener
}

// Stop takes the cell down (connections refused).
func (c *Cell) Stop() { _ = c.srv.Close() }

// StartCell starts a lab app answering with release = name.
func StartCell(t testing.TB, name string) *Cell {
	t.Helper()
	c := &Cell{Name: name, DataDir: t.TempDir()}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c.ln = ln
	c.Addr = netip.MustParseAddrPort(ln.Addr().String())
	app := labapp.New(labapp.Config{Release: name, Slot: "stable"}, func(string) {}).WithData(c.DataDir)
	c.srv = &http.Server{Handler: app.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = c.srv.Serve(ln) }()
	t.Cleanup(func() { _ = c.srv.Close() })
	return c
}

// Router is one nginx router with its directory (cells.conf, map.conf).
type Router struct {
	t      testing.TB
	Name   string
	Dir    string // the app's router directory (cells.conf, map.conf)
	root   string
	Listen string
	Cells  router.Cells
	// Paths are the routes file, the control socket and the shops'
	// certificates directory (router.Render).
	Paths router.Paths
	// TLSListen is the HTTPS listener (StartTLSRouter only).
	TLSListen string
	cmd       *exec.Cmd
	done      chan struct{}
}

// CellsConf renders a cells.conf for cells (default cell def, "" for none).
func CellsConf(cells []*Cell, def string) string {
	var b strings.Builder
	b.WriteString("# test cells\n")
	for _, c := range cells {
		fmt.Fprintf(&b, "cell %s %s\n", c.Name, c.Addr)
	}
	if def != "" {
		fmt.Fprintf(&b, "default %s\n", def)
	}
	b.WriteString("retry-after 7\n")
	return b.String()
}

// StartRouter starts nginx routing app over cells, with an empty mapping.
func StartRouter(t testing.TB, name, app, cellsConf string) *Router {
	t.Helper()
	return startRouter(t, name, app, cellsConf, "")
}

// StartTLSRouter is StartRouter with the per-shop certificates: port Listen
// is the shops' plain-HTTP server with the redirect of shops that have a
// certificate (router.ShopRedirect), TLSListen serves HTTPS with appCert
// (chain and key, PEM file) for any other name (router.ShopCertLines).
func StartTLSRouter(t testing.TB, name, app, cellsConf, appCert string) *Router {
	t.Helper()
	return startRouter(t, name, app, cellsConf, appCert)
}

func freePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func startRouter(t testing.TB, name, app, cellsConf, appCert string) *Router {
	t.Helper()
	for _, p := range []string{nginxBin, luaModule} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("no %s (%v); apt-get install nginx libnginx-mod-http-lua", p, err)
		}
	}
	cells, err := router.ParseCells(app, []byte(cellsConf))
	if err != nil {
		t.Fatal(err)
	}
	r := &Router{t: t, Name: name, root: t.TempDir(), Cells: cells}
	r.Dir = filepath.Join(r.root, "etc", app)
	for _, d := range []string{"tmp", "etc/" + app} {
		if err := os.MkdirAll(filepath.Join(r.root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(r.Dir, router.CellsFile), cellsConf)
	// A unix socket path has at most 107 bytes: not under a test's long TempDir.
	sockDir, err := os.MkdirTemp("", "rt")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(sockDir) })
	r.Paths = router.Paths{Routes: filepath.Join(r.Dir, router.RoutesFile), Socket: filepath.Join(sockDir, app+".sock"),
		Certs: filepath.Join(r.Dir, "certs")}
	if err := os.MkdirAll(r.Paths.Certs, 0o700); err != nil {
		t.Fatal(err)
	}
	write(filepath.Join(r.Dir, router.MapFile), string(router.Render(cells, r.Paths)))
	r.Listen = freePort(t)
	servers := router.ServerConf(cells, r.Listen)
	if appCert != "" {
		r.TLSListen = freePort(t)
		servers = router.Server(cells, "    listen "+r.Listen+";\n    server_name _;\n", router.ShopRedirect(app)) +
			router.Server(cells, "    listen "+r.TLSListen+" ssl;\n    server_name _;\n    ssl_certificate "+appCert+
				";\n    ssl_certificate_key "+appCert+";\n"+router.ShopCertLines(app), "")
	}
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;" // workers must read the temp dir; never as root outside a test
	}
	write(filepath.Join(r.root, "nginx.conf"), fmt.Sprintf(`%[1]s
%[5]s
worker_processes 2;
error_log %[2]s/error.log warn;
pid %[2]s/nginx.pid;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path %[2]s/tmp/body;
    proxy_temp_path %[2]s/tmp/proxy;
    fastcgi_temp_path %[2]s/tmp/fastcgi;
    uwsgi_temp_path %[2]s/tmp/uwsgi;
    scgi_temp_path %[2]s/tmp/scgi;
    include %[3]s/map.conf;
%[4]s}
`, user, r.root, r.Dir, servers, LoadModules))
	if out, err := exec.Command(nginxBin, r.args("-t", "-q")...).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
	r.Start()
	t.Cleanup(r.Stop)
	return r
}

// Start starts nginx (fresh shared memory: it loads routes.txt) and waits
// until it listens.
func (r *Router) Start() {
	t := r.t
	t.Helper()
	r.cmd = exec.Command(nginxBin, r.args("-g", "daemon off;")...)
	r.cmd.Stderr = os.Stderr
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(r.cmd, r.done)
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.Dial("tcp", r.Listen)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx does not listen on %s: %v", r.Listen, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop stops nginx (graceful quit, killed after 5 s); the shared dicts go with it.
func (r *Router) Stop() {
	if r.done == nil {
		return
	}
	select {
	case <-r.done:
		return
	default:
	}
	_ = r.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-r.done:
	case <-time.After(5 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.done
	}
}

// Reload reloads nginx (nginx -s reload) and waits until its workers are new ones.
func (r *Router) Reload() {
	t := r.t
	t.Helper()
	before := r.Workers()
	if out, err := exec.Command(nginxBin, r.args("-s", "reload")...).CombinedOutput(); err != nil {
		t.Fatalf("nginx -s reload: %v\n%s", err, out)
	}
	if _, ok := WaitFor(10*time.Second, func() bool {
		now := r.Workers()
		for _, p := range now {
			for _, b := range before {
				if p == b {
					return false
				}
			}
		}
		return len(now) > 0
	}); !ok {
		t.Fatalf("nginx workers %v still there after a reload", before)
	}
}

// Workers returns the PIDs of nginx's current worker processes (children of the master).
func (r *Router) Workers() []int {
	cur, _ := nginxctl.Generation(filepath.Join(r.root, "nginx.pid"), nginxctl.ProcFS)
	var out []int
	for p := range cur {
		out = append(out, p)
	}
	sort.Ints(out)
	return out
}

func (r *Router) args(more ...string) []string {
	return append([]string{"-p", r.root, "-c", filepath.Join(r.root, "nginx.conf")}, more...)
}

// SyncOptions are router-sync options for this nginx (test and reload
// commands, a drain wait limited to this nginx's workers).
func (r *Router) SyncOptions(app, dsn string) rsync.Options {
	return rsync.Options{
		App: app, Name: r.Name, Dir: r.Dir,
		Connect: func(ctx context.Context) (*store.Store, error) {
			return store.Open(ctx, dsn)
		},
		NginxTest:   append([]string{nginxBin}, r.args("-t", "-q")...),
		NginxReload: append([]string{nginxBin}, r.args("-s", "reload")...),
		PIDFile:     filepath.Join(r.root, "nginx.pid"),
		Socket:      r.Paths.Socket,
		CertsDir:    r.Paths.Certs,
		Resync:      time.Second,
		MinBackoff:  50 * time.Millisecond,
		MaxBackoff:  500 * time.Millisecond,
	}
}

// Answer is what a request through the router got.
type Answer struct {
	Status     int
	Cell       string // the release header: the cell that answered ("" for none)
	Router     string // X-Belay-Router: the router's own answer
	RetryAfter string
	Body       string
}

// Get asks the router for shop (by Host) and path.
func (r *Router) Get(host, path string) (Answer, error) {
	req, err := http.NewRequest(http.MethodGet, "http://"+r.Listen+path, nil)
	if err != nil {
		return Answer{}, err
	}
	req.Host = host
	return do(req)
}

// Do sends req to the router.
func (r *Router) Do(req *http.Request) (Answer, error) {
	req.URL.Scheme, req.URL.Host = "http", r.Listen
	return do(req)
}

var client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

func do(req *http.Request) (Answer, error) {
	resp, err := client.Do(req)
	if err != nil {
		return Answer{}, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return Answer{Status: resp.StatusCode, Cell: resp.Header.Get(labapp.HeaderRelease), Router: resp.Header.Get(router.HeaderRouter),
		RetryAfter: resp.Header.Get("Retry-After"), Body: string(b)}, nil
}

// Lab is PostgreSQL with the schema plus a store for the test itself.
type Lab struct {
	PG    *pgtest.Server
	DSN   string
	Store *store.Store
}

// StartDB starts PostgreSQL and creates the schema.
func StartDB(t testing.TB) *Lab {
	t.Helper()
	pg := pgtest.Start(t)
	l := &Lab{PG: pg, DSN: pg.DSN("postgres")}
	ctx := context.Background()
	st, err := store.Open(ctx, l.DSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if err := st.EnsureSchema(ctx); err != nil {
		t.Fatal(err)
	}
	l.Store = st
	return l
}

// RunSync runs a router-sync daemon for r until the test ends; log lines go to t.Log.
func RunSync(t testing.TB, r *Router, app, dsn string) {
	t.Helper()
	o := r.SyncOptions(app, dsn)
	o.Log = testWriter{t}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = rsync.Run(ctx, o) }()
	t.Cleanup(func() { cancel(); wg.Wait() })
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// WaitFor polls fn every 2 ms until it returns true or timeout passes.
func WaitFor(timeout time.Duration, fn func() bool) (time.Duration, bool) {
	start := time.Now()
	for {
		if fn() {
			return time.Since(start), true
		}
		if time.Since(start) > timeout {
			return time.Since(start), false
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// Percentile returns the p-th percentile (0-100) of ds (sorted in place).
func Percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	sortDurations(ds)
	i := (len(ds) - 1) * p / 100
	return ds[i]
}

func sortDurations(ds []time.Duration) {
	for i := 1; i < len(ds); i++ {
		for j := i; j > 0 && ds[j] < ds[j-1]; j-- {
			ds[j], ds[j-1] = ds[j-1], ds[j]
		}
	}
}

// Itoa is strconv.Itoa (for shop names in tests).
func Itoa(i int) string { return strconv.Itoa(i) }
