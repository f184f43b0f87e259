package appcmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/belay-sh/belay/deploy"
	"github.com/belay-sh/belay/deploy/sshx"
	"github.com/belay-sh/belay/internal/cli"
	clideploy "github.com/belay-sh/belay/internal/cli/deploy"
	"github.com/belay-sh/belay/inventory"
)

// deps are the injected dependencies of logs and exec.
type deps struct {
	IO        cli.IO
	Inventory func(string) (*inventory.Inventory, error)
	Getenv    func(string) string
	Connect   clideploy.Connector
	Now       func() time.Time
}

func depsOf(f *cli.Factory) deps {
	return deps{IO: f.IO, Inventory: f.Inventory, Getenv: f.Getenv, Connect: clideploy.Connect, Now: time.Now}
}

// LogsOptions are `belay logs`'s inputs.
type LogsOptions struct {
	deps
	clideploy.ConnFlags
	Host   string
	Cells  []string
	Follow bool
	Since  time.Duration
	Lines  int
	Grep   string
	JSON   bool
	// Window is how long -f holds a line to merge hosts by time.
	Window time.Duration
}

// NewCmdLogs returns `belay logs`.
func NewCmdLogs(f *cli.Factory) *cobra.Command {
	o := &LogsOptions{deps: depsOf(f), Window: 300 * time.Millisecond}
	cmd := &cobra.Command{
		Use:   "logs [APP]",
		Short: "Show an app's logs from every app host: its units' journal and its nginx access log, merged by time",
		Long: `Show the journal of the app's units (belay-app@APP stable, belay-canary@APP
canary) and its nginx access log (/var/log/nginx/belay/APP.access.log) from
every app server of the app (or --host), merged by time, each line prefixed
with its host and source (stable, canary, nginx).

The deploy user reads them over the pinned SSH connection without root: the
journal as a member of systemd-journal, the access log through its directory
(0750 root:<deploy user>). The app's environment file is never read — but what
the app itself writes to its output is shown, so apps must not log secrets.

Without --since, the last --lines lines of each source are read and the last
--lines of the merge shown; --grep filters those. -f follows every host at once
until Ctrl-C, holding each line ` + "0.3 s" + ` to merge hosts by time.
An unreachable host is reported on stderr and the others are shown; the exit
status is then 1.

An app with cells: the servers of every cell (or --cell c1,c2), merged by
time, each line tagged with its host and cell ("cell" in --json).`,
		Example: `  belay logs shop -f
  belay logs shop --since 1h --grep ' 5[0-9][0-9]\t'
  belay logs shop --host app-2 -n 500 --json | jq -r .message
  belay logs shops --cell c2 -f`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				o.App = args[0]
			}
			return runLogs(cmd.Context(), o)
		},
	}
	o.ConnFlags.AddFlags(cmd)
	fl := cmd.Flags()
	fl.StringVar(&o.Host, "host", "", "only this app server (default: every app server of the app, standby included)")
	fl.StringSliceVar(&o.Cells, "cell", nil, "app with cells: only these cells' servers (c1,c2; default: every cell)")
	fl.BoolVarP(&o.Follow, "follow", "f", false, "keep printing new lines from every host until Ctrl-C")
	fl.DurationVar(&o.Since, "since", 0, "show lines from this long ago on (e.g. 10m, 2h; default: the last --lines)")
	fl.IntVarP(&o.Lines, "lines", "n", 100, "without --since: lines read from each source, and shown after the merge")
	fl.StringVar(&o.Grep, "grep", "", "only lines whose message matches this regular expression (Go syntax)")
	fl.BoolVar(&o.JSON, "json", false, "print one JSON object per line: time, host, source, message")
	return cmd
}

// servers are the app servers logs and exec may use.
type servers struct {
	// All is the primary group, then the standby (of each chosen cell, in
	// cell order, for an app with cells); Primary leaves the standbys out.
	All, Primary []string
	// Cell is each server's cell (app with cells only).
	Cell map[string]string
}

// appHosts lists the servers of app (of the chosen cells, for an app with
// cells: none chosen is every cell), or only --host, which must be one of
// them. --cell on an app without cells, or naming a cell it lacks, is refused.
func appHosts(inv *inventory.Inventory, app, only string, cells []string) (*servers, error) {
	a := inv.App(app)
	chosen, err := deploy.SelectCells(a, "--cell", cells)
	if err != nil {
		return nil, err
	}
	sv := &servers{Cell: map[string]string{}}
	add := func(cell string, hosts []string, standby string) {
		sv.Primary = append(sv.Primary, hosts...)
		sv.All = append(sv.All, hosts...)
		if standby != "" {
			sv.All = append(sv.All, standby)
		}
		for _, h := range append(append([]string(nil), hosts...), standby) {
			if h != "" && cell != "" {
				sv.Cell[h] = cell
			}
		}
	}
	if len(a.Cells) == 0 {
		add("", a.Hosts, a.Standby)
	}
	for _, c := range chosen {
		x := a.Cell(c)
		add(c, x.Hosts, x.Standby)
	}
	if only == "" {
		return sv, nil
	}
	for _, h := range sv.All {
		if h == only {
			return &servers{All: []string{h}, Primary: []string{h}, Cell: sv.Cell}, nil
		}
	}
	what := app
	if len(cells) > 0 {
		what += " cell " + strings.Join(chosen, ",")
	}
	return nil, fmt.Errorf("--host %q: not an app server of %s (its servers: %s)", only, what, strings.Join(sv.All, ", "))
}

