// Package deploy holds the deploy commands: `belay deploy`, `rollback`,
// `status`, `releases` and `audit`. Flags fill Options structs; the run
// functions get their dependencies (inventory loader, SSH connector, env)
// injected so tests run them without cobra or a network.
package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"

	"github.com/belay-sh/belay/deploy"
	"github.com/belay-sh/belay/deploy/lease"
	"github.com/belay-sh/belay/deploy/plan"
	"github.com/belay-sh/belay/deploy/run"
	"github.com/belay-sh/belay/deploy/sshx"
	"github.com/belay-sh/belay/internal/cli"
	"github.com/belay-sh/belay/inventory"
)

// ConnFlags are the flags of every command that reaches an app's hosts over
// SSH as the deploy user (deploy, rollback, status, releases, audit, lease,
// logs, exec): one definition, so -i, --bastion, --connect-timeout and the
// app default are the same everywhere.
type ConnFlags struct {
	InventoryRef string
	App          string
	SSH          SSHOptions
}

// AddFlags registers the connection flags (not --app: see AddAppFlag).
func (c *ConnFlags) AddFlags(cmd *cobra.Command) { c.addFlags(cmd, "i") }

// AddFlagsExec is AddFlags for belay exec, whose -i is --interactive (as in
// docker exec -it); its inventory is --inventory only.
func (c *ConnFlags) AddFlagsExec(cmd *cobra.Command) { c.addFlags(cmd, "") }

func (c *ConnFlags) addFlags(cmd *cobra.Command, invShort string) {
	cmd.Flags().StringVarP(&c.InventoryRef, "inventory", invShort, "", cli.InventoryUsage)
	cli.AddSSHFlags(cmd, &c.SSH, 15*time.Second)
}

// AddAppFlag registers --app for the commands that take the app as a flag.
func (c *ConnFlags) AddAppFlag(cmd *cobra.Command) {
	cmd.Flags().StringVar(&c.App, "app", "", AppFlagHelp)
}

// AppFlagHelp is how every command explains its app default.
const AppFlagHelp = "app name as in the inventory (default: the only app; required when there are several)"

// Common are the flags every deploy command shares.
type Common struct {
	ConnFlags
	JSON     bool
	Parallel int
	// SkipStandby leaves the standby site's app server out.
	SkipStandby bool
	// DrainTimeout bounds each drain (deploy and rollback only: drainFlag).
	DrainTimeout time.Duration
	// Cells is --cell (cellFlag): an app with cells' cells to act on (none:
	// every cell); checked by open before any host is dialled.
	Cells []string
}

// drainFlag adds --drain-timeout to the commands that move traffic.
func (c *Common) drainFlag(cmd *cobra.Command) {
	cmd.Flags().DurationVar(&c.DrainTimeout, "drain-timeout", plan.DefaultDrainTimeout,
		"after traffic leaves a side, wait at most this long for requests in flight to it before stopping or restarting it")
}

func (c *Common) checkDrain() error {
	if c.DrainTimeout == 0 {
		c.DrainTimeout = plan.DefaultDrainTimeout
	}
	if c.DrainTimeout < time.Millisecond || c.DrainTimeout > time.Hour {
		return fmt.Errorf("--drain-timeout %s: expected 1ms-1h", c.DrainTimeout)
	}
	return nil
}

// SSHOptions say how to reach the hosts: the flags every host command shares.
type SSHOptions = cli.SSHFlags

func (c *Common) flags(cmd *cobra.Command) {
	c.ConnFlags.AddFlags(cmd)
	c.ConnFlags.AddAppFlag(cmd)
	fl := cmd.Flags()
	fl.BoolVar(&c.JSON, "json", false, "print JSON instead of text")
	fl.IntVar(&c.Parallel, "parallel", 0, "work on at most this many hosts at once (0: all)")
}

// skipStandbyFlag adds --skip-standby to the commands that act on every app
// server (deploy, rollback, status, releases); audit reads one host and has none.
func (c *Common) skipStandbyFlag(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&c.SkipStandby, "skip-standby", false, "leave the standby site's app server out (e.g. unreachable); it keeps its release until a later deploy")
}

// checkParallel refuses a negative --parallel.
func (c *Common) checkParallel() error {
	if c.Parallel < 0 {
		return fmt.Errorf("--parallel %d: expected 0 (all hosts at once) or more", c.Parallel)
	}
	return nil
}

// ResolveApp fills c.App with the only app when it is not given.
func (c *ConnFlags) ResolveApp(inv *inventory.Inventory) error {
	if c.App != "" {
		if inv.App(c.App) == nil {
			var names []string
			for _, a := range inv.Apps {
				names = append(names, a.Name)
			}
			return fmt.Errorf("--app %q: not in the inventory (apps: %s)", c.App, strings.Join(names, ", "))
		}
		return nil
	}
	switch len(inv.Apps) {
	case 0:
		return errors.New("the inventory has no apps")
	case 1:
		c.App = inv.Apps[0].Name
		return nil
	}
	var names []string
	for _, a := range inv.Apps {
		names = append(names, a.Name)
	}
	return fmt.Errorf("--app: required, the inventory has several apps (%s)", strings.Join(names, ", "))
}

