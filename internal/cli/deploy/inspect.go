package deploy

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/belay-sh/belay/deploy"
	"github.com/belay-sh/belay/hostrelease"
	"github.com/belay-sh/belay/hostrelease/journal"
	"github.com/belay-sh/belay/internal/cli"
)

// RollbackOptions are `belay rollback`'s inputs.
type RollbackOptions struct {
	deps
	Common
	To          string
	Abandon     bool
	Wait        bool
	WaitTimeout time.Duration
	Webhooks    []string
}

// NewCmdRollback returns `belay rollback`.
func NewCmdRollback(f *cli.Factory) *cobra.Command {
	o := &RollbackOptions{deps: depsOf(f)}
	cmd := &cobra.Command{
		Use:   "rollback",
		Short: "Put every app host back on the previous known-good release, now",
		Long: `Move every app server back to the last known-good release other than the
running one (or --to RELEASE). The release is still on disk, so nothing is
uploaded and there is no analysis: the old release starts as the canary, takes
all traffic, "current" switches back, the stable unit restarts, the canary stops.

If a deploy died mid-rollout, rollback first converges every host (see
docs/deploy.md) — often that alone is the rollback.

An app with cells: every chosen cell (--cell, default all) goes back to its
own previous release, all at once, each under its own lease. Refused before
any cell is touched when the chosen cells run different releases (name them
with --cell, or one release with --to), when a cell's servers disagree or
cannot be read, when another run's rollout is under way in a cell, when
--to is missing on a server, or when some cells have a paused or died rollout
(undone by their rollback) and others none. --json: {"app", "action", "result", "cells":
[{"cell", "outcome", "error"}]}.`,
		Example: `  belay rollback --app shop
  belay rollback --app shop --to v40 --json
  belay rollback --app shop --abandon   # CI: drop a paused canary, else no-op
  belay rollback --app shops --cell c2  # app with cells: only cell c2`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return early(o.deps, "rollback", o.App, o.To, runRollback(cmd.Context(), o))
		},
	}
	o.Common.flags(cmd)
	o.Common.skipStandbyFlag(cmd)
	o.Common.drainFlag(cmd)
	o.Common.cellFlag(cmd, "roll back")
	cmd.Flags().StringVar(&o.To, "to", "", "release to go to (default: the last known-good before the running one)")
	cmd.Flags().BoolVar(&o.Abandon, "abandon", false, "only undo a paused (--stop-after) or unfinished rollout; do nothing if there is none")
	cmd.Flags().BoolVar(&o.Wait, "wait", false, "wait for another deploy's lease instead of failing")
	cmd.Flags().DurationVar(&o.WaitTimeout, "wait-timeout", 30*time.Minute, "give up waiting for the lease after this long")
	webhookFlag(cmd, &o.Webhooks)
	cmd.MarkFlagsMutuallyExclusive("to", "abandon")
	return cmd
}

func runRollback(ctx context.Context, o *RollbackOptions) error {
	if err := o.checkDrain(); err != nil {
		return err
	}
	if o.To != "" {
		if err := hostrelease.ValidateID(o.To); err != nil {
			return fmt.Errorf("--to: %w", err)
		}
	}
	nt, err := newNotifier(o.deps, o.Webhooks)
	if err != nil {
		return err
	}
	s, err := open(ctx, o.deps, &o.Common, o.IO.ErrOut)
	if err != nil {
		return err // early() annotates it
	}
	defer s.close()
	s.d.Wait, s.d.WaitTimeout = o.Wait, o.WaitTimeout
	s.d.Notify, s.d.Stack = nt, s.d.Inv.Stack
	defer nt.Close(10 * time.Second)
	names, ds, err := cellDeployers(s, &o.Common)
	if err != nil {
		return err
	}
	if names != nil {
		return runRollbackCells(ctx, o, names, ds)
	}
	var out *deploy.Outcome
	if o.Abandon {
		out, err = s.d.Abandon(ctx)
	} else {
		out, err = s.d.Rollback(ctx, o.To)
	}
	return report(o.deps, o.JSON, "rollback", out, err)
}

// ListOptions are the read-only commands' inputs.
type ListOptions struct {
	deps
	Common
	Lines int
}

