package failover

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"

	"github.com/belay-sh/belay/cloud/dns"
	"github.com/belay-sh/belay/httpprobe"
	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/remote"
)

// Env is what a switch runs against.
type Env struct {
	Inv   *inventory.Inventory
	Hosts remote.Runner
	// DNS moves the records; Zone and TTL are the stack's belay:dns settings.
	DNS  dns.Upserter
	Zone string
	TTL  int
	// Out gets one line per step as it starts and ends.
	Out       io.Writer
	StatePath string
	// OldSiteReachable says whether the old site can be fenced; nil asks each
	// host over SSH. The lab answers false while the sites are partitioned.
	OldSiteReachable func(ctx context.Context) (bool, string)
	// Roots verify the apps' HTTPS certificates in the verify steps
	// (--ca-file; nil: the system roots).
	Roots *x509.CertPool
	// HealthTimeout bounds health and HTTP checks (default 90 s).
	HealthTimeout time.Duration
	Now           func() time.Time
	// Sleep pauses between retries (tests make it advance a fake clock).
	Sleep func(time.Duration)
}

// StepResult is one step's outcome.
type StepResult struct {
	ID       string        `json:"id"`
	Status   string        `json:"status"` // done, skipped, already-done
	Duration time.Duration `json:"durationNs"`
	Note     string        `json:"note,omitempty"`
}

// Result is a finished (or failed) switch.
type Result struct {
	Stack    string            `json:"stack"`
	To       Direction         `json:"to"`
	Plan     string            `json:"plan"`
	Resumed  bool              `json:"resumed"`
	Started  time.Time         `json:"started"`
	Finished time.Time         `json:"finished"`
	Duration time.Duration     `json:"durationNs"`
	Steps    []StepResult      `json:"steps"`
	Facts    map[string]string `json:"facts,omitempty"`
	Error    string            `json:"error,omitempty"`
}

// ErrRefused is returned for a plan belay does not run itself.
var ErrRefused = errors.New("refused")

// Execute runs p, resuming from env.StatePath, and returns what happened.
func Execute(ctx context.Context, env *Env, p *Plan) (*Result, error) {
	if p.Refusal != "" {
		return nil, fmt.Errorf("site switch to the %s site: %w: %s", p.To, ErrRefused, p.Refusal)
	}
	if env.Now == nil {
		env.Now = time.Now
	}
	if env.Out == nil {
		env.Out = io.Discard
	}
	if env.HealthTimeout == 0 {
		env.HealthTimeout = 90 * time.Second
	}
	if env.StatePath == "" {
		return nil, errors.New("failover: no state file path")
	}
	prev, err := LoadState(env.StatePath)
	if err != nil {
		return nil, err
	}
	st, resumed, err := Resume(prev, p, env.Now())
	if err != nil {
		return nil, err
	}
	res := &Result{Stack: p.Stack, To: p.To, Plan: p.Digest(), Resumed: resumed, Started: env.Now().UTC()}
	if resumed {
		fmt.Fprintf(env.Out, "resuming the switch started %s: %d of %d steps already done (state %s)\n", st.Started.Format(time.RFC3339), len(st.Done)+len(st.Skipped), len(p.Steps), env.StatePath)
	}
	if err := st.Save(env.StatePath); err != nil {
		return nil, err
	}
	x := &executor{env: env, st: st}
	for i, s := range p.Steps {
		if _, ok := st.Done[s.ID]; ok {
			res.Steps = append(res.Steps, StepResult{ID: s.ID, Status: "already-done"})
			continue
		}
		if why, ok := st.Skipped[s.ID]; ok {
			res.Steps = append(res.Steps, StepResult{ID: s.ID, Status: "skipped", Note: why})
			continue
		}
		where := s.Host
		if where == "" {
			where = "operator"
		}
		fmt.Fprintf(env.Out, "step %d/%d %s (%s): %s\n", i+1, len(p.Steps), s.ID, where, s.Title)
		start := env.Now()
		note, skip, err := x.run(ctx, s)
		d := env.Now().Sub(start)
		if err != nil {
			fmt.Fprintf(env.Out, "step %s FAILED after %s: %v\n", s.ID, d.Round(time.Millisecond), err)
			res.Steps = append(res.Steps, StepResult{ID: s.ID, Status: "failed", Duration: d, Note: err.Error()})
			res.Error = err.Error()
			res.Finished = env.Now().UTC()
			res.Duration = res.Finished.Sub(st.Started)
			res.Facts = st.Facts
			_ = st.Save(env.StatePath)
			return res, fmt.Errorf("step %s: %w (fix the cause and run the same command again: it resumes here)", s.ID, err)
		}
		r := StepResult{ID: s.ID, Status: "done", Duration: d, Note: note}
		if skip {
			r.Status = "skipped"
			st.Skipped[s.ID] = note
			fmt.Fprintf(env.Out, "step %s SKIPPED: %s\n", s.ID, note)
		} else {
			st.Done[s.ID] = env.Now().UTC()
			if note != "" {
				fmt.Fprintf(env.Out, "step %s ok (%s): %s\n", s.ID, d.Round(time.Millisecond), note)
			} else {
				fmt.Fprintf(env.Out, "step %s ok (%s)\n", s.ID, d.Round(time.Millisecond))
			}
		}
		res.Steps = append(res.Steps, r)
		if err := st.Save(env.StatePath); err != nil {
			return res, err
		}
	}
	if from, err1 := time.Parse(time.RFC3339Nano, st.Facts["downtimeFrom"]); err1 == nil {
		if to, err2 := time.Parse(time.RFC3339Nano, st.Facts["downtimeTo"]); err2 == nil {
			st.Facts["downtime"] = to.Sub(from).Round(100 * time.Millisecond).String()
		}
	}
	st.Finished = true
	if err := st.Save(env.StatePath); err != nil {
		return res, err
	}
	res.Finished = env.Now().UTC()
	res.Duration = res.Finished.Sub(st.Started)
	res.Facts = st.Facts
	fmt.Fprintf(env.Out, "site switch to the %s site done in %s\n", p.To, res.Duration.Round(100*time.Millisecond))
	return res, nil
}

