// Package maintenance is `belay maintenance on|off APP`: nginx answers the
// app's traffic with 503, a static page and Retry-After (hostroute, through
// the root-side route helper), under the app's lease, audited.
package maintenance

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/belay-sh/belay/deploy"
	"github.com/belay-sh/belay/deploy/lease"
	"github.com/belay-sh/belay/deploy/plan"
	"github.com/belay-sh/belay/deploy/traffic"
	"github.com/belay-sh/belay/hostrelease"
	"github.com/belay-sh/belay/hostrelease/journal"
	"github.com/belay-sh/belay/hostroute"
	"github.com/belay-sh/belay/internal/cli"
	"github.com/belay-sh/belay/internal/opsenv"
	"github.com/belay-sh/belay/inventory"
)

// Options are `belay maintenance`'s inputs and injected dependencies.
type Options struct {
	IO        cli.IO
	Inventory func(ref string) (*inventory.Inventory, error)
	Getenv    func(string) string
	Open      func(inv *inventory.Inventory, fl opsenv.Flags, getenv func(string) string) (*opsenv.Target, error)
	Now       func() time.Time

	On           bool
	App          string
	Cells        []string
	InventoryRef string
	Message      string
	RetryAfter   time.Duration
	Allow        []string
	AllowCookies []string
	JSON         bool
	Conn         opsenv.Flags
}

// NewCmdMaintenance returns `belay maintenance on|off`.
func NewCmdMaintenance(f *cli.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "maintenance",
		Short: "Answer an app's traffic with a 503 maintenance page, or stop doing so",
	}
	cmd.AddCommand(newCmdSwitch(f, true, nil), newCmdSwitch(f, false, nil))
	return cmd
}

func newCmdSwitch(f *cli.Factory, on bool, runF func(*Options) error) *cobra.Command {
	o := &Options{IO: f.IO, Inventory: f.Inventory, Getenv: f.Getenv, Open: opsenv.Open, Now: time.Now, On: on}
	use, short := "off APP", "Serve the app again"
	if on {
		use, short = "on APP", "Answer the app's traffic with 503, a static page and Retry-After"
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Long: `belay maintenance on makes nginx on every server of the app (standby included)
answer the app's requests itself: status 503, a static HTML page with --message,
Retry-After and Cache-Control: no-store. keepalived's health check still reaches
the app (the pair keeps its VIP), and so do the clients named by --allow (IP
address or CIDR) and --allow-cookie (NAME=VALUE): staff can try the app behind
the page. It stays on through deploys and rollbacks (their stages carry it over)
until belay maintenance off. belay status shows it.

Both take the app's lease (refused while a deploy, rollback, drill or switch
holds it), run under its fence, go through the root-side route helper (the
deploy user hands it data; root validates and renders nginx's files), and are
written to the audit log (belay audit).

An app with cells: every cell's servers by default, or --cell c1,c2; it takes
the chosen cells' leases and writes each cell's own audit log.`,
		Example: `  belay maintenance on shop --message "Back at 14:00 UTC" --retry-after 30m --allow 203.0.113.7 --allow-cookie staff=7f3a9c
  belay maintenance off shop
  belay maintenance on shops --cell c2   # app with cells: cell c2 only`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.App = args[0]
			if runF != nil {
				return runF(o)
			}
			return Run(cmd.Context(), o)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&o.InventoryRef, "inventory", "i", "", cli.InventoryUsage)
	opsenv.AddFlags(cmd, &o.Conn)
	fl.BoolVar(&o.JSON, "json", false, "print the result as JSON")
	fl.StringSliceVar(&o.Cells, "cell", nil, "app with cells: only these cells' servers (c1,c2; default: every cell)")
	if on {
		fl.StringVar(&o.Message, "message", "", "the page's text (plain text, one line; default: a generic notice)")
		fl.DurationVar(&o.RetryAfter, "retry-after", 5*time.Minute, "Retry-After sent with the 503 (1s to 168h, whole seconds)")
		fl.StringSliceVar(&o.Allow, "allow", nil, "client IP address or CIDR that still reaches the app (repeatable)")
		fl.StringSliceVar(&o.AllowCookies, "allow-cookie", nil, "cookie NAME=VALUE that still reaches the app (repeatable)")
	}
	return cmd
}

