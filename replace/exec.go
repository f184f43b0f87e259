package replace

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/belay-sh/belay/httpprobe"
	"github.com/belay-sh/belay/remote"
)

// Replacer replaces one host's server: a cloud stack through a targeted
// `pulumi up --replace` (PulumiReplacer), the lab through `belay lab replace`.
type Replacer interface {
	Replace(ctx context.Context, host string) error
}

// Resizer changes the data nodes' size: SetSize records it in the stack
// config, Resize applies it to one server alone.
type Resizer interface {
	SetSize(ctx context.Context, key *SizeKey, size string) error
	Resize(ctx context.Context, host string) error
}

// Converger brings one host's files up to the stack config.
type Converger interface {
	Converge(ctx context.Context, host string) error
}

// ConvergeFunc adapts a function to Converger.
type ConvergeFunc func(ctx context.Context, host string) error

// Converge calls f.
func (f ConvergeFunc) Converge(ctx context.Context, host string) error { return f(ctx, host) }

// Env is what a plan runs against.
type Env struct {
	Hosts     remote.Runner
	Replacer  Replacer
	Resizer   Resizer
	Converger Converger
	Out       io.Writer
	// HTTPGet returns the status of GET url with Host: host (default: a plain client).
	HTTPGet func(ctx context.Context, url, host string) (int, error)
	Now     func() time.Time
	// Sleep waits between tries of a wait step (default time.Sleep, ctx-aware).
	Sleep func(context.Context, time.Duration)
	// Interval is the pause between tries (default 2 s).
	Interval time.Duration
	// Changed runs after a server was replaced or resized, before anything
	// reaches it again: a replaced cloud server may have a new public
	// address, so the CLI reloads the inventory there (nil: nothing).
	Changed func(ctx context.Context, host string) error
	// Pipe streams a release from one host to another (copy-release steps);
	// the CLI gives the plain SSH hosts.
	Pipe Piper
	// ProgressEvery is how often a copy prints the bytes streamed (default 10 s).
	ProgressEvery time.Duration
	// Base is the parent of the app directories for copy steps ("" is /srv;
	// tests stand several hosts in temp dirs with "$BELAY_ROOT", see
	// release.Layout).
	Base string
}

// StepResult is one step's outcome.
type StepResult struct {
	ID       string        `json:"id"`
	Status   string        `json:"status"` // done, skipped, failed, not-run
	Duration time.Duration `json:"durationNs"`
	Note     string        `json:"note,omitempty"`
}

// Result is a finished (or failed) run.
type Result struct {
	Stack    string            `json:"stack"`
	Action   string            `json:"action"`
	Host     string            `json:"host,omitempty"`
	Size     string            `json:"size,omitempty"`
	OK       bool              `json:"ok"`
	Duration time.Duration     `json:"durationNs"`
	Steps    []StepResult      `json:"steps"`
	Facts    map[string]string `json:"facts,omitempty"`
	Error    string            `json:"error,omitempty"`
}

// Execute runs p's steps in order, starting at step from ("" = the first):
// a run that failed after the replacement resumes with --from at the step
// that failed, without replacing the server again.
func Execute(ctx context.Context, env *Env, p *Plan, from string) (*Result, error) {
	env.defaults()
	start := 0
	if from != "" {
		i := slices.IndexFunc(p.Steps, func(s Step) bool { return s.ID == from })
		if i < 0 {
			var ids []string
			for _, s := range p.Steps {
				ids = append(ids, s.ID)
			}
			return nil, fmt.Errorf("--from %q: not a step of this plan (steps: %s)", from, strings.Join(ids, ", "))
		}
		start = i
	}
	res := &Result{Stack: p.Stack, Action: p.Action, Host: p.Host, Size: p.Size, Facts: map[string]string{}}
	t0 := env.Now()
	for i, s := range p.Steps {
		if i < start {
			res.Steps = append(res.Steps, StepResult{ID: s.ID, Status: "not-run", Note: "before --from"})
			continue
		}
		where := s.Host
		if where == "" {
			where = "operator"
		}
		fmt.Fprintf(env.Out, "step %d/%d %s (%s): %s\n", i+1, len(p.Steps), s.ID, where, s.Title)
		st := env.Now()
		note, skipped, err := env.run(ctx, s, res.Facts)
		d := env.Now().Sub(st)
		if err != nil && s.Hint != "" {
			err = fmt.Errorf("%w; %s", err, s.Hint)
		}
		if err != nil {
			fmt.Fprintf(env.Out, "step %s FAILED after %s: %v\n", s.ID, d.Round(time.Millisecond), err)
			res.Steps = append(res.Steps, StepResult{ID: s.ID, Status: "failed", Duration: d, Note: err.Error()})
			res.Error = err.Error()
			res.Duration = env.Now().Sub(t0)
			return res, fmt.Errorf("step %s: %w (fix the cause, then resume with --from %s)", s.ID, err, s.ID)
		}
		r := StepResult{ID: s.ID, Status: "done", Duration: d, Note: note}
		if skipped {
			r.Status = "skipped"
		}
		if note != "" {
			fmt.Fprintf(env.Out, "step %s %s (%s): %s\n", s.ID, r.Status, d.Round(time.Millisecond), note)
		} else {
			fmt.Fprintf(env.Out, "step %s %s (%s)\n", s.ID, r.Status, d.Round(time.Millisecond))
		}
		res.Steps = append(res.Steps, r)
	}
	res.OK = true
	res.Duration = env.Now().Sub(t0)
	return res, nil
}