type executor struct {
	env       *Env
	st        *State
	reachable *bool
	why       string
}

// run performs one step; skip reports a fence step skipped for an unreachable site.
func (x *executor) run(ctx context.Context, s Step) (note string, skip bool, err error) {
	env := x.env
	switch s.Kind {
	case KindCheck, KindDeploy:
		for _, c := range s.Commands {
			cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
			out, err := env.Hosts.Run(cctx, s.Host, c)
			cancel()
			if err != nil {
				if s.Kind == KindCheck && strings.HasPrefix(s.ID, "check-release/") {
					app, _, _ := strings.Cut(strings.TrimPrefix(s.ID, "check-release/"), "/")
					return "", false, fmt.Errorf("%s has no release of %s (/srv/%s/current/start missing): deploy %s to the standby site first (belay deploy --app %s ...): %w", s.Host, app, app, app, app, err)
				}
				return "", false, err
			}
			if s.Expect != "" && strings.TrimSpace(string(out)) != s.Expect {
				return "", false, fmt.Errorf("%s printed %q, expected %q", c, strings.TrimSpace(string(out)), s.Expect)
			}
		}
		return "", false, nil
	case KindFence:
		if ok, why := x.siteReachable(ctx, s.Host); !ok {
			return "old site unreachable (" + why + "): not fenced; make sure it cannot serve before it comes back", true, nil
		}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		_, err := env.Hosts.RunRoot(cctx, s.Host, s.Argv...)
		return "", false, err
	case KindRoot:
		timeout := s.Timeout
		if timeout == 0 {
			timeout = 6 * time.Minute
		}
		if s.Retry {
			return x.rootUntil(ctx, s, timeout)
		}
		cctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		out, err := env.Hosts.RunRoot(cctx, s.Host, s.Argv...)
		if err != nil {
			return "", false, err
		}
		got := strings.TrimSpace(string(out))
		// A dedicated cell's standby database has the same steps as the
		// stack's, its host after a slash (celldb.go); its facts carry the
		// same suffix.
		base, host, _ := strings.Cut(s.ID, "/")
		suffix := ""
		if host != "" {
			suffix = "/" + host
		}
		switch base {
		case "check-standby-db":
			if got != "t" && got != "f" {
				return "", false, fmt.Errorf("pg_is_in_recovery() printed %q", got)
			}
			if got == "f" {
				x.st.Facts["standbyAlreadyPromoted"+suffix] = "true"
				return "already promoted (an earlier run got this far)", false, nil
			}
			return "in recovery", false, nil
		case "check-standby-serving":
			if got == "t" {
				return "", false, fmt.Errorf("the standby database %s is in recovery: the primary site serves already and there is no switch to undo (belay failover site --to standby first)", s.Host)
			}
		case "rpo":
			x.st.Facts["lastReplayedCommit"+suffix] = got
			return "last replayed commit: " + got, false, nil
		case "promote-db":
			if x.st.Facts["standbyAlreadyPromoted"+suffix] == "true" {
				return "already promoted", false, nil
			}
			x.st.Facts["promotedAt"+suffix] = x.env.Now().UTC().Format(time.RFC3339Nano)
		}
		if _, ok := x.st.Facts["downtimeFrom"]; !ok && strings.HasPrefix(s.ID, "stop-standby-app/") {
			x.st.Facts["downtimeFrom"] = x.env.Now().UTC().Format(time.RFC3339Nano)
		}
		if s.Expect != "" && got != s.Expect {
			return "", false, fmt.Errorf("printed %q, expected %q", got, s.Expect)
		}
		return "", false, nil
	case KindHealth:
		var last error
		deadline := env.Now().Add(env.HealthTimeout)
		for env.Now().Before(deadline) {
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			_, last = env.Hosts.Run(cctx, s.Host, strings.Join(s.Commands, " && "))
			cancel()
			if last == nil {
				return "", false, nil
			}
			if ctx.Err() != nil {
				return "", false, ctx.Err()
			}
			time.Sleep(time.Second)
		}
		return "", false, fmt.Errorf("not healthy after %s: %w", env.HealthTimeout, last)
	case KindDNS:
		if env.DNS == nil {
			return "", false, errors.New("no DNS provider configured (--dns-provider)")
		}
		ip, err := netip.ParseAddr(s.Address)
		if err != nil {
			return "", false, fmt.Errorf("DNS target %q: %w", s.Address, err)
		}
		out, err := env.DNS.UpsertA(ctx, env.Zone, s.Domain, ip, env.TTL)
		if err != nil {
			return "", false, err
		}
		return fmt.Sprintf("%s A %s (%s)", s.Domain, s.Address, out), false, nil
	case KindCert:
		cctx, cancel := context.WithTimeout(ctx, s.Timeout)
		defer cancel()
		if _, err := env.Hosts.RunRoot(cctx, s.Host, s.Argv...); err != nil {
			if ctx.Err() != nil {
				return "", false, ctx.Err()
			}
			x.st.Facts["certificate/"+s.Host] = "not obtained: " + err.Error()
			return "no certificate yet (" + err.Error() + "): HTTPS serves the placeholder until the unit's timer succeeds; see docs/runbook.md", true, nil
		}
		x.st.Facts["certificate/"+s.Host] = "obtained"
		return "", false, nil
	case KindHTTP:
		var last error
		deadline := env.Now().Add(env.HealthTimeout)
		app := x.appOf(s.Domain)
		for env.Now().Before(deadline) {
			code, note, err := probeApp(ctx, s.Address, s.Domain, app.TLS, env.Roots)
			if err == nil && code < 500 {
				if _, ok := x.st.Facts["downtimeFrom"]; ok {
					x.st.Facts["downtimeTo"] = env.Now().UTC().Format(time.RFC3339Nano)
				}
				if note != "" {
					x.st.Facts["tls/"+app.Name] = note
					return fmt.Sprintf("HTTP %d; %s", code, note), false, nil
				}
				return fmt.Sprintf("HTTP %d", code), false, nil
			}
			if err == nil {
				err = fmt.Errorf("HTTP %d", code)
			}
			last = err
			if ctx.Err() != nil {
				return "", false, ctx.Err()
			}
			time.Sleep(500 * time.Millisecond)
		}
		return "", false, fmt.Errorf("no answer below 500 after %s: %w", env.HealthTimeout, last)
	case KindRouter:
		return x.routerCheck(ctx, s)
	case KindManual:
		return "", false, fmt.Errorf("manual step: %s", s.Title)
	}
	return "", false, fmt.Errorf("step kind %q unknown", s.Kind)
}

