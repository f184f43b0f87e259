package drill

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/belay-sh/belay/failover"
	"github.com/belay-sh/belay/inventory"
)

// siteRun partitions the primary site away, runs the site switch and measures
// it end to end, then reads the newest write on the promoted standby: the
// distance from the partition to that write is the cross-site RPO.
func siteRun(ctx context.Context, env *Env, s *stepper) Run {
	r := Run{Started: time.Now().UTC()}
	inv := env.Inv
	if env.Switch == nil {
		return failRun(r, fmt.Errorf("no site switch wired (a bug in the command)"))
	}
	var cells []siteCells
	if err := s.do("ready", "", func() error {
		if _, err := env.Switch(ctx, env.Progress, failover.ToStandby, true); err != nil {
			return err
		}
		var err error
		cells, err = siteCellShops(ctx, env, SiteShopsPerCell)
		return err
	}); err != nil {
		return failRun(r, err)
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
	for _, n := range inv.Database.Nodes {
		a, err := nodeAddr(inv, n)
		if err != nil {
			return failRun(r, err)
		}
		addrs = append(addrs, a)
	}
	w := &Writer{Endpoint: ep, Addrs: addrs, Base: time.Now().UnixMicro() * 10, Pace: 100 * time.Millisecond}
	// Dedicated cells' data has its own WAL stream, stanza and standby
	// database: measured by writes of its own (sitededicated.go).
	cellWriters, err := dedicatedCellWriters(env, w.Base)
	if err != nil {
		return failRun(r, err)
	}
	lctx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	stop := func() { stopLoad(); wg.Wait() }
	defer stop()
	if err := s.do("load", "", func() error {
		c, err := ep.connect(ctx, addrs, true)
		if err != nil {
			return err
		}
		_, err = c.Exec(ctx, CreateWritesSQL)
		c.Close(closeCtx(ctx))
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() { defer wg.Done(); w.Run(lctx) }()
		for _, cw := range cellWriters {
			if err := cw.create(ctx); err != nil {
				return err
			}
			wg.Add(1)
			go func() { defer wg.Done(); cw.w.Run(lctx) }()
		}
		if err := poll(ctx, 200*time.Millisecond, 20*time.Second, func(context.Context) (bool, error) {
			acked, _ := w.Acked()
			for _, cw := range cellWriters {
				if a, _ := cw.w.Acked(); len(a) < 5 {
					return false, nil
				}
			}
			return len(acked) >= 20, nil
		}); err != nil {
			return err
		}
		// Let at least one archive_timeout pass under load, so the WAL of the
		// first writes can have reached the repository: the newest of them found
		// on the standby then measures the RPO (none found means RPO > the wait).
		wait, err := archiveTimeout(ctx, ep, addrs)
		if err != nil {
			return err
		}
		s.note("writing for %s (archive_timeout + 5 s) before the partition", wait)
		sleepCtx(ctx, wait)
		return ctx.Err()
	}); err != nil {
		return failRun(r, err)
	}
	if err := s.do("archive", "", func() error {
		c, err := ep.connect(ctx, addrs, true)
		if err != nil {
			return err
		}
		defer c.Close(closeCtx(ctx))
		var lag *string
		if err := c.QueryRow(ctx, "SELECT extract(epoch FROM now() - last_archived_time)::text FROM pg_stat_archiver").Scan(&lag); err != nil {
			return err
		}
		if lag == nil {
			r.Notes = append(r.Notes, "no WAL archived yet on the primary")
			return nil
		}
		secs, _ := strconv.ParseFloat(*lag, 64)
		r.Notes = append(r.Notes, fmt.Sprintf("archive lag before the partition %s", round(time.Duration(secs*float64(time.Second)))))
		s.note("last WAL archived %.1f s ago", secs)
		return nil
	}); err != nil {
		return failRun(r, err)
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
		return env.Faults.Heal(hctx)
	}
	defer func() { _ = heal() }()
	if err := s.do("inject", "partition", func() error {
		var err error
		t0, err = env.Faults.Inject(ctx, Fault{Kind: FaultPartition})
		return err
	}); err != nil {
		return failRun(r, err)
	}
	// The load keeps writing to the primary site (still reachable from this
	// machine's lab leg): those writes are the ones a real partition loses.
	if err := s.do("switch", "", func() error {
		_, err := env.Switch(ctx, env.Progress, failover.ToStandby, false)
		r.Recovery = time.Since(t0)
		return err
	}); err != nil {
		return failRun(r, err)
	}
	stop()
	var held []int64 // acknowledged writes the promoted standby holds, plus one written there
	if err := s.do("verify", "", func() error {
		sb := inv.Database.Standby
		h := inv.Host(sb)
		if h == nil {
			return fmt.Errorf("standby database %q not in the inventory", sb)
		}
		svia, err := tunnelHost(ctx, env, inventory.Standby)
		if err != nil {
			return err
		}
		sep := *ep
		sep.Via = svia
		c, err := sep.connect(ctx, []string{net.JoinHostPort(h.PrivateAddress, strconv.Itoa(inv.Database.Port))}, true)
		if err != nil {
			return fmt.Errorf("promoted standby not writable: %w", err)
		}
		defer c.Close(closeCtx(ctx))
		acked, times := w.Acked()
		present, err := presentIDs(ctx, c, w.Base, w.End())
		if err != nil {
			return err
		}
		var newest time.Time
		lost := 0
		for i, id := range acked {
			if present[id] {
				if times[i].After(newest) {
					newest = times[i]
				}
			} else if times[i].Before(t0) {
				lost++
			}
		}
		r.Acked, r.Missing = len(acked), len(MissingWrites(acked, present))
		for _, id := range acked {
			if present[id] {
				held = append(held, id)
			}
		}
		// A write the standby site takes while it serves: the way back must keep it.
		marker := w.End() + 1
		if _, err := c.Exec(ctx, InsertWriteSQL, marker); err != nil {
			return fmt.Errorf("write on the promoted standby: %w", err)
		}
		held = append(held, marker)
		if newest.IsZero() {
			return fmt.Errorf("none of the %d acknowledged writes reached the standby site", len(acked))
		}
		rpo := t0.Sub(newest)
		if rpo < 0 {
			rpo = 0
		}
		r.RPO = rpo
		r.Notes = append(r.Notes, fmt.Sprintf("cross-site RPO %s (newest write on the standby committed %s before the partition); %d writes acknowledged before the partition are not on the standby", round(rpo), round(rpo), lost))
		s.note("RPO %s, switch %s", round(rpo), round(r.Recovery))
		for _, cw := range cellWriters {
			note, err := cw.verifyStandby(ctx, inv, t0)
			if err != nil {
				return err
			}
			r.Notes = append(r.Notes, note)
			s.note("%s", note)
		}
		// Apps with cells: shops mapped before the fault answer through the
		// standby router, each from its own cell (its standby server).
		for _, sc := range cells {
			addr, err := hostHTTP(inv, sc.app.Router.Standby)
			if err != nil {
				return err
			}
			note, err := askCellShops(ctx, addr, sc.shops, time.Minute)
			if err != nil {
				return fmt.Errorf("app %s on the standby site: %w", sc.app.Name, err)
			}
			r.Notes = append(r.Notes, fmt.Sprintf("app %s on the standby site: %s (the standby router)", sc.app.Name, note))
			s.note("app %s: %s", sc.app.Name, note)
		}
		return nil
	}); err != nil {
		return failRun(r, err)
	}
	if err := s.do("heal", "partition", heal); err != nil {
		return failRun(r, err)
	}
	// Back to the primary site, so the stack ends the drill as it began (and
	// --repeat can run again): the way back must keep every write the standby
	// site held, including the one it took while serving.
	var facts map[string]string
	var back time.Duration
	if err := s.do("back", "", func() error {
		start := time.Now()
		var err error
		facts, err = env.Switch(ctx, env.Progress, failover.ToPrimary, false)
		back = time.Since(start)
		return err
	}); err != nil {
		return failRun(r, err)
	}
	if err := s.do("verify-back", "", func() error {
		c, err := ep.connect(ctx, addrs, true)
		if err != nil {
			return fmt.Errorf("the primary site is not writable after the way back: %w", err)
		}
		defer c.Close(closeCtx(ctx))
		present, err := presentIDs(ctx, c, w.Base, held[len(held)-1]+1)
		if err != nil {
			return err
		}
		missing := MissingWrites(held, present)
		if len(missing) > 0 {
			return fmt.Errorf("%d of the %d writes the standby site held are missing on the primary site after the way back (first: %d)", len(missing), len(held), missing[0])
		}
		if _, err := c.Exec(ctx, InsertWriteSQL, held[len(held)-1]+1); err != nil {
			return fmt.Errorf("write on the new primary: %w", err)
		}
		for _, cw := range cellWriters {
			note, err := cw.verifyBack(ctx)
			if err != nil {
				return err
			}
			r.Notes = append(r.Notes, note)
		}
		for _, sc := range cells {
			note, err := askCellShops(ctx, net.JoinHostPort(sc.app.Router.VIP, "80"), sc.shops, time.Minute)
			if err != nil {
				return fmt.Errorf("app %s after the way back: %w", sc.app.Name, err)
			}
			r.Notes = append(r.Notes, fmt.Sprintf("app %s back on the primary site: %s (the router VIP)", sc.app.Name, note))
		}
		r.Notes = append(r.Notes, fmt.Sprintf("way back (failover site --to primary) %s, apps down %s; all %d writes the standby site held are on the primary site again", round(back), facts["downtime"], len(held)))
		s.note("way back %s (downtime %s), %d/%d standby writes kept", round(back), facts["downtime"], len(held), len(held))
		return nil
	}); err != nil {
		return failRun(r, err)
	}
	r.OK = true
	return r
}

// archiveTimeout reads the primary's archive_timeout and adds 5 s.
func archiveTimeout(ctx context.Context, ep *pgEndpoint, addrs []string) (time.Duration, error) {
	c, err := ep.connect(ctx, addrs, true)
	if err != nil {
		return 0, err
	}
	defer c.Close(closeCtx(ctx))
	var secs int
	if err := c.QueryRow(ctx, "SELECT setting::int FROM pg_settings WHERE name = 'archive_timeout'").Scan(&secs); err != nil {
		return 0, fmt.Errorf("archive_timeout: %w", err)
	}
	if secs <= 0 || secs > 600 {
		return 0, fmt.Errorf("archive_timeout is %d s: the cross-site RPO is unbounded (set belay:backups.archiveTimeoutSeconds)", secs)
	}
	return time.Duration(secs)*time.Second + 5*time.Second, nil
}