// Settings builds and validates the maintenance setting from the flags.
func Settings(o *Options, actor deploy.Actor) (*traffic.Maintenance, error) {
	if o.RetryAfter%time.Second != 0 {
		return nil, fmt.Errorf("--retry-after %s: expected whole seconds", o.RetryAfter)
	}
	m := &traffic.Maintenance{Message: o.Message, RetryAfter: int(o.RetryAfter / time.Second), AllowClients: o.Allow,
		Since: o.Now().UTC().Format(time.RFC3339), By: safeBy(actor.Who)}
	for i, c := range o.AllowCookies {
		name, value, ok := strings.Cut(c, "=")
		if !ok {
			return nil, fmt.Errorf("--allow-cookie[%d] %q: expected NAME=VALUE", i, c)
		}
		m.AllowCookies = append(m.AllowCookies, traffic.Match{Name: name, Value: value})
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("%w (flags: --message, --retry-after, --allow, --allow-cookie)", err)
	}
	return m, nil
}

// safeBy keeps the characters of who the page's comment accepts.
func safeBy(who string) string {
	b := strings.Map(func(r rune) rune {
		if r < 128 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._@+-", r)) {
			return r
		}
		return '_'
	}, who)
	if len(b) > 128 {
		b = b[:128]
	}
	return b
}

// Server is one server maintenance switches, with its cell (app with cells).
type Server struct {
	Host string
	Cell string
}

// Servers lists the app's servers (standby included) that maintenance
// switches: for an app with cells, those of the chosen cells (none: every
// cell). --cell naming an unknown cell, or given for an app without cells,
// is refused naming the flag.
func Servers(app *inventory.App, cells []string) ([]Server, error) {
	chosen, err := deploy.SelectCells(app, "--cell", cells)
	if err != nil {
		return nil, err
	}
	var out []Server
	add := func(cell string, hosts []string, standby string) {
		for _, h := range hosts {
			out = append(out, Server{Host: h, Cell: cell})
		}
		if standby != "" {
			out = append(out, Server{Host: standby, Cell: cell})
		}
	}
	if len(app.Cells) == 0 {
		add("", app.Hosts, app.Standby)
	}
	for _, c := range chosen {
		x := app.Cell(c)
		add(c, x.Hosts, x.Standby)
	}
	return out, nil
}

// HostResult is one server's answer.
type HostResult struct {
	Host   string            `json:"host"`
	Cell   string            `json:"cell,omitempty"`
	Result *hostroute.Result `json:"result,omitempty"`
	Error  string            `json:"error,omitempty"`
}

