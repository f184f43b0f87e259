package hostroute

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/belay-sh/belay/deploy/traffic"
	"github.com/belay-sh/belay/internal/nginxctl"
)

// realNginx runs a real nginx in a temp prefix whose http block includes the
// app's files exactly as the roles' base config does, listening on a free
// loopback port. It returns the Options that drive it and the front URL.
type realNginx struct {
	opts  Options
	front string
	dir   string
}

func startNginx(t *testing.T, app string) *realNginx {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: nginx workers and the drain are real processes")
	}
	bin, err := exec.LookPath("nginx")
	if err != nil {
		t.Skip("nginx not installed (scripts/deps.sh installs it)")
	}
	dir := t.TempDir()
	appDir := filepath.Join(dir, "apps", app)
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(appDir, 0o755); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	conf := filepath.Join(dir, "nginx.conf")
	// The same wiring as roles' nginxAppConf: http-level include, routing
	// include in the server, variable proxy_pass.
	body := fmt.Sprintf(`worker_processes 2;
pid %[1]s/nginx.pid;
error_log %[1]s/logs/error.log;
events { worker_connections 256; }
http {
    access_log off;
    include %[2]s/http.conf;
    server {
        listen 127.0.0.1:%[3]d;
        set $belay_pool stable;
        include %[2]s/routing.conf;
        location / {
            proxy_pass http://belay_%[4]s_$belay_pool;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_connect_timeout 300ms;
            proxy_next_upstream error timeout;
        }
    }
}
`, dir, appDir, port, app)
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	n := &realNginx{dir: dir, front: fmt.Sprintf("http://127.0.0.1:%d", port)}
	n.opts = Options{
		Dir:         filepath.Join(dir, "apps"),
		RunDir:      filepath.Join(dir, "run"),
		NginxTest:   []string{bin, "-t", "-q", "-p", dir, "-c", conf},
		NginxReload: []string{bin, "-s", "reload", "-p", dir, "-c", conf},
		PIDFile:     filepath.Join(dir, "nginx.pid"),
	}
	return n
}

// boot installs the first stage (as roles would) and starts nginx.
func (n *realNginx) boot(t *testing.T, spec traffic.Spec) {
	t.Helper()
	files, err := traffic.Render(spec)
	if err != nil {
		t.Fatal(err)
	}
	appDir := filepath.Join(n.opts.Dir, spec.App)
	mustWrite(t, filepath.Join(appDir, httpFile), files.HTTP)
	mustWrite(t, filepath.Join(appDir, routingFile), files.Routing)
	js, _ := json.Marshal(spec)
	mustWrite(t, filepath.Join(appDir, StageFile), js)
	bin := n.opts.NginxTest[0]
	args := append([]string(nil), n.opts.NginxTest[3:]...)
	if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
		t.Fatalf("starting nginx: %v: %s", err, out)
	}
	t.Cleanup(func() {
		_ = exec.Command(bin, append([]string{"-s", "stop"}, args...)...).Run()
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) && masterPID(n.opts) != 0 {
			if _, err := os.Stat(n.opts.PIDFile); err != nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	waitFor(t, func() bool {
		o := n.opts.withDefaults()
		w, _ := nginxctl.Generation(o.PIDFile, o.Procs)
		return len(w) > 0
	})
}

func mustWrite(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// backend serves "<name>" on addr, holding requests to /slow for hold.
type backend struct {
	srv  *http.Server
	name string
}

func startBackend(t *testing.T, addr, name string, hold time.Duration) *backend {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{name: name}
	b.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(hold)
		}
		io.WriteString(w, name)
	})}
	go b.srv.Serve(l)
	t.Cleanup(func() { b.srv.Close() })
	return b
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func spec(app string, port int, stage traffic.Kind, stable, canary []string) traffic.Spec {
	return traffic.Spec{App: app, Port: port, StableAddrs: stable, CanaryAddrs: canary, Stage: traffic.Stage{Kind: stage}}
}

