package drill

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/belay-sh/belay/httpprobe"
	"github.com/belay-sh/belay/internal/shq"
	"github.com/belay-sh/belay/inventory"
)

// ParseVIPHolder reports whether `ip -o -4 addr show` output lists vip.
func ParseVIPHolder(out, vip string) bool {
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "inet" && (f[i+1] == vip || strings.HasPrefix(f[i+1], vip+"/")) {
				return true
			}
		}
	}
	return false
}

// holders asks every host in hosts (except skip) whether it holds vip.
// Unreachable hosts are reported in errs and count as not holding it.
func holders(ctx context.Context, env *Env, hosts []string, vip string, skip string) (held []string, errs []error) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, h := range hosts {
		if h == skip {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			out, err := env.Hosts.Run(cctx, h, VIPProbeCmd)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			if ParseVIPHolder(string(out), vip) {
				held = append(held, h)
			}
		}()
	}
	wg.Wait()
	return held, errs
}

func appNodeRun(ctx context.Context, env *Env, s *stepper, variant string) Run {
	r := Run{Started: time.Now().UTC()}
	a, err := pickApp(env.Inv, env.App)
	if err != nil {
		return failRun(r, err)
	}
	var holder string
	if err := s.do("locate", "", func() error {
		// A group still settling (a node booting, a deploy restarting the app)
		// gets a minute to show exactly one holder before the run gives up.
		err := poll(ctx, 500*time.Millisecond, time.Minute, func(ctx context.Context) (bool, error) {
			held, errs := holders(ctx, env, a.Hosts, a.VIP, "")
			if len(held) != 1 {
				return false, fmt.Errorf("expected exactly one holder of %s before the fault, found %d %v (errors: %v)", a.VIP, len(held), held, errs)
			}
			holder = held[0]
			return true, nil
		})
		if err != nil {
			// keepalived's track_script needs the app healthy: say so when no release is there.
			for _, h := range a.Hosts {
				cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				_, rerr := env.Hosts.Run(cctx, h, "test -x "+shq.Quote("/srv/"+a.Name+"/current/start"))
				cancel()
				if rerr != nil {
					return fmt.Errorf("%w; %s has no release of %s (keepalived gives the VIP only to a node whose app is healthy): deploy one first (belay deploy --app %s ...)", err, h, a.Name, a.Name)
				}
			}
			return err
		}
		s.note("VIP %s is on %s", a.VIP, holder)
		return nil
	}); err != nil {
		return failRun(r, err)
	}
	// Probe as the app's users reach it: HTTPS with the domain as SNI and a
	// verified chain once its servers redirect there (httpprobe.Resolve).
	tg, err := httpprobe.Resolve(ctx, httpprobe.Options{Addr: a.VIP, Domain: appDomain(a), TLSMode: a.TLS, Roots: env.Roots, Timeout: ProbeTimeout})
	if err != nil {
		return failRun(r, fmt.Errorf("the VIP does not answer before the fault: %w", err))
	}
	p := &Prober{URL: tg.URL, Host: tg.Host, TLS: tg.TLS, Interval: ProbeInterval, Timeout: ProbeTimeout}
	var pr *probeRun
	defer func() {
		if pr != nil {
			pr.abandon()
		}
	}()
	if err := s.do("probe", p.URL+" (Host "+p.Host+")", func() error {
		if tg.Note != "" {
			s.note("%s", tg.Note)
		}
		pr = startProbe(ctx, p)
		return waitBaseline(ctx, p)
	}); err != nil {
		return failRun(r, fmt.Errorf("the VIP does not answer before the fault: %w", err))
	}
	fault := Fault{Kind: FaultKill, Host: holder}
	switch variant {
	case "cut-link":
		fault.Kind = FaultCutLink
	case "stop-nginx":
		fault = Fault{Kind: FaultStopService, Host: holder, Service: "nginx.service"}
	}
	var t0 time.Time
	healed := false
	heal := func() error {
		if healed {
			return nil
		}
		healed = true
		hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
		defer cancel()
		env.Hosts.Forget(holder)
		return env.Faults.Heal(hctx)
	}
	defer func() { _ = heal() }()
	if err := s.do("inject", fault.String(), func() error {
		var err error
		if t0, err = env.Faults.Inject(ctx, fault); err != nil {
			return err
		}
		if fault.Kind != FaultStopService {
			env.Hosts.Forget(holder)
		}
		return nil
	}); err != nil {
		return failRun(r, err)
	}
	var newHolder string
	if err := s.do("detect", "", func() error {
		return poll(ctx, 20*time.Millisecond, 30*time.Second, func(ctx context.Context) (bool, error) {
			held, _ := holders(ctx, env, a.Hosts, a.VIP, holder)
			if len(held) > 0 {
				r.Detection = time.Since(t0)
				newHolder = held[0]
				s.note("%s holds the VIP after %s", newHolder, round(r.Detection))
				return true, nil
			}
			return false, nil
		})
	}); err != nil {
		return failRun(r, err)
	}
	if err := s.do("recover", "", func() error {
		f, err := watchRecovery(ctx, pr, t0, VIPWatch)
		r.Recovery = f.FirstAnswer
		if f.Answered {
			r.VIP = &f
			r.Notes = append(r.Notes, holder+" -> "+newHolder+"; "+f.String())
			if reasons := failureReasons(p.Results(), t0); reasons != "" {
				r.Notes = append(r.Notes, "probes failed after the fault: "+reasons)
			}
		}
		return err
	}); err != nil {
		return failRun(r, err)
	}
	if err := s.do("heal", fault.String(), func() error {
		if err := heal(); err != nil {
			return err
		}
		return waitGroupWhole(ctx, env, a)
	}); err != nil {
		return failRun(r, err)
	}
	if err := s.do("verify", "", func() error {
		// Three agreeing looks half a second apart: a brief double MASTER right
		// after a link comes back would be a split brain. SSH hiccups are retried.
		agree := 0
		return poll(ctx, 500*time.Millisecond, 30*time.Second, func(ctx context.Context) (bool, error) {
			held, errs := holders(ctx, env, a.Hosts, a.VIP, "")
			if len(errs) > 0 {
				agree = 0
				return false, fmt.Errorf("cannot ask every app server: %v", errs)
			}
			if len(held) != 1 {
				agree = 0
				return false, fmt.Errorf("expected exactly one VIP holder after healing, found %d %v", len(held), held)
			}
			if agree++; agree < 3 {
				return false, nil
			}
			s.note("exactly one holder: %s", held[0])
			r.Notes = append(r.Notes, "after heal: "+held[0])
			return true, nil
		})
	}); err != nil {
		return failRun(r, err)
	}
	r.OK = true
	return r
}

