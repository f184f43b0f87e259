// Package hostroute is the root side of a traffic change on an app server.
//
// The deploy user never writes a file that root parses as configuration: it
// hands a stage (a traffic.Spec as JSON) to `sudo belay host route APP`, and
// this package validates it with the same rules the deployer used, renders the
// nginx files into the root-owned /etc/belay/nginx/<app>/, runs `nginx -t`,
// reloads, and restores the last good files when anything fails. It then
// confirms nginx really took the new configuration (every worker of the old
// generation was told to shut down) and, when asked, waits until those old
// workers finished their requests in flight: the drain that must come before
// the side that lost its traffic is stopped or restarted.
//
// The route watcher (watch.go) uses the same Apply to mark unreachable members
// `down`, so a dead peer costs no request its connect timeout.
package hostroute

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/belay-sh/belay/deploy/traffic"
	"github.com/belay-sh/belay/internal/nginxctl"
)

// Request is what the deployer sends on stdin.
type Request struct {
	Spec traffic.Spec `json:"spec"`
	// DrainMillis > 0 waits after the reload, at most this long, until no old
	// nginx worker has requests in flight.
	DrainMillis int64 `json:"drainMillis,omitempty"`
	// Maintenance, when set, switches the app's maintenance mode on or off
	// and re-renders the stage in force (Spec must be empty): `belay
	// maintenance`. Without it the app's maintenance setting is carried over
	// from the stage in force, so a deploy never switches it off.
	Maintenance *MaintenanceChange `json:"maintenance,omitempty"`
	// Current (the watcher's, never on the wire: Decode refuses it) re-renders
	// the stage in force, with the current down list, instead of Spec.
	Current bool `json:"-"`
}

// Result says what Apply did.
type Result struct {
	App   string `json:"app"`
	Stage string `json:"stage"`
	// Unchanged: the rendered files were already in place; nothing reloaded.
	Unchanged bool `json:"unchanged,omitempty"`
	// ReloadMillis is how long nginx took to retire the old workers' listeners.
	ReloadMillis int64 `json:"reloadMillis"`
	// Drained is true when the old worker generations finished in time.
	Drained     bool  `json:"drained"`
	DrainMillis int64 `json:"drainMillis"`
	// Left counts old workers still serving when the drain timed out.
	Left int `json:"left,omitempty"`
	// Down lists the members rendered down.
	Down []string `json:"down,omitempty"`
	// Maintenance is true while the app answers 503 (maintenance mode).
	Maintenance bool `json:"maintenance,omitempty"`
}

// Options are the host facts Apply needs; zero fields take the production defaults.
type Options struct {
	// Dir holds one directory per app (default /etc/belay/nginx).
	Dir string
	// RunDir holds the watcher's down lists and the lock files (default /run/belay/route).
	RunDir string
	// NginxTest and NginxReload are the commands (default nginx -t, systemctl reload nginx.service).
	NginxTest   []string
	NginxReload []string
	// PIDFile is nginx's master PID file (default /run/nginx.pid).
	PIDFile string
	// Procs lists processes (default: /proc).
	Procs func() ([]nginxctl.Proc, error)
	// ReloadTimeout bounds waiting for nginx to take the new config (default 10 s).
	ReloadTimeout time.Duration
	// Poll is the pause between checks (default 20 ms).
	Poll time.Duration
}

func (o Options) withDefaults() Options {
	if o.Dir == "" {
		o.Dir = "/etc/belay/nginx"
	}
	if o.RunDir == "" {
		o.RunDir = "/run/belay/route"
	}
	if o.NginxTest == nil {
		o.NginxTest = []string{"/usr/sbin/nginx", "-t", "-q"}
	}
	if o.NginxReload == nil {
		o.NginxReload = []string{"systemctl", "reload", "nginx.service"}
	}
	if o.PIDFile == "" {
		o.PIDFile = "/run/nginx.pid"
	}
	if o.Procs == nil {
		o.Procs = nginxctl.ProcFS
	}
	if o.ReloadTimeout == 0 {
		o.ReloadTimeout = 10 * time.Second
	}
	if o.Poll == 0 {
		o.Poll = 20 * time.Millisecond
	}
	return o
}

