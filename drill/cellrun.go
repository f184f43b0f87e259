package drill

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/belay-sh/belay/hostcmd"
	"github.com/belay-sh/belay/inventory"
)

// SupportedCell reports whether the cell drill with kill can run against env.
// The app kill runs anywhere (outside the lab it stops nginx, which the
// roles' sudoers allow); the database kill needs root psql on the data nodes
// with statements no sudoers line grants today, so it is lab-only.
func SupportedCell(env *Env, kill string) error {
	if env.Lab || kill == CellKillApp {
		return nil
	}
	return fmt.Errorf("drill cell --kill db outside the lab: %w; it runs ALTER DATABASE ... ALLOW_CONNECTIONS as postgres on the primary, which the data nodes' sudoers (/etc/sudoers.d/belay-ops) do not allow. Run it on the lab, or use --kill app", ErrNoFaults)
}

// ExecuteCell runs the cell drill once and returns its report (also when the run failed).
func ExecuteCell(ctx context.Context, env *Env, opt CellOptions) (*Report, error) {
	kill, err := CheckCellKill(opt.Kill)
	if err != nil {
		return nil, err
	}
	opt.Kill = kill
	if opt.Duration == 0 {
		opt.Duration = CellDuration
	}
	if opt.Duration < time.Second || opt.Duration > time.Hour {
		return nil, fmt.Errorf("--duration %s: expected 1s to 1h", opt.Duration)
	}
	if opt.Path == "" {
		opt.Path = "/"
	}
	if !strings.HasPrefix(opt.Path, "/") || strings.ContainsAny(opt.Path, " \t\r\n#") {
		return nil, fmt.Errorf("--path %q: expected an absolute path such as /data?x=1", opt.Path)
	}
	if opt.Interval == 0 {
		opt.Interval = CellLoadInterval
	}
	if opt.RecoverTimeout == 0 {
		opt.RecoverTimeout = CellRecoverTimeout
	}
	if err := SupportedCell(env, kill); err != nil {
		return nil, err
	}
	steps, err := CellSteps(env.Inv, opt.App, opt.Cell, kill, env.Lab)
	if err != nil {
		return nil, err
	}
	if env.Progress == nil {
		env.Progress = io.Discard
	}
	if env.Settle == 0 {
		env.Settle = 3 * time.Second
	}
	name := string(Cell) + "/" + kill
	rep := &Report{Drill: name, Target: env.Inv.Stack, Started: time.Now().UTC(), Steps: StepTitles(steps)}
	s := &stepper{drill: name, steps: steps, out: env.Progress, run: 1}
	r := cellRun(ctx, env, s, opt)
	rep.Runs = append(rep.Runs, r)
	status := "ok"
	if !r.OK {
		status = "FAILED: " + r.Error
	}
	fmt.Fprintf(env.Progress, "drill %s: recovery %s: %s\n", name, round(r.Recovery), status)
	rep.Finished = time.Now().UTC()
	rep.Summarize()
	return rep, ctx.Err()
}

