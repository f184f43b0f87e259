package hostroute

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/belay-sh/belay/deploy/traffic"
	"github.com/belay-sh/belay/internal/nginxctl"
)

// Watcher probes every upstream member of every app on this host and marks the
// unreachable ones down in nginx, so that after a peer dies no request pays
// the connect timeout to it (open-source nginx has no active health checks;
// its passive max_fails lets one request per fail_timeout find out again).
//
// A member is marked down after Fall failed probes in a row and up again after
// Rise good ones; only a change of the down set rewrites and reloads nginx.
type Watcher struct {
	Opts Options
	// Interval between probe rounds (default 100 ms).
	Interval time.Duration
	// DialTimeout bounds one TCP connect (default 150 ms: members are on the
	// private network, a live one answers in well under a millisecond).
	DialTimeout time.Duration
	Fall, Rise  int
	// Dial connects once (default net.Dialer); tests inject failures.
	Dial func(ctx context.Context, addr string) error
	Log  io.Writer

	members map[string]*member
}

type member struct {
	down       bool
	fails, oks int
}

func (w *Watcher) defaults() {
	w.Opts = w.Opts.withDefaults()
	if w.Interval == 0 {
		w.Interval = 100 * time.Millisecond
	}
	if w.DialTimeout == 0 {
		w.DialTimeout = 150 * time.Millisecond
	}
	if w.Fall == 0 {
		w.Fall = 2
	}
	if w.Rise == 0 {
		w.Rise = 2
	}
	if w.Dial == nil {
		w.Dial = func(ctx context.Context, addr string) error {
			ctx, cancel := context.WithTimeout(ctx, w.DialTimeout)
			defer cancel()
			c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
			if err != nil {
				return err
			}
			return c.Close()
		}
	}
	if w.Log == nil {
		w.Log = io.Discard
	}
	if w.members == nil {
		w.members = map[string]*member{}
	}
}

// Run probes until ctx ends.
func (w *Watcher) Run(ctx context.Context) error {
	w.defaults()
	t := time.NewTicker(w.Interval)
	defer t.Stop()
	for {
		if err := w.Once(ctx); err != nil && ctx.Err() == nil {
			fmt.Fprintf(w.Log, "route watch: %v\n", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Once runs one probe round over every app and applies what changed.
func (w *Watcher) Once(ctx context.Context) error {
	w.defaults()
	apps, err := w.apps()
	if err != nil {
		return err
	}
	all := map[string]bool{}
	for _, s := range apps {
		for _, m := range Members(*s) {
			all[m] = true
		}
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	results := map[string]bool{}
	for addr := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok := w.Dial(ctx, addr) == nil
			mu.Lock()
			results[addr] = ok
			mu.Unlock()
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return nil
	}
	for addr, ok := range results {
		m := w.members[addr]
		if m == nil {
			m = &member{}
			w.members[addr] = m
		}
		if ok {
			m.oks, m.fails = m.oks+1, 0
			if m.down && m.oks >= w.Rise {
				m.down = false
				fmt.Fprintf(w.Log, "route watch: %s answers again: marked up\n", addr)
			}
		} else {
			m.fails, m.oks = m.fails+1, 0
			if !m.down && m.fails >= w.Fall {
				m.down = true
				fmt.Fprintf(w.Log, "route watch: %s unreachable (%d probes): marked down\n", addr, m.fails)
			}
		}
	}
	for addr := range w.members {
		if !all[addr] {
			delete(w.members, addr) // no longer a member of anything
		}
	}
	var errs []error
	names := make([]string, 0, len(apps))
	for app := range apps {
		names = append(names, app)
	}
	sort.Strings(names)
	for _, app := range names {
		var down []string
		for _, m := range Members(*apps[app]) {
			if st := w.members[m]; st != nil && st.down {
				down = append(down, m)
			}
		}
		sort.Strings(down)
		if slices.Equal(down, readDown(w.Opts.RunDir, app)) {
			continue
		}
		if err := writeDown(w.Opts.RunDir, app, down); err != nil {
			errs = append(errs, err)
			continue
		}
		res, err := Apply(ctx, app, Request{Current: true}, w.Opts)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		switch {
		case res.Unchanged:
			// Every member of a pool is down: rendered as before, nothing reloaded.
			fmt.Fprintf(w.Log, "route watch: %s: unreachable [%s], no pool left without a member: nginx unchanged\n", app, strings.Join(down, " "))
		default:
			fmt.Fprintf(w.Log, "route watch: %s: rendered down [%s], nginx reloaded in %d ms\n", app, strings.Join(res.Down, " "), res.ReloadMillis)
		}
	}
	return errors.Join(errs...)
}

// apps loads the last accepted spec of every app directory.
func (w *Watcher) apps() (map[string]*traffic.Spec, error) {
	ents, err := os.ReadDir(w.Opts.Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := map[string]*traffic.Spec{}
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		s, err := LoadStage(filepath.Join(w.Opts.Dir, e.Name()))
		if err != nil {
			return nil, err
		}
		if s != nil && s.App == e.Name() {
			out[e.Name()] = s
		}
	}
	return out, nil
}

// Members lists the upstream members ("addr:port") of a spec: every stable
// address on Port, every canary address on Port+1.
func Members(s traffic.Spec) []string {
	var out []string
	add := func(addrs []string, port int) {
		for _, a := range addrs {
			ip, err := netip.ParseAddr(a)
			if err != nil || port < 1 || port > 65535 {
				continue
			}
			out = append(out, netip.AddrPortFrom(ip.Unmap(), uint16(port)).String())
		}
	}
	add(s.StableAddrs, s.Port)
	add(s.CanaryAddrs, s.Port+1)
	sort.Strings(out)
	return slices.Compact(out)
}

func downPath(runDir, app string) string { return filepath.Join(runDir, app+".down") }

// readDown returns the members marked down for app (sorted).
func readDown(runDir, app string) []string {
	b, err := os.ReadFile(downPath(runDir, app))
	if err != nil {
		return nil
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	sort.Strings(out)
	return out
}

func writeDown(runDir, app string, down []string) error {
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		return err
	}
	body := strings.Join(down, "\n")
	if body != "" {
		body += "\n"
	}
	return nginxctl.WriteFile(downPath(runDir, app), []byte(body))
}

// downFor keeps the down entries that are members of spec.
func downFor(down []string, spec traffic.Spec) []string {
	m := map[string]bool{}
	for _, x := range Members(spec) {
		m[x] = true
	}
	var out []string
	for _, d := range down {
		if m[d] {
			out = append(out, d)
		}
	}
	return out
}