func (env *Env) defaults() {
	if env.Now == nil {
		env.Now = time.Now
	}
	if env.Out == nil {
		env.Out = io.Discard
	}
	if env.Interval == 0 {
		env.Interval = 2 * time.Second
	}
	if env.Sleep == nil {
		env.Sleep = func(ctx context.Context, d time.Duration) {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-ctx.Done():
			case <-t.C:
			}
		}
	}
	if env.HTTPGet == nil {
		env.HTTPGet = httpprobe.Status
	}
}

// run performs one step; facts collects what record steps saw.
func (env *Env) run(ctx context.Context, s Step, facts map[string]string) (note string, skipped bool, err error) {
	switch s.Kind {
	case KindCheck:
		return "", false, env.once(ctx, s)
	case KindRoot:
		return "", false, env.once(ctx, s)
	case KindFence:
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, rerr := env.Hosts.Run(cctx, s.Host, "true")
		cancel()
		if rerr != nil {
			return "unreachable (" + rerr.Error() + "): it serves nothing, going on", true, nil
		}
		return "", false, env.once(ctx, s)
	case KindWait:
		return env.until(ctx, s, func(out string) error { return s.check(out) })
	case KindVIP:
		return env.until(ctx, s, func(string) error { return env.vipMoved(ctx, s) })
	case KindHTTP:
		return env.until(ctx, s, func(string) error {
			code, err := env.HTTPGet(ctx, "http://"+s.Address+"/", s.Domain)
			if err != nil {
				return err
			}
			if code >= 500 {
				return fmt.Errorf("HTTP %d", code)
			}
			return nil
		})
	case KindReplace:
		if env.Replacer == nil {
			return "", false, errors.New("no replacer for this target")
		}
		cctx, cancel := context.WithTimeout(ctx, s.Timeout)
		defer cancel()
		env.Hosts.Forget(s.Host)
		if err := env.Replacer.Replace(cctx, s.Host); err != nil {
			return "", false, err
		}
		return "", false, env.changed(ctx, s.Host)
	case KindSetSize:
		if env.Resizer == nil {
			return "", false, errors.New("no resizer for this target")
		}
		return "", false, env.Resizer.SetSize(ctx, s.SizeKey, s.Size)
	case KindResize:
		if env.Resizer == nil {
			return "", false, errors.New("no resizer for this target")
		}
		cctx, cancel := context.WithTimeout(ctx, s.Timeout)
		defer cancel()
		env.Hosts.Forget(s.Host)
		if err := env.Resizer.Resize(cctx, s.Host); err != nil {
			return "", false, err
		}
		return "", false, env.changed(ctx, s.Host)
	case KindBoot:
		env.Hosts.Forget(s.Host)
		return env.until(ctx, s, func(out string) error {
			if strings.TrimSpace(out) != s.Expect {
				return fmt.Errorf("cloud-final.service is %q, waiting for %q", strings.TrimSpace(out), s.Expect)
			}
			return nil
		})
	case KindCopyRelease:
		return env.copyRelease(ctx, s)
	case KindConverge:
		if env.Converger == nil {
			return "", false, errors.New("no converger for this target")
		}
		return "", false, env.Converger.Converge(ctx, s.Host)
	case KindRecord:
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		out, err := env.Hosts.Run(cctx, s.Host, s.Command)
		if err != nil {
			return "unreachable (" + err.Error() + "): nothing recorded, the later comparison is skipped", true, nil
		}
		v := strings.TrimSpace(string(out))
		facts[s.Fact] = v
		if v == "" {
			return "no volume mounted there (data on the root disk): the later comparison is skipped", false, nil
		}
		return v, false, nil
	case KindSame:
		want, ok := facts[s.Fact]
		if !ok || want == "" {
			return "nothing recorded before: not compared", true, nil
		}
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		out, err := env.Hosts.Run(cctx, s.Host, s.Command)
		if err != nil {
			return "", false, err
		}
		if got := strings.TrimSpace(string(out)); got != want {
			return "", false, fmt.Errorf("filesystem %q mounted, expected %q as before: the data volume is not the one the node had", got, want)
		}
		return want, false, nil
	}
	return "", false, fmt.Errorf("step kind %q unknown", s.Kind)
}