// rootUntil repeats a root step until it prints s.Expect (or just succeeds)
// or timeout passes; the last answer is in the error.
func (x *executor) rootUntil(ctx context.Context, s Step, timeout time.Duration) (string, bool, error) {
	deadline := x.env.Now().Add(timeout)
	var last error
	tries := 0
	for {
		tries++
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		out, err := x.env.Hosts.RunRoot(cctx, s.Host, s.Argv...)
		cancel()
		got := strings.TrimSpace(string(out))
		switch {
		case err != nil:
			last = err
		case s.Expect != "" && got != s.Expect:
			last = fmt.Errorf("printed %q, expected %q", got, s.Expect)
		default:
			return fmt.Sprintf("after %d tries", tries), false, nil
		}
		if ctx.Err() != nil {
			return "", false, ctx.Err()
		}
		if !x.env.Now().Before(deadline) {
			return "", false, fmt.Errorf("not done after %s (%d tries): %w", timeout, tries, last)
		}
		if x.env.Sleep != nil {
			x.env.Sleep(time.Second)
		} else {
			time.Sleep(time.Second)
		}
	}
}

func (x *executor) siteReachable(ctx context.Context, host string) (bool, string) {
	if x.env.OldSiteReachable != nil {
		if x.reachable == nil {
			ok, why := x.env.OldSiteReachable(ctx)
			x.reachable, x.why = &ok, why
		}
		return *x.reachable, x.why
	}
	cctx, cancel := context.WithTimeout(ctx, 8*time.Second)
	defer cancel()
	if _, err := x.env.Hosts.Run(cctx, host, "true"); err != nil {
		return false, err.Error()
	}
	return true, ""
}

