package sync_test

// Hostile local users on a router host and nginx's control socket: real
// nginx (root master, workers as www-data, as on a router), real processes
// as www-data and nobody trying to push routes (docs/cells.md, "Who can do
// what on a router").

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/belay-sh/belay/router"
	rt "github.com/belay-sh/belay/router/routertest"
	rsync "github.com/belay-sh/belay/router/sync"
)

// hostileNginx is a router's nginx as on a host: master root, workers
// www-data, the control socket in a root 0700 directory (nginx.service's
// RuntimeDirectory).
type nginxProc struct {
	sock, sockDir string
	pid           int
}

func hostileNginx(t *testing.T, cellsConf string) nginxProc {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: nginx's master as root, test processes as www-data and nobody")
	}
	for _, p := range []string{"/usr/sbin/nginx", "/usr/lib/nginx/modules/ngx_http_lua_module.so", "/usr/bin/curl"} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("no %s: %v", p, err)
		}
	}
	if _, err := user.Lookup("www-data"); err != nil {
		t.Skipf("no www-data user: %v", err)
	}
	cells, err := router.ParseCells(app, []byte(cellsConf))
	if err != nil {
		t.Fatal(err)
	}
	// Workers (www-data) create temp files under root: it must be
	// traversable, unlike a test's TempDir (0700).
	root, err := os.MkdirTemp("", "belay-hostile")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(root) })
	sockDir, err := os.MkdirTemp("", "rtsock") // 0700 root, like /run/belay-router
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(sockDir) })
	for _, d := range []string{root, filepath.Join(root, "tmp")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	paths := router.Paths{Routes: filepath.Join(root, router.RoutesFile), Socket: filepath.Join(sockDir, app+".sock")}
	if err := os.WriteFile(filepath.Join(root, router.MapFile), router.Render(cells, paths), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	listen := l.Addr().String()
	l.Close()
	conf := fmt.Sprintf(`%[1]s
user www-data;
worker_processes 1;
error_log %[2]s/error.log warn;
pid %[2]s/nginx.pid;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path %[2]s/tmp/body;
    proxy_temp_path %[2]s/tmp/proxy;
    fastcgi_temp_path %[2]s/tmp/fastcgi;
    uwsgi_temp_path %[2]s/tmp/uwsgi;
    scgi_temp_path %[2]s/tmp/scgi;
    include %[2]s/map.conf;
%[3]s}
`, rt.LoadModules, root, router.ServerConf(cells, listen))
	if err := os.WriteFile(filepath.Join(root, "nginx.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/usr/sbin/nginx", "-p", root, "-c", filepath.Join(root, "nginx.conf"), "-g", "daemon off;")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	// Accepting, not just present: the file exists from nginx's bind(),
	// before its listen() (a push in between was refused on a loaded box).
	if _, ok := rt.WaitFor(10*time.Second, func() bool {
		c, err := net.Dial("unix", paths.Socket)
		if err == nil {
			c.Close()
		}
		return err == nil
	}); !ok {
		t.Fatalf("nginx's control socket %s does not accept connections", paths.Socket)
	}
	return nginxProc{sock: paths.Socket, sockDir: sockDir, pid: cmd.Process.Pid}
}

// asUser runs argv as user name (a real unprivileged process) and returns
// its exit status and output.
func asUser(t *testing.T, name string, argv ...string) (int, string) {
	t.Helper()
	u, err := user.Lookup(name)
	if err != nil {
		t.Skipf("no user %s: %v", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	c := exec.Command(argv[0], argv[1:]...)
	c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}}
	c.Dir = "/"
	c.Env = []string{"PATH=/usr/bin:/bin"}
	out, err := c.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, string(out)
}

func curl(sock string, args ...string) []string {
	return append([]string{"/usr/bin/curl", "-sS", "--max-time", "5", "-w", "\nHTTP %{http_code}", "--unix-socket", sock}, args...)
}

// TestControlSocketHostileUsers: processes as www-data (nginx's workers'
// user) and nobody cannot push routes. The socket's directory (root 0700,
// nginx.service's RuntimeDirectory) refuses them; and if it were opened by
// mistake (nginx itself makes the socket 0666), the control server still
// refuses every request without the root-only control key: without the key
// check, the PUT below loaded the hostile routes.
func TestControlSocketHostileUsers(t *testing.T) {
	n := hostileNginx(t, "cell c1 127.0.0.1:1\ncell c2 127.0.0.1:2\n")
	sock, key := n.sock, router.ControlKey(n.sock)
	for p, want := range map[string]os.FileMode{n.sockDir: os.ModeDir | 0o700, key: 0o600} {
		st, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode() != want || st.Sys().(*syscall.Stat_t).Uid != 0 {
			t.Errorf("%s: mode %v uid %d, want %v root", p, st.Mode(), st.Sys().(*syscall.Stat_t).Uid, want)
		}
	}
	ctx := context.Background()
	ctl := rsync.NewControl(sock)
	m := router.Mapping{App: app, Version: 7, Shops: []router.Shop{{Domain: "a.test", App: app, Cell: "c1", State: router.Active}}}
	body, _ := router.RenderRoutes(m)
	if err := ctl.Load(ctx, body); err != nil {
		t.Fatalf("root's push with the key: %v", err)
	}
	want, err := ctl.Loaded(ctx)
	if err != nil || want == "none" {
		t.Fatalf("loaded after root's push: %q %v", want, err)
	}
	hostile := "belay-routes 1\nid 99 abc\na.test c2\nevil.test c2\nend 2\n"
	guess := strings.Repeat("0", 64)
	attempts := [][]string{
		{"-X", "PUT", "--data-binary", hostile, "http://nginx/routes"},
		{"-X", "PUT", "-H", router.HeaderControlKey + ": " + guess, "--data-binary", hostile, "http://nginx/routes"},
		{"-X", "PUT", "-H", router.HeaderControlKey + ":", "--data-binary", hostile, "http://nginx/routes"},
		{"-X", "POST", "--data-binary", "a.test\n", "http://nginx/inflight"},
		{"http://nginx/routes"},
		// The shops' certificates (chain and key) are as guarded as the routes.
		{"http://nginx/certs"},
		{"-X", "PUT", "--data-binary", "not a certificate", "http://nginx/certs?domain=evil.test"},
		{"-X", "DELETE", "http://nginx/certs?domain=a.test"},
	}
	for _, dirMode := range []os.FileMode{0o700, 0o755} {
		// 0755 is the mistake the key guards against: the socket is reachable.
		if err := os.Chmod(n.sockDir, dirMode); err != nil {
			t.Fatal(err)
		}
		for _, u := range []string{"www-data", "nobody"} {
			if rc, out := asUser(t, u, "/bin/cat", key); rc == 0 {
				t.Errorf("%s read the control key (directory %o): %q", u, dirMode, out)
			}
			for _, a := range attempts {
				rc, out := asUser(t, u, curl(sock, a...)...)
				refused := rc != 0 || strings.HasSuffix(out, "HTTP 403")
				if !refused {
					t.Errorf("%s, directory %o: curl %q: rc %d %q, want no connection or 403", u, dirMode, a, rc, out)
				}
				if dirMode == 0o755 && !strings.HasSuffix(out, "HTTP 403") {
					t.Errorf("%s through an open directory: curl %q: %q, want 403 from the control server", u, a, out)
				}
			}
		}
		if got, err := ctl.Loaded(ctx); err != nil || got != want {
			t.Errorf("directory %o: nginx routes by %q (%v) after the hostile pushes, want root's %q", dirMode, got, err, want)
		}
	}

	// The client refuses a key file others may read, or a link, rather than use it.
	if err := os.Chmod(key, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ctl.Loaded(ctx); err == nil || !strings.Contains(err.Error(), "0600") {
		t.Errorf("key mode 0644: %v, want a refusal naming 0600", err)
	}
	_ = os.Chmod(key, 0o600)
	link := filepath.Join(n.sockDir, "link.sock")
	if err := os.Symlink(key, router.ControlKey(link)); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(sock, link); err != nil {
		t.Fatal(err)
	}
	if _, err := rsync.NewControl(link).Loaded(ctx); err == nil || !strings.Contains(err.Error(), "regular file") {
		t.Errorf("key through a symlink: %v, want a refusal", err)
	}

	// A reload keeps the key (init_by_lua runs again in the master).
	before, _ := os.ReadFile(key)
	if err := syscall.Kill(n.pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	after, _ := os.ReadFile(key)
	if string(before) != string(after) || len(strings.TrimSpace(string(after))) != 64 {
		t.Errorf("control key %q before the reload, %q after: want the same 64 hex digits", before, after)
	}
	if got, err := ctl.Loaded(ctx); err != nil || got != want {
		t.Errorf("after a reload: %q %v, want %q", got, err, want)
	}
}

// TestControlKeyReplacedHeals: the key file replaced under a running nginx
// (deleted, and made anew by an nginx -t) makes nginx refuse router-sync's
// requests; router-sync reloads nginx, which reads the file, and routing
// changes reach nginx again without a manual step.
func TestControlKeyReplacedHeals(t *testing.T) {
	lab := rt.StartDB(t)
	c1 := rt.StartCell(t, "c1")
	r := rt.StartRouter(t, "router-1", app, rt.CellsConf([]*rt.Cell{c1}, ""))
	rt.RunSync(t, r, app, lab.DSN)
	ctx := context.Background()
	routed := func(shop string) bool {
		_, ok := rt.WaitFor(testWait, func() bool { a, err := r.Get(shop, "/"); return err == nil && a.Cell == "c1" })
		return ok
	}
	if _, err := lab.Store.Assign(ctx, app, "a.test", "c1", "test"); err != nil {
		t.Fatal(err)
	}
	if !routed("a.test") {
		t.Fatal("a.test not routed")
	}
	key := router.ControlKey(r.Paths.Socket)
	if err := os.WriteFile(key, []byte(strings.Repeat("ab", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := rsync.NewControl(r.Paths.Socket).Loaded(ctx); err == nil {
		t.Fatal("nginx accepted a key it never read")
	}
	start := time.Now()
	if _, err := lab.Store.Assign(ctx, app, "b.test", "c1", "test"); err != nil {
		t.Fatal(err)
	}
	if !routed("b.test") {
		t.Fatal("b.test not routed after the key file changed: router-sync did not heal")
	}
	t.Logf("routed again %s after the key file changed", time.Since(start).Round(time.Millisecond))
	if _, err := rsync.NewControl(r.Paths.Socket).Loaded(ctx); err != nil {
		t.Errorf("after the heal: %v", err)
	}
}

// TestWorkersHideTheirMemory: a www-data process that is not an nginx
// worker cannot read a worker's memory (which holds the routes and the
// control key): nginx makes its workers dumpable after setuid, map.conf's
// init_worker_by_lua makes them undumpable again.
func TestWorkersHideTheirMemory(t *testing.T) {
	n := hostileNginx(t, "cell c1 127.0.0.1:1\n")
	// One worker: once it answered, its init_worker has run.
	if _, err := rsync.NewControl(n.sock).Loaded(context.Background()); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("pgrep", "-P", strconv.Itoa(n.pid)).Output()
	workers := strings.Fields(string(out))
	if err != nil || len(workers) == 0 {
		t.Fatalf("nginx %d has no workers: %v", n.pid, err)
	}
	for _, w := range workers {
		for _, f := range []string{"environ", "mem", "maps"} {
			if rc, o := asUser(t, "www-data", "/usr/bin/head", "-c", "16", "/proc/"+w+"/"+f); rc == 0 {
				t.Errorf("a www-data process read /proc/%s/%s of an nginx worker: %q", w, f, o)
			}
		}
	}
}