// Connector opens the SSH pool for an inventory; tests inject their own.
type Connector func(ctx context.Context, inv *inventory.Inventory, invRef string, o SSHOptions, getenv func(string) string) (*sshx.Pool, func(), error)

// Connect is the production Connector: agent or key files, pinned host keys
// from the inventory, optional bastion.
func Connect(ctx context.Context, inv *inventory.Inventory, invRef string, o SSHOptions, getenv func(string) string) (*sshx.Pool, func(), error) {
	// Bad flags are refused before any key or agent is touched.
	if err := o.CheckTimeout(); err != nil {
		return nil, nil, err
	}
	bastion, err := o.BastionTarget(inv)
	if err != nil {
		return nil, nil, err
	}
	keys := o.KeyFiles
	sock := getenv("SSH_AUTH_SOCK")
	if len(keys) == 0 {
		keys = defaultKeys(invRef, getenv)
	}
	auth, closer, err := sshx.AuthFromEnv(sock, keys)
	if err != nil {
		return nil, nil, err
	}
	cfg := sshx.Config{Auth: auth, KnownHostsFiles: o.KnownHosts, DialTimeout: o.ConnectTimeout}
	pool := sshx.NewPool(func(ctx context.Context, name string) (*sshx.Client, error) {
		h := inv.Host(name)
		if h == nil {
			return nil, fmt.Errorf("host %s: not in the inventory", name)
		}
		t, err := cli.HostTarget(*h)
		if err != nil {
			return nil, err
		}
		if bastion != nil && name != o.Bastion {
			t.Bastion = bastion // the bastion itself is dialled directly
		}
		return sshx.Dial(ctx, cfg, t)
	})
	return pool, func() { pool.Close(); closer.Close() }, nil
}

// defaultKeys lists existing key files to try: the lab keeps its deploy key
// beside its inventory; otherwise the user's usual keys.
func defaultKeys(invRef string, getenv func(string) string) []string {
	var cands []string
	if invRef != "" && invRef != "-" && !strings.HasPrefix(invRef, "pulumi:") {
		cands = append(cands, filepath.Join(filepath.Dir(invRef), "id_ed25519"))
	}
	if home := getenv("HOME"); home != "" {
		cands = append(cands, filepath.Join(home, ".ssh", "id_ed25519"), filepath.Join(home, ".ssh", "id_ecdsa"), filepath.Join(home, ".ssh", "id_rsa"))
	}
	// With an agent, the files are tried after the agent's keys.
	var out []string
	for _, c := range cands {
		// Only keys usable without a prompt: an encrypted default key is the
		// agent's job, and must not stop a deploy the agent can do.
		if b, err := os.ReadFile(c); err == nil {
			if _, err := ssh.ParsePrivateKey(b); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}

// session is what a command needs to talk to the hosts.
type session struct {
	d     *deploy.Deployer
	close func()
}

func open(ctx context.Context, f deps, c *Common, progress io.Writer) (*session, error) {
	inv, err := f.Inventory(c.InventoryRef)
	if err != nil {
		return nil, err
	}
	if err := c.checkParallel(); err != nil {
		return nil, err
	}
	if err := c.ResolveApp(inv); err != nil {
		return nil, err
	}
	if a := inv.App(c.App); a != nil {
		if _, err := deploy.SelectCells(a, "--cell", c.Cells); err != nil {
			return nil, err
		}
	}
	pool, closeFn, err := f.Connect(ctx, inv, c.InventoryRef, c.SSH, f.Getenv)
	if err != nil {
		return nil, err
	}
	r := &run.Runner{Pool: pool, Progress: progress, Parallel: c.Parallel}
	d := &deploy.Deployer{Inv: inv, App: c.App, Pool: pool, Runner: r, Actor: deploy.CurrentActor(f.Getenv), SkipStandby: c.SkipStandby,
		LockDir: lease.DefaultLockDir(f.Getenv), DrainTimeout: c.DrainTimeout}
	r.Layout = d.Layout()
	return &session{d: d, close: closeFn}, nil
}

// deps are the injected dependencies of every command.
type deps struct {
	IO        cli.IO
	Inventory func(string) (*inventory.Inventory, error)
	Getenv    func(string) string
	Connect   Connector
}

func depsOf(f *cli.Factory) deps {
	return deps{IO: f.IO, Inventory: f.Inventory, Getenv: f.Getenv, Connect: Connect}
}
