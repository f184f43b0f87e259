package drill

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

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

// ProbeResult is one HTTP probe of the VIP.
type ProbeResult struct {
	Start, End time.Time
	// OK is an HTTP answer below 500 (nginx and the app answered).
	OK     bool
	Status int
	Err    string
}

// Prober GETs a URL every interval with a timeout and keeps the results.
type Prober struct {
	URL, Host         string
	Interval, Timeout time.Duration
	mu                sync.Mutex
	results           []ProbeResult
}

// Run starts a probe every Interval until ctx ends, each on its own fresh TCP
// connection and goroutine: a probe that hangs for its whole timeout does not
// delay the next, so the outage edges are seen to within Interval. A kept-alive
// connection to the old holder would hide the failover (or fake an outage).
func (p *Prober) Run(ctx context.Context) {
	client := &http.Client{
		Timeout:   p.Timeout,
		Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	t := time.NewTicker(p.Interval)
	defer t.Stop()
	for {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.probe(ctx, client)
		}()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (p *Prober) probe(ctx context.Context, client *http.Client) {
	r := ProbeResult{Start: time.Now()}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL, nil)
	if err == nil {
		req.Host = p.Host
		var resp *http.Response
		resp, err = client.Do(req)
		if err == nil {
			resp.Body.Close()
			r.Status = resp.StatusCode
			r.OK = resp.StatusCode < 500
		}
	}
	if err != nil {
		r.Err = err.Error()
	}
	r.End = time.Now()
	if ctx.Err() != nil {
		return // cut short by the end of probing, not by the VIP
	}
	p.mu.Lock()
	p.results = append(p.results, r)
	p.mu.Unlock()
}

// Results returns the results so far, in the order the probes started.
func (p *Prober) Results() []ProbeResult {
	p.mu.Lock()
	out := append([]ProbeResult(nil), p.results...)
	p.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
	return out
}

// Outage reads probe results around a fault at t0: recovery is from t0 until
// the end of the first successful probe that started after the first failed
// probe after t0. recovered is false while no probe has succeeded since;
// failed counts the failed probes that started after t0 and before that answer.
func Outage(results []ProbeResult, t0 time.Time) (recovery time.Duration, failed int, recovered bool) {
	var firstFail time.Time
	for _, r := range results {
		if r.Start.Before(t0) {
			continue
		}
		if !r.OK {
			if firstFail.IsZero() {
				firstFail = r.Start
			}
			failed++
			continue
		}
		if !firstFail.IsZero() && r.Start.After(firstFail) {
			return r.End.Sub(t0), failed, true
		}
		if firstFail.IsZero() {
			// A probe answered after the fault before any failed: no outage seen (yet).
			recovered = true
		}
	}
	if firstFail.IsZero() && recovered {
		return 0, 0, true
	}
	return 0, failed, false
}

// okStreak reports whether the last n results all succeeded.
func okStreak(results []ProbeResult, n int) bool {
	if len(results) < n {
		return false
	}
	for _, r := range results[len(results)-n:] {
		if !r.OK {
			return false
		}
	}
	return true
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
	pctx, stopProbe := context.WithCancel(ctx)
	defer stopProbe()
	p := &Prober{URL: "http://" + a.VIP + "/", Host: appDomain(a), Interval: ProbeInterval, Timeout: ProbeTimeout}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stopProbe()
	if err := s.do("probe", p.URL, func() error {
		wg.Add(1)
		go func() { defer wg.Done(); p.Run(pctx) }()
		return poll(ctx, 50*time.Millisecond, 10*time.Second, func(context.Context) (bool, error) {
			res := p.Results()
			if len(res) > 0 && !res[len(res)-1].OK {
				last := res[len(res)-1]
				return false, fmt.Errorf("VIP probe: status %d %s", last.Status, last.Err)
			}
			return okStreak(res, 10), nil
		})
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
		var failed int
		err := poll(ctx, 20*time.Millisecond, 30*time.Second, func(context.Context) (bool, error) {
			rec, f, ok := Outage(p.Results(), t0)
			if ok {
				r.Recovery, failed = rec, f
			}
			return ok, nil
		})
		if err != nil {
			return err
		}
		// The first answer is the recovery. Then watch 5 s more: how many probes
		// still fail (nginx on the new holder may try the dead member's app
		// upstream until it marks it down) and when 10 answered in a row.
		time.Sleep(5 * time.Second)
		res := p.Results()
		// Every probe started before the first answer has finished by now: final figure.
		if rec, f, ok := Outage(res, t0); ok {
			r.Recovery, failed = rec, f
		}
		var steady time.Duration
		after, okAfter := 0, 0
		for i, x := range res {
			if x.Start.Before(t0.Add(r.Recovery)) {
				continue
			}
			after++
			if x.OK {
				okAfter++
			}
			if steady == 0 && i+10 <= len(res) && okStreak(res[:i+10], 10) {
				steady = x.Start.Sub(t0)
			}
		}
		note := fmt.Sprintf("%s -> %s; %d failed probes before the first answer; in the 5 s after it %d/%d probes answered", holder, newHolder, failed, okAfter, after)
		if reasons := failureReasons(res, t0.Add(r.Recovery)); reasons != "" {
			note += " (failures: " + reasons + ")"
		}
		if steady > 0 {
			note += fmt.Sprintf(", 10 in a row from +%s", round(steady))
		} else {
			note += ", never 10 in a row"
		}
		r.Notes = append(r.Notes, note)
		if after > 0 && okAfter*2 < after {
			return fmt.Errorf("the VIP answered at +%s but then failed %d of %d probes", round(r.Recovery), after-okAfter, after)
		}
		return nil
	}); err != nil {
		return failRun(r, err)
	}
	stopProbe()
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
