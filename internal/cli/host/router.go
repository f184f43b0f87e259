package host

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/belay-sh/belay/internal/cli"
	"github.com/belay-sh/belay/roles"
	"github.com/belay-sh/belay/router"
	"github.com/belay-sh/belay/router/admin"
	"github.com/belay-sh/belay/router/shopcert"
	"github.com/belay-sh/belay/router/store"
	rsync "github.com/belay-sh/belay/router/sync"
)

// NewCmdRouterSync returns `belay host router-sync --app APP` (the
// belay-router-sync@APP service on router hosts).
func NewCmdRouterSync(f *cli.Factory, runF func(context.Context, *rsync.Options) error) *cobra.Command {
	o := &rsync.Options{}
	cmd := &cobra.Command{
		Use:   "router-sync --app APP",
		Short: "Keep this router's nginx shop → cell routes equal to the mapping in PostgreSQL (a service on router hosts)",
		Long: `LISTENs for mapping changes of APP in the platform database (DSN in
/etc/belay/router/APP/db.conf, root-only), and on every change and every
--resync reads the whole mapping, validates it against
/etc/belay/router/APP/cells.conf, and pushes the routes into nginx's shared
memory through the root-only socket /run/belay-router/APP.sock (no reload;
/etc/belay/router/APP/routes.txt keeps the snapshot nginx loads at start).
After a push that freezes shops it waits until none of their requests is in
flight, then reports the version. A changed cells.conf re-renders
/etc/belay/router/APP/map.conf (nginx -t, reload). A refused mapping or an
unreachable database changes nothing: nginx keeps routing from the last good
routes. With /etc/belay/router/APP/shop-acme.conf (tls.mode acme) it also
issues, renews and serves the certificates of shops with tls (belay shop
tls), lego state in /var/lib/belay/acme/APP/shops. See docs/cells.md.`,
		Example: `  belay host router-sync --app shop   # as belay-router-sync@shop.service runs it`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := router.CheckApp(o.App); err != nil {
				return fmt.Errorf("--app: %w", err)
			}
			o.Log = f.IO.ErrOut
			// The shops' certificates: only with the ACME settings the
			// router role writes for an app with tls.mode acme.
			confPath := filepath.Join(router.Dir(o.App), router.ShopACMEFile)
			if raw, err := os.ReadFile(confPath); err == nil {
				c, err := router.ParseShopACME(raw)
				if err != nil {
					return fmt.Errorf("%s: %w", confPath, err)
				}
				o.ShopCerts = &shopcert.Options{Conf: c}
			} else if !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("shop certificates: %w", err)
			}
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return rsync.Run(ctx, *o)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.App, "app", "", "the app whose shops this router routes (required)")
	fl.StringVar(&o.Name, "name", "", "this router's name in the routers table (default: the hostname)")
	fl.DurationVar(&o.Resync, "resync", 5*time.Second, "full re-read period: the safety net for a lost notification, and the heartbeat")
	_ = cmd.MarkFlagRequired("app")
	return cmd
}

// MaxShopDBRequest bounds the request read from stdin: a bulk assignment of
// admin.MaxBatch domains of 253 characters is about 2.6 MB.
const MaxShopDBRequest = 4 << 20

