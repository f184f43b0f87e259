package opsenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/belay-sh/belay/deploy"
	"github.com/belay-sh/belay/deploy/lease"
	"github.com/belay-sh/belay/hostrelease"
	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/remote"
)

// OpsTTL is the lease life of operator commands: a site drill cuts the lease
// host off on purpose for minutes, and must not be cancelled for it.
const OpsTTL = time.Hour

// LeaseOptions say which leases an operator command takes, as whom.
type LeaseOptions struct {
	// Apps are the apps whose leases are taken (sorted, so two commands never
	// wait on each other crosswise).
	Apps []string
	// Cells limits the leases of an app with cells to these cells (a command
	// acting on some cells only); empty: every cell's lease.
	Cells  []string
	Action string // "drill app-node/kill-vm", "failover site --to standby"
	Actor  deploy.Actor
	// LockDir keeps this machine's proof-of-life locks (see lease.LocalLock).
	LockDir string
	// SkipUnreachable goes on without the lease of an app whose lease host
	// cannot be reached (a site switch away from a dead site); a lease HELD by
	// someone is still a refusal.
	SkipUnreachable bool
	Progress        io.Writer
	// Base overrides /srv (tests).
	Base string
	TTL  time.Duration
}

// SiteApps is every app of the inventory: site-wide operations take them all.
func SiteApps(inv *inventory.Inventory) []string {
	var out []string
	for _, a := range inv.Apps {
		out = append(out, a.Name)
	}
	return out
}

// HoldLeases takes the apps' leases (fencing each app's servers, like a
// deploy; for an app with cells, every cell's lease: see deploy.LeaseTargets)
// and keeps renewing them. The returned context ends when any lease is lost;
// release frees them all. A lease held by a deploy refuses the command,
// naming the holder (and the cell).
func HoldLeases(ctx context.Context, r remote.Runner, inv *inventory.Inventory, o LeaseOptions) (context.Context, func(), error) {
	ctx, _, release, err := HoldFenced(ctx, r, inv, o)
	return ctx, release, err
}

// HoldFenced is HoldLeases that also returns r fenced by the leases it took:
// every command the operator command then sends to a server of a held app is
// refused by that host once the lease is lost (see Fenced).
func HoldFenced(ctx context.Context, r remote.Runner, inv *inventory.Inventory, o LeaseOptions) (context.Context, *Fenced, func(), error) {
	fenced := &Fenced{Runner: r}
	apps := append([]string(nil), o.Apps...)
	sort.Strings(apps)
	ttl := o.TTL
	if ttl == 0 {
		ttl = OpsTTL
	}
	note := func(format string, a ...any) {
		if o.Progress != nil {
			fmt.Fprintf(o.Progress, format+"\n", a...)
		}
	}
	var dones []func()
	releaseAll := func() {
		for i := len(dones) - 1; i >= 0; i-- {
			dones[i]()
		}
	}
	for _, name := range apps {
		// An app with cells has one lease per cell, on that cell's first
		// server, taken in cell-name order like a cells deploy's.
		targets, err := deploy.LeaseTargets(inv, name)
		if err != nil {
			releaseAll()
			return nil, nil, nil, err
		}
		for _, tg := range targets {
			if tg.Cell != "" && len(o.Cells) > 0 && !slices.Contains(o.Cells, tg.Cell) {
				continue
			}
			what := "app " + name
			if tg.Cell != "" {
				what += " cell " + tg.Cell
			}
			app := tg.App
			servers := append([]string(nil), app.Hosts...)
			if app.Standby != "" {
				servers = append(servers, app.Standby)
			}
			h := &lease.Holder{
				Exec: RunnerExec(r), Layout: hostrelease.Layout{App: name, Base: o.Base}, LeaseHost: app.Hosts[0], Servers: servers,
				Owner: lease.Owner{Who: o.Actor.Who, PID: o.Actor.PID, Host: o.Actor.From, CI: o.Actor.CI, Action: o.Action},
				TTL:   ttl, Note: note,
			}
			if o.LockDir != "" {
				h.Local = &lease.LocalLock{Dir: o.LockDir}
			}
			if err := h.Take(ctx); err != nil {
				var held *lease.HeldError
				if o.SkipUnreachable && !errors.As(err, &held) {
					note("WARNING: no lease for %s (%v): going on without it, its lease host is out of reach", what, err)
					continue
				}
				releaseAll()
				if tg.Cell != "" {
					return nil, nil, nil, fmt.Errorf("cell %s: %w", tg.Cell, err)
				}
				return nil, nil, nil, err
			}
			var done func()
			ctx, done = h.Hold(ctx)
			dones = append(dones, done)
			fenced.add(servers, h.Fence())
			note("holding the lease of %s for %s", what, o.Action)
		}
	}
	return ctx, fenced, releaseAll, nil
}

// RunnerExec runs lease commands through the operator commands' SSH runner.
func RunnerExec(r remote.Runner) lease.Exec {
	return func(ctx context.Context, host, cmd string) ([]byte, int, error) {
		out, err := r.Run(ctx, host, cmd)
		if err == nil {
			return out, 0, nil
		}
		var ee *ssh.ExitError
		if errors.As(err, &ee) {
			return out, ee.ExitStatus(), err
		}
		var ce interface{ ExitCode() int }
		if errors.As(err, &ce) {
			return out, ce.ExitCode(), err
		}
		return out, -1, err
	}
}