func (o *LogsOptions) check() (Filter, error) {
	var fl Filter
	if o.Lines < 1 {
		return fl, fmt.Errorf("--lines %d: expected at least 1", o.Lines)
	}
	if o.Since < 0 {
		return fl, fmt.Errorf("--since %s: expected a positive duration such as 10m", o.Since)
	}
	if o.Grep != "" {
		re, err := regexp.Compile(o.Grep)
		if err != nil {
			return fl, fmt.Errorf("--grep: %w", err)
		}
		fl.Grep = re
	}
	if o.Since > 0 {
		fl.Since = o.Now().Add(-o.Since)
	}
	return fl, nil
}

func runLogs(ctx context.Context, o *LogsOptions) error {
	filter, err := o.check()
	if err != nil {
		return err
	}
	inv, err := o.Inventory(o.InventoryRef)
	if err != nil {
		return err
	}
	if err := o.ResolveApp(inv); err != nil {
		return err
	}
	sv, err := appHosts(inv, o.App, o.Host, o.Cells)
	if err != nil {
		return err
	}
	pool, closeFn, err := o.Connect(ctx, inv, o.InventoryRef, o.SSH, o.Getenv)
	if err != nil {
		return err
	}
	defer closeFn()
	q := Query{App: o.App, Follow: o.Follow, Since: filter.Since, Lines: o.Lines}
	var outMu sync.Mutex
	print := func(l Line) {
		outMu.Lock()
		defer outMu.Unlock()
		if o.JSON {
			_ = json.NewEncoder(o.IO.Out).Encode(l) // one object per line
		} else {
			fmt.Fprintln(o.IO.Out, Format(l))
		}
	}
	var (
		mu    sync.Mutex
		batch []Line
	)
	add := func(l Line) {
		mu.Lock()
		batch = append(batch, l)
		mu.Unlock()
	}
	var ro *Reorder
	stopFlush := func() {}
	if o.Follow {
		ro = &Reorder{Window: o.Window, Emit: print, Now: o.Now}
		add = ro.Add
		tick := time.NewTicker(o.Window / 3)
		stop := make(chan struct{})
		flushed := make(chan struct{})
		go func() {
			defer close(flushed)
			for {
				select {
				case <-tick.C:
					ro.Flush(false)
				case <-stop:
					tick.Stop()
					return
				}
			}
		}()
		stopFlush = func() { close(stop); <-flushed; ro.Flush(true) }
	}
	errs := readAll(ctx, pool, sv, Sources(q), filter, add)
	stopFlush()
	if !o.Follow {
		n := o.Lines
		if !filter.Since.IsZero() {
			n = 0
		}
		for _, l := range Merge(batch, n) {
			print(l)
		}
	}
	failed := false
	for _, e := range errs {
		if o.Follow && ctx.Err() != nil && errors.Is(e, context.Canceled) {
			continue // Ctrl-C ends -f: not a failure
		}
		failed = true
		fmt.Fprintln(o.IO.ErrOut, "belay:", e)
	}
	if failed {
		return cli.ExitError{Code: 1}
	}
	return nil
}

// readAll runs every source on every host at once, handing parsed, filtered
// lines to add; it returns when all commands ended (with -f: when ctx is
// cancelled, which closes every session).
func readAll(ctx context.Context, pool *sshx.Pool, sv *servers, srcs []Source, filter Filter, add func(Line)) []error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	for _, h := range sv.All {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := pool.Get(ctx, h)
			if err != nil {
				fail(err)
				return
			}
			var swg sync.WaitGroup
			for _, s := range srcs {
				swg.Add(1)
				go func() {
					defer swg.Done()
					w := lineWriter(func(raw string) {
						l, ok := s.Parse(raw)
						if !ok {
							return
						}
						l.Host, l.Cell = h, sv.Cell[h]
						if filter.Keep(l) {
							add(l)
						}
					})
					var stderr strings.Builder
					_, err := c.Stream(ctx, s.Command, nil, w, &stderr)
					w.Close()
					if err != nil {
						fail(fmt.Errorf("host %s: %s: %w", h, s.Name, err))
					}
				}()
			}
			swg.Wait()
		}()
	}
	wg.Wait()
	return errs
}