// waitGroupWhole waits until every app server answers SSH with keepalived and
// nginx active and the app healthy on loopback, so the next run starts from a whole group.
func waitGroupWhole(ctx context.Context, env *Env, a *inventory.App) error {
	check := "systemctl is-active keepalived.service nginx.service >/dev/null && curl -fsS -m 1 -o /dev/null " + shq.Quote(fmt.Sprintf("http://127.0.0.1:%d%s", a.Port, a.HealthPath))
	err := poll(ctx, time.Second, 4*time.Minute, func(ctx context.Context) (bool, error) {
		for _, h := range a.Hosts {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, err := env.Hosts.Run(cctx, h, check)
			cancel()
			if err != nil {
				return false, err
			}
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("app group %s not whole again: %w", a.Name, err)
	}
	// keepalived's track scripts need `rise` intervals before the node may take over again.
	time.Sleep(env.Settle)
	return nil
}

// failureReasons summarises why probes started after since failed ("12 timeout, 3 HTTP 502").
func failureReasons(res []ProbeResult, since time.Time) string {
	counts := map[string]int{}
	for _, r := range res {
		if r.OK || r.Start.Before(since) {
			continue
		}
		switch {
		case r.Status >= 500:
			counts[fmt.Sprintf("HTTP %d", r.Status)]++
		case strings.Contains(r.Err, "Timeout") || strings.Contains(r.Err, "deadline exceeded"):
			counts["timeout"]++
		default:
			counts["connection error"]++
		}
	}
	var parts []string
	for k, n := range counts {
		parts = append(parts, fmt.Sprintf("%d %s", n, k))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}