// NewCmdStatus returns `belay status`.
func NewCmdStatus(f *cli.Factory) *cobra.Command {
	o := &ListOptions{deps: depsOf(f)}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show what each app host runs: release, canary, traffic share, health, and the app's lease",
		Long: `Show what each app server runs, and whether a deploy is under way: a journal
left "running" is RUNNING while a run holds the app's lease (owner, since,
expiry shown), and DIED UNFINISHED when no live lease exists (the deployer was
killed or lost; the next deploy or rollback converges the hosts). --json gives
each host's "lease" (on the lease host) and "rollout" (running, died, paused).

For an app with cells: one row per cell (its VIP and the server holding it,
its release, healthy or why not), then every server's row with its cell;
--json gives {"app", "cells": [{cell, vip, vipHolders, hosts, release,
healthy, problems, states}]}. Exit status 1 when a cell is unhealthy.`,
		Example: `  belay status --app shop
  belay status --app shop --json | jq '.[].current'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runStatus(cmd.Context(), o) },
	}
	o.Common.flags(cmd)
	o.Common.skipStandbyFlag(cmd)
	return cmd
}

func runStatus(ctx context.Context, o *ListOptions) error {
	s, err := open(ctx, o.deps, &o.Common, io.Discard)
	if err != nil {
		return err
	}
	defer s.close()
	if a := s.d.Inv.App(s.d.App); a != nil && len(a.Cells) > 0 {
		return runCellStatus(ctx, o, s)
	}
	states, err := s.d.States(ctx)
	if err != nil {
		return err
	}
	if o.JSON {
		// Same exit status as the text form: 1 when a host could not be read
		// (its "error" field says why), so scripts need not parse to notice.
		if err := cli.PrintJSON(o.IO.Out, states); err != nil {
			return err
		}
		for _, st := range states {
			if st.Error != "" {
				return cli.ExitError{Code: 1}
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(o.IO.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tCURRENT\tSTABLE\tHEALTH\tCANARY\tCANARY UNIT\tCANARY HEALTH\tCANARY TRAFFIC\tLAST DEPLOY")
	failed := false
	for _, st := range states {
		if st.Error != "" {
			failed = true
			fmt.Fprintf(tw, "%s\tunreachable: %s\n", st.Host, st.Error)
			continue
		}
		host := st.Host
		if st.Standby {
			host += " (standby)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", host, dash(st.Current), dash(st.Stable), dash(st.Health),
			dash(st.Canary), dash(st.CanaryUnit), dash(st.CanaryHealth), st.CanaryShare, lastDeploy(st.Journal))
	}
	tw.Flush()
	for _, st := range states {
		if st.Maintenance != "" {
			fmt.Fprintf(o.IO.Out, "MAINTENANCE %s: %s (belay maintenance off %s)\n", st.Host, st.Maintenance, s.d.App)
		}
	}
	for _, st := range states {
		if st.Lease != nil {
			fmt.Fprintf(o.IO.Out, "lease (on %s): %s\n", st.Host, st.Lease)
		}
	}
	for _, st := range states {
		j := st.Journal
		switch st.Rollout {
		case "paused":
			fmt.Fprintf(o.IO.Out, "%s: rollout of %s PAUSED after %s (deploy %s); deploy the same release to continue, or roll back\n",
				st.Host, j.Target, j.Step, j.DeployID)
		case "running":
			fmt.Fprintf(o.IO.Out, "%s: %s of %s RUNNING (deploy %s by %s since %s, step %q done, %q under way); the lease is held\n",
				st.Host, j.Kind, j.Target, j.DeployID, j.By, j.StartedAt.UTC().Format(time.RFC3339), j.Step, j.InProgress)
		case "died":
			fmt.Fprintf(o.IO.Out, "%s: %s of %s DIED UNFINISHED (deploy %s by %s, last step %q, no live lease); the next deploy or rollback converges it\n",
				st.Host, j.Kind, j.Target, j.DeployID, j.By, j.Step)
		}
	}
	if failed {
		return cli.ExitError{Code: 1}
	}
	return nil
}

func lastDeploy(j *journal.Record) string {
	if j == nil {
		return "-"
	}
	return fmt.Sprintf("%s %s %s %s", j.Kind, j.Target, j.Status, j.UpdatedAt.UTC().Format(time.RFC3339))
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// NewCmdReleases returns `belay releases`.
func NewCmdReleases(f *cli.Factory) *cobra.Command {
	o := &ListOptions{deps: depsOf(f)}
	cmd := &cobra.Command{
		Use:   "releases",
		Short: "List the releases on each app host (current, previous, known-good)",
		Long: `List the releases on disk on each app server, marked current, canary,
previous and known-good. An app with cells: each chosen cell's servers
(--cell, default every cell), each row with its cell ("cell" in --json).`,
		Example: `  belay releases --app shop
  belay releases --app shops --cell c1,c2 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runReleases(cmd.Context(), o) },
	}
	o.Common.flags(cmd)
	o.Common.skipStandbyFlag(cmd)
	o.Common.cellFlag(cmd, "list")
	return cmd
}

// HostReleases is one host's releases for --json.
type HostReleases struct {
	Host string `json:"host"`
	// Cell is the host's cell, for an app with cells.
	Cell     string         `json:"cell,omitempty"`
	Releases []ReleaseEntry `json:"releases"`
	Error    string         `json:"error,omitempty"`
}

// ReleaseEntry is one release directory and its marks.
type ReleaseEntry struct {
	ID    string   `json:"id"`
	Marks []string `json:"marks,omitempty"`
}

