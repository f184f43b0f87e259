// Package host is the `belay host` command group: what runs on an app server
// as root on the deployer's behalf (through exactly one sudoers line per app)
// or as a service. The deploy user hands over data; these commands validate it
// and write the configuration root's services read.
package host

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/belay-sh/belay/hostroute"
	"github.com/belay-sh/belay/internal/cli"
)

// NewCmdHost returns the `belay host` group.
func NewCmdHost(f *cli.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "host",
		Short: "Commands run on app servers (root side of a traffic change, the route watcher)",
		Long: `Commands that run on an app server, not on your laptop.

route applies a traffic stage the deployer sends on stdin: root validates it,
renders the nginx files, checks, reloads and drains. route-watch (a service)
marks unreachable upstream members down so no request waits on a dead peer.
exec runs one command as the app user for belay exec.
converge applies a signed bundle from belay converge (any server).
On router hosts, router-sync (a service) loads the shop → cell mapping and
shop-db runs the shop commands' requests; on cell hosts, move-hook runs an
app's move hook (docs/cells.md); on data nodes, cell-db is belay db copy's
root side.`,
	}
	cmd.AddCommand(NewCmdRoute(f, nil), NewCmdRouteWatch(f, nil), NewCmdExec(f, nil), NewCmdConverge(f, nil),
		NewCmdRouterSync(f, nil), NewCmdShopDB(f), NewCmdMoveHook(f, nil), NewCmdCellDB(f, nil))
	return cmd
}

// RouteOptions are the inputs of `belay host route`.
type RouteOptions struct {
	IO   cli.IO
	App  string
	Host hostroute.Options
}

// NewCmdRoute returns `belay host route APP`.
func NewCmdRoute(f *cli.Factory, runF func(context.Context, *RouteOptions) error) *cobra.Command {
	o := &RouteOptions{IO: f.IO}
	cmd := &cobra.Command{
		Use:   "route APP",
		Short: "Apply the traffic stage on stdin to this server's nginx (run by belay deploy through sudo)",
		Long: `Reads a traffic stage (JSON, as belay deploy sends it) on stdin, checks it with
the deployer's own rules plus what root knows (the app's port, members on the
private network, canary hosts among the members), renders
/etc/belay/nginx/APP/{http,routing}.conf as root, runs nginx -t, reloads, waits
until nginx retired the old workers and, with drainMillis set, until they
finished their requests in flight. On any failure the previous files are put
back. Prints the result as JSON on stdout.`,
		Example: `  echo '{"spec":{"app":"shop","port":3000,"stableAddrs":["10.0.0.5","10.0.0.6"],"stage":{"kind":"stable"}},"drainMillis":30000}' |
    sudo -n belay host route shop`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.App = args[0]
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return RunRoute(cmd.Context(), o)
		},
	}
	return cmd
}

// RunRoute reads the request and applies it.
func RunRoute(ctx context.Context, o *RouteOptions) error {
	data, err := io.ReadAll(io.LimitReader(o.IO.In, hostroute.MaxRequest+1))
	if err != nil {
		return fmt.Errorf("reading the stage from stdin: %w", err)
	}
	req, err := hostroute.Decode(data)
	if err != nil {
		return err
	}
	res, err := hostroute.Apply(ctx, o.App, req, o.Host)
	if err != nil {
		return err
	}
	return json.NewEncoder(o.IO.Out).Encode(res)
}

// WatchOptions are the inputs of `belay host route-watch`.
type WatchOptions struct {
	IO      cli.IO
	Watcher hostroute.Watcher
}

// NewCmdRouteWatch returns `belay host route-watch`.
func NewCmdRouteWatch(f *cli.Factory, runF func(context.Context, *WatchOptions) error) *cobra.Command {
	o := &WatchOptions{IO: f.IO}
	cmd := &cobra.Command{
		Use:   "route-watch",
		Short: "Mark unreachable upstream members down in nginx (the belay-route-watch service)",
		Long: `Probes every upstream member of every app on this server (TCP connect, every
--interval) and renders members that fail --fall probes in a row as down, and
back up after --rise good probes, through the same checks as belay host route.
A dead peer then costs no request its connect timeout.`,
		Example: `  belay host route-watch --interval 100ms   # as the belay-route-watch.service unit runs it`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			w := &o.Watcher
			if w.Interval <= 0 || w.DialTimeout <= 0 || w.Fall < 1 || w.Rise < 1 {
				return fmt.Errorf("--interval and --dial-timeout must be positive, --fall and --rise at least 1")
			}
			w.Log = o.IO.ErrOut
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return w.Run(ctx)
		},
	}
	fl := cmd.Flags()
	fl.DurationVar(&o.Watcher.Interval, "interval", 100e6, "time between probe rounds")
	fl.DurationVar(&o.Watcher.DialTimeout, "dial-timeout", 150e6, "TCP connect timeout of one probe")
	fl.IntVar(&o.Watcher.Fall, "fall", 2, "failed probes in a row that mark a member down")
	fl.IntVar(&o.Watcher.Rise, "rise", 2, "good probes in a row that mark it up again")
	return cmd
}