// probeApp GETs the app's front page through addr as its users would
// (httpprobe.Resolve: HTTPS with SNI domain and a chain verified against
// roots once the servers redirect to HTTPS). note is set when an app with
// TLS was reached over plain HTTP (its servers serve the placeholder).
func probeApp(ctx context.Context, addr, domain, tlsMode string, roots *x509.CertPool) (code int, note string, err error) {
	tg, err := httpprobe.Resolve(ctx, httpprobe.Options{Addr: addr, Domain: domain, TLSMode: tlsMode, Roots: roots, Timeout: 3 * time.Second})
	if err != nil {
		return 0, "", err
	}
	req, err := tg.Request(ctx)
	if err != nil {
		return 0, "", err
	}
	resp, err := httpprobe.NewClient(3*time.Second, tg.TLS, false).Do(req)
	if err != nil {
		return 0, "", err
	}
	resp.Body.Close()
	return resp.StatusCode, tg.Note, nil
}

// appOf is the app a domain belongs to (zero App: plain HTTP).
func (x *executor) appOf(domain string) inventory.App {
	for _, a := range x.env.Inv.Apps {
		for _, d := range a.Domains {
			if d == domain {
				return a
			}
		}
	}
	return inventory.App{}
}

// Preflight runs the plan's read-only checks (releases on the standby app
// servers, the standby database in recovery) without recording anything, so a
// drill can refuse before it breaks the primary site.
func Preflight(ctx context.Context, env *Env, p *Plan) error {
	if env.Now == nil {
		env.Now = time.Now
	}
	x := &executor{env: env, st: &State{Facts: map[string]string{}}}
	for _, s := range p.Steps {
		base, host, _ := strings.Cut(s.ID, "/")
		if s.Kind != KindCheck && base != "check-standby-db" {
			continue
		}
		if _, _, err := x.run(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s.ID, err)
		}
		key := "standbyAlreadyPromoted"
		if base == "check-standby-db" && host != "" {
			key += "/" + host // a dedicated cell's standby database
		}
		if x.st.Facts[key] == "true" {
			return fmt.Errorf("%s: the standby database %s is already promoted (an earlier switch): re-seed it before drilling", s.ID, s.Host)
		}
	}
	return nil
}