func releasesOf(st *deploy.HostState) HostReleases {
	hr := HostReleases{Host: st.Host, Error: st.Error}
	known := map[string]bool{}
	prev := ""
	if st.Journal != nil {
		for _, k := range st.Journal.KnownGood {
			known[k] = true
		}
		if st.Journal.Target == st.Current {
			prev = st.Journal.Previous
		}
	}
	for _, r := range st.Releases {
		e := ReleaseEntry{ID: r}
		if r == st.Current {
			e.Marks = append(e.Marks, "current")
		}
		if r == st.Canary {
			e.Marks = append(e.Marks, "canary")
		}
		if r == prev {
			e.Marks = append(e.Marks, "previous")
		}
		if known[r] {
			e.Marks = append(e.Marks, "known-good")
		}
		hr.Releases = append(hr.Releases, e)
	}
	return hr
}

func runReleases(ctx context.Context, o *ListOptions) error {
	s, err := open(ctx, o.deps, &o.Common, io.Discard)
	if err != nil {
		return err
	}
	defer s.close()
	names, ds, err := cellDeployers(s, &o.Common)
	if err != nil {
		return err
	}
	if names != nil {
		return runReleasesCells(ctx, o, names, ds)
	}
	states, err := s.d.States(ctx)
	if err != nil {
		return err
	}
	var out []HostReleases
	for _, st := range states {
		out = append(out, releasesOf(st))
	}
	return printReleases(o, out)
}

func printReleases(o *ListOptions, out []HostReleases) error {
	if o.JSON {
		if err := cli.PrintJSON(o.IO.Out, out); err != nil {
			return err
		}
		for _, hr := range out {
			if hr.Error != "" {
				return cli.ExitError{Code: 1}
			}
		}
		return nil
	}
	failed := false
	for _, hr := range out {
		if hr.Cell != "" {
			fmt.Fprintf(o.IO.Out, "%s (cell %s):\n", hr.Host, hr.Cell)
		} else {
			fmt.Fprintf(o.IO.Out, "%s:\n", hr.Host)
		}
		if hr.Error != "" {
			failed = true
			fmt.Fprintf(o.IO.Out, "  unreachable: %s\n", hr.Error)
			continue
		}
		if len(hr.Releases) == 0 {
			fmt.Fprintln(o.IO.Out, "  (no releases)")
		}
		for _, r := range hr.Releases {
			m := ""
			if len(r.Marks) > 0 {
				m = "  (" + strings.Join(r.Marks, ", ") + ")"
			}
			fmt.Fprintf(o.IO.Out, "  %s%s\n", r.ID, m)
		}
	}
	if failed {
		return cli.ExitError{Code: 1}
	}
	return nil
}

// NewCmdAudit returns `belay audit`.
func NewCmdAudit(f *cli.Factory) *cobra.Command {
	o := &ListOptions{deps: depsOf(f)}
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Show who deployed or rolled back what, when, from where, and how it ended",
		Long: `Print the app's audit log, kept on every app host in /srv/<app>/.belay/audit.log
(JSON lines, appended by every deploy, rollback and recovery).

An app with cells: each chosen cell's log (--cell, default every cell; each
cell keeps its own), merged by time with a CELL column; --json entries carry
"cell". -n is the last N entries of the merged log.`,
		Example: `  belay audit --app shop -n 20
  belay audit --app shop --json
  belay audit --app shops --cell c2`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runAudit(cmd.Context(), o) },
	}
	o.Common.flags(cmd)
	cmd.Flags().IntVarP(&o.Lines, "lines", "n", 50, "show the last N entries")
	o.Common.cellFlag(cmd, "show")
	return cmd
}

func runAudit(ctx context.Context, o *ListOptions) error {
	if o.Lines < 1 {
		return fmt.Errorf("--lines %d: expected at least 1", o.Lines)
	}
	s, err := open(ctx, o.deps, &o.Common, io.Discard)
	if err != nil {
		return err
	}
	defer s.close()
	names, ds, err := cellDeployers(s, &o.Common)
	if err != nil {
		return err
	}
	if names != nil {
		return runAuditCells(ctx, o, names, ds)
	}
	es, host, err := s.d.Audit(ctx, o.Lines)
	if err != nil {
		return err
	}
	if o.JSON {
		if es == nil {
			es = []journal.Entry{}
		}
		return cli.PrintJSON(o.IO.Out, es)
	}
	fmt.Fprintf(o.IO.ErrOut, "audit log of %s from %s\n", s.d.App, host)
	tw := tabwriter.NewWriter(o.IO.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tWHO\tFROM\tACTION\tRELEASE\tPREVIOUS\tRESULT\tDETAIL")
	for _, e := range es {
		d := e.Detail
		if e.CI != "" {
			d = strings.TrimSpace(e.CI + " " + d)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Time.UTC().Format(time.RFC3339), e.Who, e.From, e.Action, dash(e.Release), dash(e.Previous), e.Result, d)
	}
	return tw.Flush()
}