// File names inside an app's directory.
const (
	httpFile    = "http.conf"
	routingFile = "routing.conf"
	// StageFile is the last accepted spec (JSON): the watcher re-renders it.
	StageFile = "stage.json"
)

// MaxRequest bounds the request read from stdin (a full whitelist fits easily).
const MaxRequest = 8 << 20

// Decode reads a request and refuses unknown fields.
func Decode(data []byte) (Request, error) {
	var r Request
	if len(data) > MaxRequest {
		return r, fmt.Errorf("route request: %d bytes, at most %d", len(data), MaxRequest)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return r, fmt.Errorf("route request: not the JSON belay deploy sends: %w", err)
	}
	return r, nil
}

// Check validates a request from the deploy user for app against what root
// already knows about the app (its last accepted spec): the same traffic
// rules the deployer applied, the app's own port, members on private or
// loopback addresses only, canary hosts among the members, no down list.
func Check(app string, req Request, prev *traffic.Spec) error {
	s := req.Spec
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if s.App != app {
		bad("spec.app: %q, expected %q (the app this command was started for)", s.App, app)
	}
	if prev != nil && s.Port != prev.Port {
		bad("spec.port: %d, expected %d (the app's port on this host)", s.Port, prev.Port)
	}
	if len(s.Down) > 0 {
		bad("spec.down: set by the deployer, expected empty (only this host's watcher marks members down)")
	}
	if s.Maintenance != nil && req.Maintenance == nil {
		bad("spec.maintenance: set in a stage, expected empty (only `belay maintenance` switches it, through the maintenance field)")
	}
	if req.DrainMillis < 0 || req.DrainMillis > int64(time.Hour/time.Millisecond) {
		bad("drainMillis: %d, expected 0-3600000", req.DrainMillis)
	}
	if len(s.StableAddrs) > 64 || len(s.CanaryAddrs) > 64 {
		bad("spec: %d stable and %d canary addresses, at most 64 each", len(s.StableAddrs), len(s.CanaryAddrs))
	}
	members := map[netip.Addr]bool{}
	for i, a := range s.StableAddrs {
		ip, err := netip.ParseAddr(a)
		if err != nil {
			continue // Validate names it
		}
		if !internal(ip) {
			bad("spec.stableAddrs[%d]: %s, expected a private or loopback address (app servers talk over the private network)", i, a)
		}
		members[ip.Unmap()] = true
	}
	for i, a := range s.CanaryAddrs {
		ip, err := netip.ParseAddr(a)
		if err == nil && !members[ip.Unmap()] {
			bad("spec.canaryAddrs[%d]: %s is not among spec.stableAddrs", i, a)
		}
	}
	if err := s.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

var cgnat = netip.MustParsePrefix("100.64.0.0/10")

func internal(a netip.Addr) bool {
	a = a.Unmap()
	return a.IsPrivate() || a.IsLoopback() || cgnat.Contains(a)
}

// Apply installs req for app: validate, render, write, nginx -t, reload,
// confirm, and drain. Any failure before the reload restores the previous files.
func Apply(ctx context.Context, app string, req Request, o Options) (Result, error) {
	o = o.withDefaults()
	res := Result{App: app, Stage: req.Spec.Stage.String()}
	dir := filepath.Join(o.Dir, app)
	if st, err := os.Lstat(dir); err != nil || !st.IsDir() {
		return res, fmt.Errorf("route %s: %s is not a directory (is this an app server of %s?)", app, dir, app)
	}
	unlock, err := lock(ctx, o.RunDir, app)
	if err != nil {
		return res, err
	}
	defer unlock()

	prev, err := LoadStage(dir)
	if err != nil {
		return res, err
	}
	keep := false // carry prev's maintenance setting over
	switch {
	case req.Current:
		// The watcher re-renders what is in force now, read under the lock:
		// a spec it read before could be a stage the deployer just replaced.
		if prev == nil {
			res.Unchanged = true
			return res, nil
		}
		req = Request{Spec: *prev}
		res.Stage = prev.Stage.String()
		req.Spec.Maintenance, keep = nil, true
	case req.Maintenance != nil:
		if req, err = maintenanceRequest(app, req, prev); err != nil {
			return res, err
		}
		res.Stage = req.Spec.Stage.String()
	default:
		keep = true
	}
	if err := Check(app, req, prev); err != nil {
		return res, fmt.Errorf("route %s: refused: %w", app, err)
	}
	if keep && prev != nil {
		// A deploy's stage (or the watcher's re-render) keeps the
		// maintenance mode in force; Validate checks it again in Render.
		req.Spec.Maintenance = prev.Maintenance
	}
	res.Maintenance = req.Spec.Maintenance != nil
	spec := req.Spec
	spec.Down = downFor(readDown(o.RunDir, app), spec)
	res.Down = spec.Down
	files, err := traffic.Render(spec)
	if err != nil {
		return res, fmt.Errorf("route %s: %w", app, err)
	}
	stored := req.Spec
	stageJSON, err := json.MarshalIndent(stored, "", "  ")
	if err != nil {
		return res, err
	}
	want := map[string][]byte{httpFile: files.HTTP, routingFile: files.Routing}
	if same(dir, want) {
		res.Unchanged = true
		if err := nginxctl.WriteFile(filepath.Join(dir, StageFile), append(stageJSON, '\n')); err != nil {
			return res, err
		}
		return drain(ctx, o, req, res)
	}
	old := map[string][]byte{}
	for name := range want {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return res, err
		}
		old[name] = b
	}
	restore := func() {
		for name, b := range old {
			_ = nginxctl.WriteFile(filepath.Join(dir, name), b)
		}
	}
	for name, b := range want {
		if err := nginxctl.WriteFile(filepath.Join(dir, name), b); err != nil {
			restore()
			return res, fmt.Errorf("route %s: %w", app, err)
		}
	}
	if out, err := nginxctl.Run(ctx, o.NginxTest); err != nil {
		restore()
		return res, fmt.Errorf("route %s: nginx -t rejected the new routing (old files restored): %w: %s", app, err, out)
	}
	before, _ := nginxctl.Generation(o.PIDFile, o.Procs)
	start := time.Now()
	if out, err := nginxctl.Run(ctx, o.NginxReload); err != nil {
		restore()
		_, _ = nginxctl.Run(ctx, o.NginxReload)
		return res, fmt.Errorf("route %s: reload failed (old files restored): %w: %s", app, err, out)
	}
	if err := waitRetired(ctx, o, before); err != nil {
		return res, fmt.Errorf("route %s: %w", app, err)
	}
	res.ReloadMillis = time.Since(start).Milliseconds()
	if err := nginxctl.WriteFile(filepath.Join(dir, StageFile), append(stageJSON, '\n')); err != nil {
		return res, err
	}
	return drain(ctx, o, req, res)
}