func cellRun(ctx context.Context, env *Env, s *stepper, opt CellOptions) Run {
	r := Run{Started: time.Now().UTC()}
	a, c, err := cellTarget(env.Inv, opt.App, opt.Cell)
	if err != nil {
		return failRun(r, err)
	}
	var cells []string
	for _, x := range a.Cells {
		cells = append(cells, x.Name)
	}
	var shops []CellShop
	if err := s.do("shops", a.Router.Hosts[0], func() error {
		out, err := env.Hosts.Run(ctx, a.Router.Hosts[0], MappingCommand(a.Name))
		if err != nil {
			return fmt.Errorf("read the mapping on router %s: %w", a.Router.Hosts[0], err)
		}
		var notes []string
		if shops, notes, err = SelectCellShops(out, a, c.Name, opt.Shops, CellSampleShops); err != nil {
			return err
		}
		for _, n := range notes {
			s.note("%s", n)
			r.Notes = append(r.Notes, n)
		}
		s.note("%d shops in the load", len(shops))
		return nil
	}); err != nil {
		return failRun(r, err)
	}
	if err := s.do("whole", "", func() error { return cellsWhole(ctx, env, a, a.Cells, time.Minute) }); err != nil {
		return failRun(r, err)
	}
	url := opt.URL
	if url == "" {
		url = "http://" + a.Router.VIP
	}
	l := &cellLoad{url: strings.TrimSuffix(url, "/") + opt.Path, shops: shops, interval: opt.Interval, timeout: ProbeTimeout}
	var lr *loadRun
	defer func() {
		if lr != nil {
			lr.abandon()
		}
	}()
	var with []string
	for _, x := range cells {
		for _, sh := range shops {
			if sh.Cell == x {
				with = append(with, x)
				break
			}
		}
	}
	if err := s.do("load", l.url, func() error {
		lr = startCellLoad(ctx, l)
		return cellBaseline(ctx, l, with)
	}); err != nil {
		return failRun(r, fmt.Errorf("the router does not serve every cell before the fault: %w", err))
	}
	var w CellWindow
	var heal func() error
	var injErr error
	if opt.Kill == CellKillApp {
		heal, injErr = injectCellApp(ctx, env, s, c, l, &w, &r)
	} else {
		heal, injErr = injectCellDB(ctx, env, s, a, c, &w)
	}
	// Whatever happens from here on, what was injected is undone once.
	healed := false
	healOnce := func() error {
		if healed {
			return nil
		}
		healed = true
		return heal()
	}
	defer func() { _ = healOnce() }()
	if injErr != nil {
		return failRun(r, injErr)
	}
	if err := s.do("hold", opt.Duration.String(), func() error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Until(w.Fault.Add(opt.Duration))):
			return nil
		}
	}); err != nil {
		return failRun(r, err)
	}
	healErr := s.do("heal", "", func() error {
		w.Heal = time.Now()
		if err := healOnce(); err != nil {
			return err
		}
		if opt.Kill == CellKillApp {
			return cellsWhole(ctx, env, a, []inventory.Cell{*c}, 4*time.Minute)
		}
		return nil
	})
	recErr := s.do("recover", "", func() error {
		return poll(ctx, 100*time.Millisecond, opt.RecoverTimeout, func(context.Context) (bool, error) {
			at, ok := CellRecovery(l.Results(), c.Name, w.Heal)
			if ok {
				s.note("cell %s answers again %s after the heal", c.Name, round(at.Sub(w.Heal)))
			}
			return ok, nil
		})
	})
	var f *CellFigures
	_ = s.do("verify", "", func() error {
		lr.finish()
		f = AnalyzeCells(l.Results(), shops, cells, c.Name, opt.Kill, w)
		lr = nil
		for _, st := range f.Cells {
			s.note("cell %s: %d requests, %.2f %% answered, %d clean 503, errors: %s", st.Cell, st.Requests, st.SuccessRate, st.CleanDown, reasonList(st.Reasons, 0))
		}
		if !f.OK() {
			return fmt.Errorf("%s", strings.Join(f.Failures, "; "))
		}
		return nil
	})
	r.Cells = f
	r.Detection = f.FirstCleanDown
	r.Recovery = f.Recovery
	switch {
	case healErr != nil:
		return failRun(r, healErr)
	case !f.OK():
		return failRun(r, fmt.Errorf("%s", strings.Join(f.Failures, "; ")))
	case recErr != nil:
		return failRun(r, recErr)
	}
	r.OK = true
	return r
}

// injectCellApp kills both app servers of cell c (lab: power-off; elsewhere:
// stop nginx) and waits for the router's first clean 503. heal undoes
// whatever was injected, also when injecting failed half-way.
func injectCellApp(ctx context.Context, env *Env, s *stepper, c *inventory.Cell, l *cellLoad, w *CellWindow, r *Run) (heal func() error, err error) {
	heal = func() error {
		hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
		defer cancel()
		for _, h := range c.Hosts {
			env.Hosts.Forget(h)
		}
		return env.Faults.Heal(hctx)
	}
	err = s.do("inject", strings.Join(c.Hosts, ", "), func() error {
		for i, h := range c.Hosts {
			f := Fault{Kind: FaultKill, Host: h}
			if !env.Lab {
				f = Fault{Kind: FaultStopService, Host: h, Service: hostcmd.NginxUnit}
			}
			t, err := env.Faults.Inject(ctx, f)
			if i == 0 {
				w.Fault = t
			}
			if err != nil {
				return err
			}
			if f.Kind == FaultKill {
				env.Hosts.Forget(h)
			}
		}
		w.Down = time.Now()
		return nil
	})
	if err != nil {
		return heal, err
	}
	if err := s.do("confirm", "", func() error {
		return poll(ctx, 50*time.Millisecond, CellConfirmTimeout, func(context.Context) (bool, error) {
			for _, x := range l.Results() {
				if x.Cell == c.Name && x.Class == CellDown && !x.End.Before(w.Fault) {
					s.note("first clean 503 for %s after %s", x.Shop, round(x.End.Sub(w.Fault)))
					return true, nil
				}
			}
			return false, fmt.Errorf("no clean 503 (X-Belay-Router: cell-down) for cell %s's shops yet", c.Name)
		})
	}); err != nil {
		// Go on: the account after the heal says what the shops got instead.
		r.Notes = append(r.Notes, err.Error())
	}
	return heal, nil
}

// CellHealTimeout bounds the heal of a database kill: the unblock is retried
// on whichever node is the primary until one takes it.
var CellHealTimeout = 3 * time.Minute

