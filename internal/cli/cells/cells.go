// Package cells is `belay cells` and `belay shop`: the shop → cell mapping
// of an app, read and changed through a router host (the database is never
// public: requests go over the pinned SSH channel to `sudo belay host shop-db`
// there), and shop moves, whose hooks run on the cells' hosts through
// `sudo belay host move-hook`. See docs/cells.md.
package cells

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/user"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/belay-sh/belay/deploy/sshx"
	"github.com/belay-sh/belay/internal/cli"
	clideploy "github.com/belay-sh/belay/internal/cli/deploy"
	"github.com/belay-sh/belay/internal/shq"
	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/roles"
	"github.com/belay-sh/belay/router"
	"github.com/belay-sh/belay/router/admin"
)

// RoleRouter is the inventory role of router hosts (the cells topology
// registers it; a string here so this package does not wait for it).
const RoleRouter inventory.Role = "router"

// Options are what every cells/shop command shares.
type Options struct {
	IO           cli.IO
	InventoryRef string
	App          string
	JSON         bool
	// Router is the router host requests go through (default: the first
	// inventory host with role router).
	Router  string
	SSH     clideploy.SSHOptions
	Connect clideploy.Connector
	Load    func(ref string) (*inventory.Inventory, error)
	Getenv  func(string) string
	// RunRoot runs a root command on a host (default: `sudo -n` over the
	// pool); `belay cells` reads the monitor's formations with it.
	RunRoot RootRunner

	inv  *inventory.Inventory
	pool *sshx.Pool
	done func()
}

func (o *Options) flags(cmd *cobra.Command, appFlag bool) {
	fl := cmd.Flags()
	fl.StringVarP(&o.InventoryRef, "inventory", "i", "", cli.InventoryUsage)
	if appFlag {
		fl.StringVar(&o.App, "app", "", "the app (required)")
		_ = cmd.MarkFlagRequired("app")
	}
	fl.BoolVar(&o.JSON, "json", false, "print JSON instead of text")
	fl.StringVar(&o.Router, "router", "", "router host to go through (default: the first host with role router)")
	cli.AddSSHFlags(cmd, &o.SSH, 15*time.Second)
}

func newOptions(f *cli.Factory) *Options {
	return &Options{IO: f.IO, Connect: clideploy.Connect, Load: f.Inventory, Getenv: f.Getenv}
}

// open loads the inventory, picks the router and opens the SSH pool.
func (o *Options) open(ctx context.Context) error {
	if err := router.CheckApp(o.App); err != nil {
		return err
	}
	inv, err := o.Load(o.InventoryRef)
	if err != nil {
		return err
	}
	o.inv = inv
	if o.Router == "" {
		if o.Router, err = defaultRouter(inv, o.App); err != nil {
			return err
		}
	} else if inv.Host(o.Router) == nil {
		return fmt.Errorf("--router %s: not a host in the inventory", o.Router)
	}
	o.pool, o.done, err = o.Connect(ctx, inv, o.InventoryRef, o.SSH, o.Getenv)
	return err
}

// defaultRouter is the first router host of app: with several apps with
// cells, another app's router has no cells.conf for this one.
func defaultRouter(inv *inventory.Inventory, app string) (string, error) {
	for _, h := range inv.WithRole(RoleRouter) {
		if h.App == app || h.App == "" {
			return h.Name, nil
		}
	}
	return "", fmt.Errorf("the inventory has no host with role router for app %s: an app with cells has a router pair (or pass --router HOST)", app)
}

func (o *Options) close() {
	if o.done != nil {
		o.done()
	}
}

// ShopDBCommand is the remote command of one request on a router host.
func ShopDBCommand(app string) string {
	return shq.Join("sudo", "-n", roles.BelayBinary, "host", "shop-db", "--app", app)
}

// MoveHookCommand is the remote command of one hook on a cell host.
func MoveHookCommand(app, verb, shop string) string {
	return shq.Join("sudo", "-n", roles.BelayBinary, "host", "move-hook", app, verb, shop)
}