// Run switches maintenance mode on every server of the app.
func Run(ctx context.Context, o *Options) error {
	if ctx == nil {
		ctx = context.Background()
	}
	inv, err := o.Inventory(o.InventoryRef)
	if err != nil {
		return err
	}
	app := inv.App(o.App)
	if app == nil {
		return fmt.Errorf("app %q: not in the inventory", o.App)
	}
	actor := deploy.CurrentActor(o.Getenv)
	ch := hostroute.MaintenanceChange{On: o.On}
	if o.On {
		if ch.Settings, err = Settings(o, actor); err != nil {
			return err
		}
	}
	servers, err := Servers(app, o.Cells)
	if err != nil {
		return err
	}
	cmd, err := hostroute.MaintenanceCommand(plan.RouteHelper, app.Name, ch)
	if err != nil {
		return err
	}
	t, err := o.Open(inv, o.Conn, o.Getenv)
	if err != nil {
		return err
	}
	defer t.Close()
	action := "maintenance " + map[bool]string{true: "on", false: "off"}[o.On]
	ctx, releaseLease, err := t.HoldLeases(ctx, opsenv.LeaseOptions{Apps: []string{app.Name}, Cells: o.Cells, Action: action,
		Actor: actor, LockDir: lease.DefaultLockDir(o.Getenv), Progress: o.IO.ErrOut})
	if err != nil {
		return fmt.Errorf("%s %s refused, nothing changed: %w", action, app.Name, err)
	}
	defer releaseLease()
	r := t.Runner()
	var results []HostResult
	var failed []string
	for _, sv := range servers {
		hr := HostResult{Host: sv.Host, Cell: sv.Cell}
		out, err := r.Run(ctx, sv.Host, cmd)
		if err != nil {
			hr.Error = err.Error()
			failed = append(failed, sv.Host)
		} else {
			var res hostroute.Result
			if jerr := json.Unmarshal(out, &res); jerr == nil {
				hr.Result = &res
			}
		}
		results = append(results, hr)
	}
	// The audit log lives on the app's servers; an app with cells keeps one
	// per cell, each told about its own cell's servers.
	for _, group := range auditGroups(app, servers) {
		var names, bad []string
		for _, sv := range group.servers {
			names = append(names, sv.Host)
			if slices.Contains(failed, sv.Host) {
				bad = append(bad, sv.Host)
			}
		}
		detail := "on " + strings.Join(names, ", ")
		if group.cell != "" {
			detail = "cell " + group.cell + " " + detail
		}
		if ch.Settings != nil {
			detail += fmt.Sprintf("; retry after %ds; %d allowed clients, %d allowed cookies", ch.Settings.RetryAfter, len(ch.Settings.AllowClients), len(ch.Settings.AllowCookies))
		}
		result := "ok"
		if len(bad) > 0 {
			result, detail = "failed", detail+"; failed on "+strings.Join(bad, ", ")
		}
		e := journal.Entry{Time: o.Now().UTC(), Who: actor.Who, From: actor.From, CI: actor.CI, Action: action, App: app.Name, Result: result, Detail: detail}
		for _, h := range group.logHosts {
			if _, err := r.Run(ctx, h, journal.AppendAuditCommand(hostrelease.Layout{App: app.Name}, e)); err != nil {
				fmt.Fprintf(o.IO.ErrOut, "WARNING: audit log on %s: %v\n", h, err)
			}
		}
	}
	if o.JSON {
		if err := cli.PrintJSON(o.IO.Out, map[string]any{"app": app.Name, "on": o.On, "settings": ch.Settings, "hosts": results}); err != nil {
			return err
		}
	} else {
		for _, hr := range results {
			host := hr.Host
			if hr.Cell != "" {
				host += " (cell " + hr.Cell + ")"
			}
			if hr.Error != "" {
				fmt.Fprintf(o.IO.Out, "%s: FAILED: %s\n", host, hr.Error)
			} else {
				fmt.Fprintf(o.IO.Out, "%s: %s\n", host, action)
			}
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%s %s failed on %s (the other servers changed; run the command again)", action, app.Name, strings.Join(failed, ", "))
	}
	return nil
}

// auditGroup is one audit log's share of a maintenance switch: the servers
// it reports on and the primary servers that keep that log.
type auditGroup struct {
	cell     string
	servers  []Server
	logHosts []string
}

// auditGroups splits servers by audit log: one for an app without cells
// (kept on its primary servers), one per chosen cell (on the cell's).
func auditGroups(app *inventory.App, servers []Server) []auditGroup {
	if len(app.Cells) == 0 {
		return []auditGroup{{servers: servers, logHosts: app.Hosts}}
	}
	var out []auditGroup
	idx := map[string]int{}
	for _, sv := range servers {
		i, ok := idx[sv.Cell]
		if !ok {
			i = len(out)
			idx[sv.Cell] = i
			out = append(out, auditGroup{cell: sv.Cell, logHosts: app.Cell(sv.Cell).Hosts})
		}
		out[i].servers = append(out[i].servers, sv)
	}
	return out
}