// injectCellDB blocks cell c's database on the primary and confirms only it
// refuses connections. heal unblocks it (nothing, when nothing was blocked)
// on the data nodes' primary at heal time: the block is a catalog change, so
// it replicates, and when pg_auto_failover fails over during the fault (a
// cell's app retrying against its blocked database can load the primary
// enough for the monitor to call it unhealthy: seen on a dedicated pair in
// the lab) the new primary holds it too, while the old one may be shutting
// down or read-only. Unblocking only where it was blocked would leave the
// cell down after the drill.
func injectCellDB(ctx context.Context, env *Env, s *stepper, a *inventory.App, c *inventory.Cell, w *CellWindow) (heal func() error, err error) {
	var primary string
	nodes := cellDBNodes(env.Inv, c)
	heal = func() error {
		if primary == "" {
			return nil
		}
		_, unblock := CellDBCommands(c.Database)
		return poll(context.WithoutCancel(ctx), time.Second, CellHealTimeout, func(ctx context.Context) (bool, error) {
			p, err := findPrimary(ctx, env, nodes)
			if err != nil {
				return false, fmt.Errorf("unblock database %s: %w", c.Database, err)
			}
			uctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			if _, err := env.Hosts.RunRoot(uctx, p, unblock...); err != nil {
				return false, fmt.Errorf("unblock database %s on %s: %w", c.Database, p, err)
			}
			if p != primary {
				s.note("the data nodes failed over during the fault (primary %s, was %s): unblocked there", p, primary)
			}
			return true, nil
		})
	}
	err = s.do("inject", c.Database, func() error {
		p, err := findPrimary(ctx, env, cellDBNodes(env.Inv, c))
		if err != nil {
			return err
		}
		s.note("primary: %s", p)
		block, _ := CellDBCommands(c.Database)
		// From here on the block may have taken, even when the command fails.
		primary = p
		w.Fault = time.Now()
		if _, err := env.Hosts.RunRoot(ctx, primary, block...); err != nil {
			return fmt.Errorf("block database %s on %s: %w", c.Database, primary, err)
		}
		w.Down = time.Now()
		return nil
	})
	if err != nil {
		return heal, err
	}
	return heal, s.do("confirm", c.Database, func() error { return confirmDBBlocked(ctx, env, primary, a, c) })
}

// cellsWhole waits until every app server of cells runs keepalived and nginx
// with the app healthy, then lets keepalived settle.
func cellsWhole(ctx context.Context, env *Env, a *inventory.App, cells []inventory.Cell, timeout time.Duration) error {
	check := cellAppCheck(a)
	err := poll(ctx, time.Second, timeout, func(ctx context.Context) (bool, error) {
		for _, c := range cells {
			for _, h := range c.Hosts {
				cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				_, err := env.Hosts.Run(cctx, h, check)
				cancel()
				if err != nil {
					return false, fmt.Errorf("cell %s, %s: %w", c.Name, h, err)
				}
			}
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("app servers not whole: %w", err)
	}
	time.Sleep(env.Settle)
	return nil
}

// cellDBNodes are the data nodes holding cell c's database: its own pair
// when it has one (a dedicated cell), else the stack's.
func cellDBNodes(inv *inventory.Inventory, c *inventory.Cell) []string {
	if c.Dedicated() {
		return c.DBNodes
	}
	return inv.Database.Nodes
}

// findPrimary asks every data node of nodes, as root, whether it is in recovery.
func findPrimary(ctx context.Context, env *Env, nodes []string) (string, error) {
	var found []string
	var errs []string
	for _, n := range nodes {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		out, err := env.Hosts.RunRoot(cctx, n, hostcmd.Psql(hostcmd.InRecoverySQL)...)
		cancel()
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", n, err))
			continue
		}
		if strings.TrimSpace(string(out)) == "f" {
			found = append(found, n)
		}
	}
	if len(found) != 1 {
		return "", fmt.Errorf("expected exactly one primary among the data nodes %v, found %v (errors: %s)", nodes, found, strings.Join(errs, "; "))
	}
	return found[0], nil
}

// confirmDBBlocked checks the database kill took: the killed cell's database
// refuses a connection on the primary, every other cell's on the same data
// nodes accepts one (a dedicated cell's pair holds its database alone).
func confirmDBBlocked(ctx context.Context, env *Env, primary string, a *inventory.App, killed *inventory.Cell) error {
	for _, x := range a.Cells {
		if x.Name != killed.Name && (x.Dedicated() || killed.Dedicated()) {
			continue
		}
		_, err := env.Hosts.RunRoot(ctx, primary, CellDBConnect(x.Database)...)
		switch {
		case x.Name == killed.Name && err == nil:
			return fmt.Errorf("database %s of cell %s still accepts connections on %s", x.Database, x.Name, primary)
		case x.Name != killed.Name && err != nil:
			return fmt.Errorf("database %s of cell %s refuses connections on %s, expected only %s's to: %w", x.Database, x.Name, primary, killed.Database, err)
		}
	}
	return nil
}