// client runs admin requests on the router host.
func (o *Options) client() *admin.Client {
	return &admin.Client{App: o.App, Do: func(ctx context.Context, req admin.Request) (admin.Response, error) {
		var res admin.Response
		c, err := o.pool.Get(ctx, o.Router)
		if err != nil {
			return res, fmt.Errorf("router %s: %w", o.Router, err)
		}
		body, _ := json.Marshal(req)
		out, err := c.Run(ctx, ShopDBCommand(o.App), bytes.NewReader(body))
		if err != nil {
			return res, fmt.Errorf("router %s: %w", o.Router, err)
		}
		if err := json.Unmarshal(out.Stdout, &res); err != nil {
			return res, fmt.Errorf("router %s: shop-db answered no JSON (%v): %.200s", o.Router, err, out.Stdout)
		}
		return res, nil
	}}
}

// cellHost picks the host a cell's hook runs on: the first server of the
// cell in the inventory (apps[].cells[].hosts). Every server of a cell runs
// the app itself (/srv/APP, /etc/belay/APP.env with the cell's own database),
// so the hook and the release are the app's, on that cell's host.
func (o *Options) cellHost(cell string) (string, error) {
	hosts := o.inv.CellHosts(o.App, cell)
	if len(hosts) == 0 {
		return "", fmt.Errorf("cell %s: no servers of app %s in that cell in the inventory (apps[].cells[].hosts)", cell, o.App)
	}
	return hosts[0].Name, nil
}

// warmCells opens the SSH connections to the hook hosts of the shop's cell
// and of cell to, in parallel, before the move freezes the shop: a dial with
// its handshake and host-key check took ~1 s per cell on the lab, time the
// shop's clients would otherwise spend on the freeze page. A failure here is
// not reported: the hook's own dial reports it, before anything is frozen
// for the source, or with the shop unfrozen again for the target.
func (o *Options) warmCells(ctx context.Context, db interface {
	Get(ctx context.Context, app, domain string) (*router.Shop, error)
}, domain, to string) {
	cellsToWarm := []string{to}
	if s, err := db.Get(ctx, o.App, domain); err == nil && s != nil && s.Cell != "" && s.Cell != to {
		cellsToWarm = append(cellsToWarm, s.Cell)
	}
	var wg sync.WaitGroup
	for _, c := range cellsToWarm {
		host, err := o.cellHost(c)
		if err != nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = o.pool.Get(ctx, host)
		}()
	}
	wg.Wait()
}

// sshHooks run the move contract on the cells' hosts.
type sshHooks struct{ o *Options }

func (h sshHooks) run(ctx context.Context, cell, verb, shop string, in io.Reader, out io.Writer) error {
	host, err := h.o.cellHost(cell)
	if err != nil {
		return err
	}
	c, err := h.o.pool.Get(ctx, host)
	if err != nil {
		return fmt.Errorf("host %s of cell %s: %w", host, cell, err)
	}
	var errb bytes.Buffer
	code, err := c.Stream(ctx, MoveHookCommand(h.o.App, verb, shop), in, out, &errb)
	if err == nil && code != 0 {
		err = fmt.Errorf("exit status %d: %s", code, strings.TrimSpace(errb.String()))
	}
	if err != nil {
		return fmt.Errorf("belay-move %s %s on %s: %w", verb, shop, host, err)
	}
	return nil
}

func (h sshHooks) Export(ctx context.Context, cell, shop string, w io.Writer) error {
	return h.run(ctx, cell, "export", shop, nil, w)
}

func (h sshHooks) Import(ctx context.Context, cell, shop string, r io.Reader) error {
	return h.run(ctx, cell, "import", shop, r, io.Discard)
}

// actor names the operator in the audit.
func actor() string {
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	h, _ := os.Hostname()
	return name + "@" + h
}