func TestApplySwitchesPoolsThroughRealNginx(t *testing.T) {
	n := startNginx(t, "shop")
	port := freePort(t)
	startBackend(t, fmt.Sprintf("127.0.0.1:%d", port), "stable", 0)
	startBackend(t, fmt.Sprintf("127.0.0.1:%d", port+1), "canary", 0)
	n.boot(t, spec("shop", port, traffic.Stable, []string{"127.0.0.1"}, nil))
	if _, body := get(t, n.front+"/"); body != "stable" {
		t.Fatalf("before: %q, want stable", body)
	}
	res, err := Apply(context.Background(), "shop", Request{Spec: spec("shop", port, traffic.Full, []string{"127.0.0.1"}, []string{"127.0.0.1"})}, n.opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.Unchanged || res.Stage != "full" {
		t.Fatalf("result %+v", res)
	}
	if _, body := get(t, n.front+"/"); body != "canary" {
		t.Fatalf("after full: %q, want canary (nginx took the new config before Apply returned)", body)
	}
	st, err := os.Stat(filepath.Join(n.opts.Dir, "shop", httpFile))
	if err != nil || st.Mode().Perm() != 0o644 {
		t.Fatalf("http.conf: %v %v, want 0644", st, err)
	}
	again, err := Apply(context.Background(), "shop", Request{Spec: spec("shop", port, traffic.Full, []string{"127.0.0.1"}, []string{"127.0.0.1"})}, n.opts)
	if err != nil || !again.Unchanged {
		t.Fatalf("same stage again: %+v %v, want unchanged", again, err)
	}
}

func TestApplyRefusesAndChangesNothing(t *testing.T) {
	n := startNginx(t, "shop")
	port := freePort(t)
	base := spec("shop", port, traffic.Stable, []string{"127.0.0.1", "10.0.0.6"}, nil)
	n.boot(t, base)
	httpBefore, _ := os.ReadFile(filepath.Join(n.opts.Dir, "shop", httpFile))
	withCanary := func(s traffic.Spec) traffic.Spec {
		s.Stage.Kind = traffic.Full
		s.CanaryAddrs = []string{"127.0.0.1"}
		return s
	}
	cases := []struct {
		name string
		app  string
		req  Request
		want string
	}{
		{"other app", "shop", Request{Spec: spec("blog", port, traffic.Stable, []string{"127.0.0.1"}, nil)}, "spec.app"},
		{"other port", "shop", Request{Spec: spec("shop", 22, traffic.Stable, []string{"127.0.0.1"}, nil)}, "spec.port: 22"},
		{"public member", "shop", Request{Spec: spec("shop", port, traffic.Stable, []string{"127.0.0.1", "203.0.113.9"}, nil)}, "spec.stableAddrs[1]"},
		{"canary not a member", "shop", Request{Spec: func() traffic.Spec {
			s := withCanary(base)
			s.CanaryAddrs = []string{"10.0.0.7"}
			return s
		}()}, "spec.canaryAddrs[0]"},
		{"down from the deployer", "shop", Request{Spec: func() traffic.Spec {
			s := base
			s.Down = []string{"10.0.0.6:" + fmt.Sprint(port)}
			return s
		}()}, "spec.down"},
		{"negative drain", "shop", Request{Spec: base, DrainMillis: -1}, "drainMillis"},
		{"bad whitelist value", "shop", Request{Spec: func() traffic.Spec {
			s := withCanary(base)
			s.Stage = traffic.Stage{Kind: traffic.Whitelist, Rules: traffic.Rules{Headers: []traffic.Match{{Name: "X-A", Value: "x;access_log /etc/cron.d/x"}}}}
			return s
		}()}, "whitelist headers[0]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Apply(context.Background(), c.app, c.req, n.opts)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to name %q", err, c.want)
			}
			after, _ := os.ReadFile(filepath.Join(n.opts.Dir, "shop", httpFile))
			if string(after) != string(httpBefore) {
				t.Fatal("http.conf changed by a refused request")
			}
		})
	}
}

func TestApplyRestoresOnFailedCheck(t *testing.T) {
	n := startNginx(t, "shop")
	port := freePort(t)
	n.boot(t, spec("shop", port, traffic.Stable, []string{"127.0.0.1"}, nil))
	before, _ := os.ReadFile(filepath.Join(n.opts.Dir, "shop", httpFile))
	o := n.opts
	o.NginxTest = []string{"sh", "-c", "echo 'nginx: [emerg] something' >&2; exit 1"}
	_, err := Apply(context.Background(), "shop", Request{Spec: spec("shop", port, traffic.Full, []string{"127.0.0.1"}, []string{"127.0.0.1"})}, o)
	if err == nil || !strings.Contains(err.Error(), "old files restored") || !strings.Contains(err.Error(), "[emerg] something") {
		t.Fatalf("err = %v, want nginx's message and the restore", err)
	}
	after, _ := os.ReadFile(filepath.Join(n.opts.Dir, "shop", httpFile))
	if string(after) != string(before) {
		t.Fatal("http.conf not restored")
	}
}

// A request in flight on the side that lost its traffic finishes before Apply
// returns with a drain; without enough drain time Apply says how many are left.
func TestApplyDrainsRequestsInFlight(t *testing.T) {
	n := startNginx(t, "shop")
	port := freePort(t)
	startBackend(t, fmt.Sprintf("127.0.0.1:%d", port), "stable", 1500*time.Millisecond)
	startBackend(t, fmt.Sprintf("127.0.0.1:%d", port+1), "canary", 0)
	stable := spec("shop", port, traffic.Stable, []string{"127.0.0.1"}, nil)
	full := spec("shop", port, traffic.Full, []string{"127.0.0.1"}, []string{"127.0.0.1"})
	n.boot(t, stable)

	for _, tc := range []struct {
		name    string
		drain   time.Duration
		drained bool
	}{{"enough time", 5 * time.Second, true}, {"too short", 200 * time.Millisecond, false}} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Apply(context.Background(), "shop", Request{Spec: stable}, n.opts); err != nil {
				t.Fatal(err)
			}
			if left, _ := WaitDrained(context.Background(), n.opts, 5*time.Second); left != 0 {
				t.Fatalf("%d old workers left from the setup", left)
			}
			var wg sync.WaitGroup
			var code int
			var body string
			done := make(chan struct{})
			wg.Add(1)
			go func() { defer wg.Done(); code, body = get(t, n.front+"/slow"); close(done) }()
			time.Sleep(300 * time.Millisecond) // the slow request is in flight on stable
			res, err := Apply(context.Background(), "shop", Request{Spec: full, DrainMillis: tc.drain.Milliseconds()}, n.opts)
			if err != nil {
				t.Fatal(err)
			}
			if res.Drained != tc.drained {
				t.Fatalf("drained = %v (left %d after %d ms), want %v", res.Drained, res.Left, res.DrainMillis, tc.drained)
			}
			if tc.drained {
				select {
				case <-done:
				case <-time.After(100 * time.Millisecond):
					t.Fatalf("Apply returned (drain %d ms) before the request in flight finished", res.DrainMillis)
				}
			}
			wg.Wait()
			if code != 200 || body != "stable" {
				t.Fatalf("request in flight: %d %q, want 200 stable (it was sent before the switch)", code, body)
			}
		})
	}
}

// masterPID is the PID in nginx's PID file (0 when there is none).
func masterPID(o Options) int {
	b, err := os.ReadFile(o.PIDFile)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}
