package drill

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/belay-sh/belay/hostcmd"
	"github.com/belay-sh/belay/inventory"
)

func dbPrimaryRun(ctx context.Context, env *Env, s *stepper, variant string) Run {
	r := Run{Started: time.Now().UTC()}
	inv := env.Inv
	nodes := inv.Database.Nodes
	if len(nodes) < 2 {
		return failRun(r, fmt.Errorf("inventory database.nodes lists %d node(s); a primary drill needs two", len(nodes)))
	}
	via, err := tunnelHost(ctx, env, inventory.Primary)
	if err != nil {
		return failRun(r, err)
	}
	ep, err := newPGEndpoint(env, via)
	if err != nil {
		return failRun(r, err)
	}
	var addrs []string
	for _, n := range nodes {
		a, err := nodeAddr(inv, n)
		if err != nil {
			return failRun(r, err)
		}
		addrs = append(addrs, a)
	}
	var primary string
	if err := s.do("locate", "tunnel via "+via, func() error {
		prim, _, errs := ep.roles(ctx, nodes)
		if len(prim) != 1 {
			return fmt.Errorf("expected exactly one writable data node, found %d %v (errors: %v)", len(prim), prim, errs)
		}
		primary = prim[0]
		s.note("primary is %s", primary)
		return nil
	}); err != nil {
		return failRun(r, err)
	}
	if err := s.do("prepare", "", func() error {
		c, err := ep.connect(ctx, addrs, true)
		if err != nil {
			return err
		}
		defer c.Close(closeCtx(ctx))
		_, err = c.Exec(ctx, CreateWritesSQL)
		return err
	}); err != nil {
		return failRun(r, err)
	}
	w := &Writer{Endpoint: ep, Addrs: addrs, Base: time.Now().UnixMicro() * 10, Pace: 5 * time.Millisecond}
	lctx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	stop := func() { stopLoad(); wg.Wait() }
	defer stop()
	if err := s.do("load", fmt.Sprintf("ids from %d", w.Base), func() error {
		wg.Add(1)
		go func() { defer wg.Done(); w.Run(lctx) }()
		return poll(ctx, 100*time.Millisecond, 15*time.Second, func(context.Context) (bool, error) {
			acked, _ := w.Acked()
			return len(acked) >= 50, nil
		})
	}); err != nil {
		return failRun(r, fmt.Errorf("write load does not get going: %w", err))
	}
	fault := Fault{Kind: FaultKill, Host: primary}
	switch variant {
	case "cut-link":
		fault.Kind = FaultCutLink
	case "stop-service":
		fault = Fault{Kind: FaultStopService, Host: primary, Service: hostcmd.PGAutoFailoverUnit}
	}
	healed := false
	heal := func() error {
		if healed {
			return nil
		}
		healed = true
		hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
		defer cancel()
		return env.Faults.Heal(hctx)
	}
	defer func() { _ = heal() }()
	var t0 time.Time
	if err := s.do("inject", fault.String(), func() error {
		var err error
		t0, err = env.Faults.Inject(ctx, fault)
		return err
	}); err != nil {
		return failRun(r, err)
	}
	var others []string
	for _, n := range nodes {
		if n != primary {
			others = append(others, n)
		}
	}
	var newPrimary string
	if err := s.do("detect", "", func() error {
		return poll(ctx, 200*time.Millisecond, 2*time.Minute, func(ctx context.Context) (bool, error) {
			prim, _, errs := ep.roles(ctx, others)
			if len(prim) > 0 {
				r.Detection = time.Since(t0)
				newPrimary = prim[0]
				s.note("%s is writable after %s", newPrimary, round(r.Detection))
				return true, nil
			}
			if len(errs) > 0 {
				return false, errs[0]
			}
			return false, nil
		})
	}); err != nil {
		return failRun(r, err)
	}
	if err := s.do("recover", "", func() error {
		return poll(ctx, 50*time.Millisecond, 2*time.Minute, func(context.Context) (bool, error) {
			at, ok := w.WritableAgain(t0)
			if ok {
				r.Recovery = at.Sub(t0)
				s.note("first acknowledged write after the fault at +%s", round(r.Recovery))
			}
			return ok, nil
		})
	}); err != nil {
		w.mu.Lock()
		last := w.lastErr
		w.mu.Unlock()
		return failRun(r, fmt.Errorf("%w (last write error: %s)", err, last))
	}
	if err := s.do("count", "on "+newPrimary, func() error {
		// A moment of writes on the new primary, then stop and count.
		time.Sleep(time.Second)
		stop()
		acked, _ := w.Acked()
		r.Acked = len(acked)
		c, err := ep.connect(ctx, addrs, true)
		if err != nil {
			return err
		}
		defer c.Close(closeCtx(ctx))
		present, err := presentIDs(ctx, c, w.Base, w.End())
		if err != nil {
			return err
		}
		missing := MissingWrites(acked, present)
		r.Missing = len(missing)
		r.Notes = append(r.Notes, fmt.Sprintf("%s -> %s", primary, newPrimary))
		if len(missing) > 0 {
			show := missing
			if len(show) > 10 {
				show = show[:10]
			}
			r.Notes = append(r.Notes, fmt.Sprintf("missing ids (first %d): %v", len(show), show))
			if inv.Database.Synchronous {
				return fmt.Errorf("%d acknowledged writes missing with synchronous replication on", len(missing))
			}
		}
		s.note("%d acknowledged writes, %d missing", r.Acked, r.Missing)
		return nil
	}); err != nil {
		return failRun(r, err)
	}
	if err := s.do("heal", fault.String(), heal); err != nil {
		return failRun(r, err)
	}
	if err := s.do("verify", "", func() error {
		return poll(ctx, 2*time.Second, 5*time.Minute, func(ctx context.Context) (bool, error) {
			prim, repl, errs := ep.roles(ctx, nodes)
			if len(prim) > 1 {
				return false, fatal(fmt.Errorf("TWO writable primaries (split brain): %v", prim))
			}
			if len(errs) > 0 {
				return false, errs[0]
			}
			if len(prim) != 1 || !contains(repl, primary) {
				return false, fmt.Errorf("primaries %v, replicas %v: waiting for %s to rejoin as a replica", prim, repl, primary)
			}
			out, err := env.Hosts.RunRoot(ctx, prim[0], hostcmd.Psql(hostcmd.StreamingReplicasSQL)...)
			if err != nil {
				return false, err
			}
			if strings.TrimSpace(string(out)) == "0" {
				return false, fmt.Errorf("%s has no streaming replica yet", prim[0])
			}
			s.note("primary %s, replica(s) %v streaming", prim[0], repl)
			return true, nil
		})
	}); err != nil {
		return failRun(r, err)
	}
	r.OK = true
	return r
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}