// NewCmdShopDB returns `belay host shop-db --app APP`: the root helper the
// shop commands call over SSH on a router host.
func NewCmdShopDB(f *cli.Factory) *cobra.Command {
	var app string
	cmd := &cobra.Command{
		Use:   "shop-db --app APP",
		Short: "Run one shop-mapping request from stdin against the database (run by belay shop/cells through sudo)",
		Long: `Reads one request (JSON, as belay shop and belay cells send it) on stdin, checks
it against /etc/belay/router/APP/cells.conf, runs it against the mapping
database with the router's root-only DSN, and prints the answer as JSON. The
deploy user never sees the DSN.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := router.CheckApp(app); err != nil {
				return fmt.Errorf("--app: %w", err)
			}
			data, err := io.ReadAll(io.LimitReader(f.IO.In, MaxShopDBRequest+1))
			if err != nil || len(data) > MaxShopDBRequest {
				return fmt.Errorf("reading the request from stdin: at most %d bytes (%v)", MaxShopDBRequest, err)
			}
			res, err := shopDB(cmd.Context(), router.Dir(app), app, data, f.Getenv("SUDO_USER"))
			if err != nil {
				res.Error = err.Error()
			}
			return json.NewEncoder(f.IO.Out).Encode(res)
		},
	}
	cmd.Flags().StringVar(&app, "app", "", "the app (required)")
	_ = cmd.MarkFlagRequired("app")
	return cmd
}

func shopDB(ctx context.Context, dir, app string, data []byte, sudoUser string) (admin.Response, error) {
	req, err := admin.Decode(data)
	if err != nil {
		return admin.Response{}, err
	}
	raw, err := os.ReadFile(filepath.Join(dir, router.CellsFile))
	if err != nil {
		return admin.Response{}, fmt.Errorf("cells: %w (is this a router of %s?)", err, app)
	}
	cells, err := router.ParseCells(app, raw)
	if err != nil {
		return admin.Response{}, err
	}
	if err := admin.Check(req, cells); err != nil {
		return admin.Response{}, fmt.Errorf("refused: %w", err)
	}
	if sudoUser != "" {
		req.Actor = strings.TrimSpace(req.Actor + " " + admin.SSHLoginTag + sudoUser + ")")
	}
	dsn, err := rsync.ReadDSN(filepath.Join(dir, router.DSNFile))
	if err != nil {
		return admin.Response{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, 11*time.Minute)
	defer cancel()
	st, err := store.Open(ctx, dsn)
	if err != nil {
		return admin.Response{}, err
	}
	defer st.Close()
	return admin.Serve(ctx, st, cells, req, admin.TCPProbe)
}

// MoveHookArgv is the command `belay host move-hook` runs: the release's
// belay-move as the app user, with the app's environment (its database
// URL), through systemd-run so it gets the same sandbox as the app's unit.
func MoveHookArgv(app, verb, shop string) ([]string, error) {
	if err := router.CheckApp(app); err != nil {
		return nil, err
	}
	if verb != "export" && verb != "import" {
		return nil, fmt.Errorf("hook %q: expected export or import", verb)
	}
	if err := router.CheckDomain(shop); err != nil {
		return nil, fmt.Errorf("shop: %w", err)
	}
	rel := "/srv/" + app + "/current"
	return []string{"systemd-run", "--quiet", "--pipe", "--wait", "--collect",
		"--unit", "belay-move-" + app + "-" + verb + "-" + fmt.Sprint(time.Now().UnixNano()),
		"-p", "User=" + roles.AppUser, "-p", "Group=" + roles.AppUser,
		"-p", "EnvironmentFile=" + roles.AppEnvFile(app),
		"-p", "WorkingDirectory=" + rel,
		"-p", "NoNewPrivileges=yes", "-p", "ProtectSystem=full", "-p", "ProtectHome=yes",
		rel + "/belay-move", verb, shop}, nil
}

// NewCmdMoveHook returns `belay host move-hook APP export|import SHOP`. The
// deploy user may run it through sudo with any SHOP (sudoers wildcard,
// roles.MoveHookCommands): every argument is validated before anything
// runs. runF replaces running the hook's argv (tests).
func NewCmdMoveHook(f *cli.Factory, runF func(ctx context.Context, argv []string) error) *cobra.Command {
	return &cobra.Command{
		Use:   "move-hook APP export|import SHOP",
		Short: "Run the app's move hook for one shop on this cell host (run by belay shop move through sudo)",
		Long: `Runs /srv/APP/current/belay-move export SHOP (data to stdout) or import SHOP
(data from stdin) as the app user with the app's environment: the move
contract of docs/cells.md.`,
		Args: cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			argv, err := MoveHookArgv(args[0], args[1], args[2])
			if err != nil {
				return err
			}
			if runF != nil {
				return runF(cmd.Context(), argv)
			}
			c := exec.CommandContext(cmd.Context(), argv[0], argv[1:]...)
			c.Stdin, c.Stdout, c.Stderr = f.IO.In, f.IO.Out, f.IO.ErrOut
			if err := c.Run(); err != nil {
				return fmt.Errorf("belay-move %s %s on this host: %w", args[1], args[2], err)
			}
			return nil
		},
	}
}
