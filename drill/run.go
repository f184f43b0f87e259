package drill

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/belay-sh/belay/failover"
	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/remote"
)

// FaultKind is a failure the drills inject.
type FaultKind string

// The faults the drills use.
const (
	FaultKill        FaultKind = "kill"
	FaultCutLink     FaultKind = "cut-link"
	FaultStopService FaultKind = "stop-service"
	FaultPartition   FaultKind = "partition"
)

// Fault is one injected failure.
type Fault struct {
	Kind    FaultKind
	Host    string
	Service string
}

func (f Fault) String() string {
	s := string(f.Kind)
	if f.Host != "" {
		s += " " + f.Host
	}
	if f.Service != "" {
		s += " " + f.Service
	}
	return s
}

// Faults injects and heals failures. The lab implements all of them
// (drill/labfaults); ServiceFaults implements stopping a service anywhere.
type Faults interface {
	// Inject applies f and returns when it took effect (the fault's t0).
	Inject(ctx context.Context, f Fault) (time.Time, error)
	// Heal undoes every injected fault (boots killed machines, plugs links,
	// starts stopped services, ends partitions) and waits for the machines.
	Heal(ctx context.Context) error
	// Partitioned reports whether the sites are cut apart right now.
	Partitioned(ctx context.Context) (bool, error)
}

// ErrNoFaults is returned for a drill that needs fault injection on an inventory without it.
var ErrNoFaults = errors.New("fault injection is only available in the lab")

// SiteSwitch runs the site switch to site to (failover.Execute) and returns
// the facts it recorded (RPO edge, downtime, ...) once that site serves; with
// check set it runs only the switch's read-only preflight checks.
type SiteSwitch func(ctx context.Context, progress io.Writer, to failover.Direction, check bool) (map[string]string, error)

// Env is what a drill runs against.
type Env struct {
	Inv    *inventory.Inventory
	Hosts  remote.Runner
	Faults Faults // nil outside the lab
	// Lab is true for the lab's inventory (faults available, DNS double).
	Lab      bool
	Progress io.Writer
	// Seed is the stack's host-key seed; the app's DB password derives from it.
	Seed string
	// App is the app to drill ("" = the first).
	App string
	// Roots verify the apps' HTTPS certificates in the VIP probes
	// (--ca-file; nil: the system roots).
	Roots *x509.CertPool
	// Switch performs the site switch (site drill).
	Switch SiteSwitch
	// Settle is how long to let a healed group settle before the next run (default 3 s).
	Settle time.Duration
	// SeedWait bounds the corrupt drill's wait for a seeding standby (0: StandbySeedWait).
	SeedWait time.Duration
}

// Options are a drill invocation's choices.
type Options struct {
	Kind    Kind
	Variant string
	Repeat  int
}

// Supported reports whether drill k/variant can run against env, and why not.
func Supported(env *Env, k Kind, variant string) error {
	if env.Lab {
		return nil
	}
	if k == Restore && variant != "corrupt" || k == AppNode && variant == "stop-nginx" || k == DBPrimary && variant == "stop-service" {
		return nil
	}
	provider := "this"
	if p, ok := env.Inv.Sites[inventory.Primary]; ok {
		provider = p.Provider
	}
	return fmt.Errorf("drill %s/%s on a %s inventory: %w; a machine kill, a link cut or a partition needs provider power-off / network cuts, which belay leaves out on purpose. "+
		"Supported outside the lab: `belay drill app-node --variant stop-nginx`, `belay drill db-primary --variant stop-service`, `belay drill restore`. Run the others on the lab (`belay lab up`)", k, variant, provider, ErrNoFaults)
}

// Execute runs drill opt.Kind opt.Repeat times and returns its report (also on failed runs).
func Execute(ctx context.Context, env *Env, opt Options) (*Report, error) {
	variant, err := CheckVariant(opt.Kind, opt.Variant)
	if err != nil {
		return nil, err
	}
	if opt.Repeat < 1 {
		return nil, fmt.Errorf("--repeat %d: expected at least 1", opt.Repeat)
	}
	if err := Supported(env, opt.Kind, variant); err != nil {
		return nil, err
	}
	if env.Progress == nil {
		env.Progress = io.Discard
	}
	if env.Settle == 0 {
		env.Settle = 3 * time.Second
	}
	steps, err := Steps(env.Inv, opt.Kind, variant, env.App)
	if err != nil {
		return nil, err
	}
	name := string(opt.Kind)
	if variant != Variants[opt.Kind][0] {
		name += "/" + variant
	}
	rep := &Report{Drill: name, Target: env.Inv.Stack, Started: time.Now().UTC(), Steps: StepTitles(steps)}
	var one func(ctx context.Context, s *stepper) Run
	switch opt.Kind {
	case AppNode:
		one = func(ctx context.Context, s *stepper) Run { return appNodeRun(ctx, env, s, variant) }
	case DBPrimary:
		one = func(ctx context.Context, s *stepper) Run { return dbPrimaryRun(ctx, env, s, variant) }
	case Restore:
		one = func(ctx context.Context, s *stepper) Run { return restoreRun(ctx, env, s, variant) }
	case Site:
		one = func(ctx context.Context, s *stepper) Run { return siteRun(ctx, env, s) }
	}
	for i := 0; i < opt.Repeat; i++ {
		if ctx.Err() != nil {
			break
		}
		s := &stepper{drill: name, steps: steps, out: env.Progress, run: i + 1}
		r := one(ctx, s)
		rep.Runs = append(rep.Runs, r)
		status := "ok"
		if !r.OK {
			status = "FAILED: " + r.Error
		}
		fmt.Fprintf(env.Progress, "drill %s run %d/%d: detection %s, recovery %s, acked %d, missing %d: %s\n",
			name, i+1, opt.Repeat, round(r.Detection), round(r.Recovery), r.Acked, r.Missing, status)
		if r.VIP != nil {
			fmt.Fprintf(env.Progress, "drill %s run %d/%d: VIP %s\n", name, i+1, opt.Repeat, r.VIP)
		}
		if i+1 < opt.Repeat {
			select {
			case <-ctx.Done():
			case <-time.After(env.Settle):
			}
		}
	}
	rep.Finished = time.Now().UTC()
	rep.Summarize()
	return rep, ctx.Err()
}

// failRun marks r failed with err and returns it.
func failRun(r Run, err error) Run {
	r.OK = false
	r.Error = err.Error()
	return r
}

// poll calls fn every interval until it reports done, fails, or timeout passes.
func poll(ctx context.Context, interval, timeout time.Duration, fn func(ctx context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		done, err := fn(ctx)
		var f *fatalError
		if errors.As(err, &f) {
			return f.err
		}
		if err != nil {
			last = err
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("gave up after %s: %w", timeout, last)
			}
			return fmt.Errorf("gave up after %s", timeout)
		case <-time.After(interval):
		}
	}
}

// fatalError ends a poll at once.
type fatalError struct{ err error }

func (f *fatalError) Error() string { return f.err.Error() }

func fatal(err error) error { return &fatalError{err} }