func drain(ctx context.Context, o Options, req Request, res Result) (Result, error) {
	if req.DrainMillis <= 0 {
		res.Drained = true
		return res, nil
	}
	start := time.Now()
	left, err := WaitDrained(ctx, o, time.Duration(req.DrainMillis)*time.Millisecond)
	res.DrainMillis = time.Since(start).Milliseconds()
	res.Left = left
	res.Drained = left == 0
	return res, err
}

// LoadStage reads the last accepted spec of an app (nil if there is none yet).
func LoadStage(dir string) (*traffic.Spec, error) {
	b, err := os.ReadFile(filepath.Join(dir, StageFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var s traffic.Spec
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, StageFile), err)
	}
	return &s, nil
}

func same(dir string, want map[string][]byte) bool {
	for name, b := range want {
		cur, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || !bytes.Equal(cur, b) {
			return false
		}
	}
	return true
}

// lock serializes every change of one app's routing on this host (the
// deployer's route and the watcher's re-render).
func lock(ctx context.Context, runDir, app string) (func(), error) {
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(runDir, app+".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { _ = f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			_ = f.Close()
			return nil, err
		}
		select {
		case <-ctx.Done():
			_ = f.Close()
			return nil, fmt.Errorf("route %s: waiting for the routing lock: %w", app, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}