// changed drops the cached connection and lets the caller reload addresses.
func (env *Env) changed(ctx context.Context, host string) error {
	env.Hosts.Forget(host)
	if env.Changed == nil {
		return nil
	}
	if err := env.Changed(ctx, host); err != nil {
		return fmt.Errorf("after the change of %s: %w", host, err)
	}
	return nil
}

// once runs a check or root step a single time.
func (env *Env) once(ctx context.Context, s Step) error {
	out, err := env.exec(ctx, s, 6*time.Minute)
	if err != nil {
		return err
	}
	return s.check(string(out))
}

func (env *Env) exec(ctx context.Context, s Step, timeout time.Duration) ([]byte, error) {
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if len(s.Argv) > 0 {
		return env.Hosts.RunRoot(cctx, s.Host, s.Argv...)
	}
	if s.Command != "" {
		return env.Hosts.Run(cctx, s.Host, s.Command)
	}
	return nil, nil
}

// check judges a step's output: Expect, else Want, else any output.
func (s Step) check(out string) error {
	got := strings.TrimSpace(out)
	if s.Expect != "" && got != s.Expect {
		return fmt.Errorf("printed %q, expected %q", got, s.Expect)
	}
	if s.Want != nil {
		m, err := ParseNodeStates(got)
		if err != nil {
			return err
		}
		st, ok := m[s.Want.Node]
		if !ok {
			return fmt.Errorf("the monitor does not list %s (%s)", s.Want.Node, describe(m))
		}
		if !st.Settled() || !slices.Contains(s.Want.States, st.Reported) {
			return fmt.Errorf("%s is %s, waiting for %s (%s)", s.Want.Node, st, strings.Join(s.Want.States, " or "), describe(m))
		}
	}
	return nil
}

// until repeats s (its command, if any, then ok on the output) until ok
// passes or s.Timeout; a host-key mismatch stops at once.
func (env *Env) until(ctx context.Context, s Step, ok func(out string) error) (string, bool, error) {
	timeout := s.Timeout
	if timeout == 0 {
		timeout = time.Minute
	}
	deadline := env.Now().Add(timeout)
	tries := 0
	var last error
	for {
		tries++
		out, err := env.exec(ctx, s, 30*time.Second)
		if err == nil {
			err = ok(string(out))
			if err == nil {
				return fmt.Sprintf("after %d tr%s", tries, map[bool]string{true: "y", false: "ies"}[tries == 1]), false, nil
			}
		} else if isHostKeyError(err) {
			return "", false, fmt.Errorf("%s presents another host key than the pinned one (host keys derive from the seed: was the server created from this stack?): %w", s.Host, err)
		}
		last = err
		if ctx.Err() != nil {
			return "", false, ctx.Err()
		}
		if !env.Now().Before(deadline) {
			return "", false, fmt.Errorf("not done after %s (%d tries): %w", timeout, tries, last)
		}
		env.Sleep(ctx, env.Interval)
	}
}

func isHostKeyError(err error) bool {
	m := strings.ToLower(err.Error())
	return strings.Contains(m, "host key mismatch") || strings.Contains(m, "knownhosts: key mismatch") || strings.Contains(m, "host key does not match")
}

// vipMoved: exactly one peer holds the VIP and the replaced host does not
// (an unreachable replaced host holds nothing).
func (env *Env) vipMoved(ctx context.Context, s Step) error {
	var held []string
	for _, h := range s.Peers {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		out, err := env.Hosts.Run(cctx, h, VIPProbeCmd)
		cancel()
		if err != nil {
			return fmt.Errorf("%s: %w", h, err)
		}
		if holdsVIP(string(out), s.VIP) {
			held = append(held, h)
		}
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	out, err := env.Hosts.Run(cctx, s.Host, VIPProbeCmd)
	cancel()
	if err == nil && holdsVIP(string(out), s.VIP) {
		return fmt.Errorf("%s still holds %s", s.Host, s.VIP)
	}
	if len(held) != 1 {
		return fmt.Errorf("%d peers hold %s %v, waiting for exactly one", len(held), s.VIP, held)
	}
	return nil
}
