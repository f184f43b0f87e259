// Package converge is `belay converge`: it renders every host's files with
// the roles (the same Specs the Pulumi program and the lab use), shows what
// differs, and has each host's root helper (`belay host converge`) apply a
// bundle signed with the stack's converge key — changed files only, checked
// before anything reloads, only the reloads those files need.
package converge

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/belay-sh/belay/converge"
	"github.com/belay-sh/belay/deploy"
	"github.com/belay-sh/belay/deploy/lease"
	"github.com/belay-sh/belay/hostconverge"
	"github.com/belay-sh/belay/internal/cli"
	"github.com/belay-sh/belay/internal/opsenv"
	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/lab"
	"github.com/belay-sh/belay/remote"
	"github.com/belay-sh/belay/roles"
	"github.com/belay-sh/belay/seedkeys"
)

// Options are `belay converge`'s inputs and dependencies.
type Options struct {
	IO           cli.IO
	Getenv       func(string) string
	Inventory    func(ref string) (*inventory.Inventory, error)
	InventoryRef string
	// StackFile and Apps are what `belay lab up --stack/--apps` took.
	StackFile string
	Apps      int
	LabPaths  lab.Paths
	DryRun    bool
	JSON      bool
	Parallel  int
	// Conn are the shared SSH flags (--ssh-key, --bastion, --connect-timeout...).
	Conn opsenv.Flags

	// Source loads the desired state (LoadSource).
	Source func(context.Context, *Options) (*Source, error)
	// Pulumi runs the pulumi CLI (a cloud stack's config and outputs).
	Pulumi PulumiRunner
	// Connect opens SSH to the inventory's hosts (the deploy user).
	Connect func(inv *inventory.Inventory) (Runner, func(), error)
	// Hold takes the leases converge holds while it changes hosts.
	Hold func(ctx context.Context, r remote.Runner, inv *inventory.Inventory, progress io.Writer) (context.Context, func(), error)
	Now  func() time.Time
	// Guard refuses dedicated cells' servers whose data is not copied yet
	// (nil: celldb.Guard, guard.go).
	Guard GuardFunc
}

// NewCmdConverge returns `belay converge`.
func NewCmdConverge(f *cli.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	o := &Options{IO: f.IO, Getenv: f.Getenv, Inventory: f.Inventory, LabPaths: lab.DefaultPaths,
		Source: LoadSource, Pulumi: runPulumi, Hold: holdLeases(f.Getenv), Now: time.Now}
	o.Connect = connect(f.Getenv, &o.Conn)
	cmd := &cobra.Command{
		Use:   "converge",
		Short: "Bring running servers' configuration up to the stack config (admin keys, CIDRs, apps, DB and backup settings)",
		Long: `User data only bootstraps a server: later config edits (admin SSH keys,
sshCidrs, the app list, database settings, the backup schedule) reach running
servers through belay converge. It renders every host's files with the same
roles as first boot, compares them with the host and, without --dry-run,
writes only the changed files and runs only the checks and reloads they need
(sshd -t then reload, nginx -t then reload, nft -c then nft -f, visudo -c,
keepalived reload, PostgreSQL pg_hba/config reload, systemd daemon-reload and
timer restarts, the belay binary's download). PostgreSQL, keepalived and the apps are never restarted: a
unit change that needs a restart is reported and waits for the next switchover
or deploy. Unchanged services are not touched.

Each host's root side (belay host converge, through one sudoers entry) accepts
only a bundle signed with a key derived from the stack's hostKeySeed, for that
host, newer than the last one it took. A failed check or reload on a host puts
that host's previous files back and stops the converge: hosts already done
keep the new files, hosts not started keep the old ones (the output says which).

Hosts converge --parallel at a time, holding every app's lease (sorted) like a
site switch, so no deploy, rollback or drill runs meanwhile. Hosts in the
config but not in the inventory (a new app's servers) are skipped: create them
with belay lab up / pulumi up.

A dedicated cell's servers (cells[].database: dedicated) converge after the
other hosts, and only when their new DATABASE_URL is safe: the stack's
cluster holds no data of the cell (a new cell), or the pair's database
carries belay db copy's marker. Otherwise they are reported refused, naming
the cell and belay db copy --cell APP/CELL, and converge exits 1.

A cloud stack (--stack NAME, or a belay.yaml target pulumi:NAME) is rendered
from its config as the Pulumi program sees it (pulumi config --show-secrets
--json, run in the project directory: the edited Pulumi.NAME.yaml) and the
addresses its last pulumi up exported (the "addresses" stack output), so an
unchanged config renders exactly the first-boot files. A config that adds
hosts needs pulumi up first. A belay:agent change installs the new binary on
every host (download, SHA-256 check). The lab is converged from the stack
file belay lab up took (--stack-file, --apps) and the lab's seed.`,
		Example: `  # a cloud stack, after editing Pulumi.prod.yaml (and pulumi up if it adds servers):
  belay converge --stack prod --dry-run
  belay converge --stack prod
  # the lab, after adding a key to belay:admin.sshKeys in its stack file:
  belay converge --inventory lab --stack-file stacks/Pulumi.lab.yaml --dry-run
  belay converge --inventory lab --stack-file stacks/Pulumi.lab.yaml --json --parallel 8`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Parallel < 1 {
				return fmt.Errorf("--parallel: %d, expected at least 1", o.Parallel)
			}
			if o.Apps < 0 {
				return fmt.Errorf("--apps: %d, expected 0 (the stack's) or more", o.Apps)
			}
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return Run(cmd.Context(), o)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&o.InventoryRef, "inventory", "i", "", cli.InventoryUsage)
	fl.StringVar(&o.StackFile, "stack-file", "", "the lab only: stack file, as given to belay lab up --stack (default: the embedded lab stack)")
	fl.IntVar(&o.Apps, "apps", 0, "the lab only: number of apps, as given to belay lab up --apps (0 keeps the stack's)")
	fl.BoolVar(&o.DryRun, "dry-run", false, "show the per-host, per-file diff (secrets masked) and change nothing")
	fl.BoolVar(&o.JSON, "json", false, "print the result as JSON (exit status 1 when \"ok\" is false)")
	fl.IntVar(&o.Parallel, "parallel", 4, "hosts converged at a time")
	opsenv.AddFlags(cmd, &o.Conn)
	return cmd
}

// job is one host's converge.
type job struct {
	name   string
	stack  string
	host   converge.Host
	masker *converge.Masker
}

// prepare renders every host of the source that the inventory has.
func prepare(src *Source) (jobs []job, skipped []string, err error) {
	for _, name := range src.Order {
		spec := src.Specs[name]
		if spec == nil {
			return nil, nil, fmt.Errorf("no spec built for host %s", name)
		}
		if src.Inv.Host(name) == nil {
			skipped = append(skipped, name)
			continue
		}
		ud, err := roles.Render(spec)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", name, err)
		}
		h, err := converge.FromUserData(name, ud)
		if err != nil {
			return nil, nil, err
		}
		jobs = append(jobs, job{name: name, stack: spec.Stack, host: h, masker: converge.NewMasker(converge.SpecSecrets(spec)...)})
	}
	return jobs, skipped, nil
}

// Runner is what converge needs from the hosts: the operator commands'
// runner (leases) plus a command with standard input, which carries the
// bundle — it holds keys and passwords, so never a command line (a process
// list shows those to every local user).
type Runner interface {
	remote.Runner
	RunInput(ctx context.Context, host, cmd string, stdin io.Reader) ([]byte, error)
}

// helperCommand is the exact command sudoers allows the deploy user.
var helperCommand = remote.SudoCommand(roles.ConvergeCommand)

// Run converges (or, with DryRun, diffs) every host.
func Run(ctx context.Context, o *Options) error {
	start := o.Now()
	src, err := o.Source(ctx, o)
	if err != nil {
		return err
	}
	key, err := seedkeys.ConvergeKey(src.Seed, src.Stack)
	if err != nil {
		return err
	}
	jobs, skipped, err := prepare(src)
	if err != nil {
		return err
	}
	rep := &Report{Stack: src.Stack, DryRun: o.DryRun}
	for _, s := range skipped {
		rep.Hosts = append(rep.Hosts, HostReport{Host: s, Status: StatusSkipped, Error: "in the config, not in the inventory: create it first (belay lab up / pulumi up)"})
	}
	for _, h := range src.Inv.Hosts {
		if src.Specs[h.Name] == nil {
			rep.Hosts = append(rep.Hosts, HostReport{Host: h.Name, Status: StatusSkipped, Error: "in the inventory, not in the config (an app removed?): converge leaves it alone; pulumi up removes it"})
		}
	}
	r, closeFn, err := o.Connect(src.Inv)
	if err != nil {
		return err
	}
	defer closeFn()
	if !o.DryRun {
		hctx, release, err := o.Hold(ctx, r, src.Inv, o.IO.ErrOut)
		if err != nil {
			return fmt.Errorf("converge refused, nothing changed: %w", err)
		}
		defer release()
		ctx = hctx
	}
	serial := uint64(o.Now().UnixNano())
	results := runGuarded(ctx, o, r, src.Inv, key, serial, jobs)
	rep.Hosts = append(rep.Hosts, results...)
	rep.finish(o.Now().Sub(start))
	if o.JSON {
		if err := cli.PrintJSON(o.IO.Out, rep); err != nil {
			return err
		}
	} else {
		rep.print(o.IO.Out)
	}
	if !rep.OK {
		return cli.ExitError{Code: 1}
	}
	return nil
}

// runJobs runs up to Parallel hosts at a time; after a failure no new host
// starts (those in flight finish).
func runJobs(ctx context.Context, o *Options, r Runner, key ed25519.PrivateKey, serial uint64, jobs []job) []HostReport {
	out := make([]HostReport, len(jobs))
	var mu sync.Mutex
	failed := false
	sem := make(chan struct{}, o.Parallel)
	var wg sync.WaitGroup
	for i, j := range jobs {
		sem <- struct{}{}
		mu.Lock()
		stop := failed || ctx.Err() != nil
		mu.Unlock()
		if stop {
			<-sem
			out[i] = HostReport{Host: j.name, Status: StatusNotStarted}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			hr := runOne(ctx, o, r, key, serial, j)
			// Progress goes to stderr in both modes: --json keeps stdout for the report.
			mu.Lock()
			fmt.Fprintf(o.IO.ErrOut, "[%s] %s\n", j.name, hr.summary())
			mu.Unlock()
			if hr.Status == StatusFailed {
				mu.Lock()
				failed = true
				mu.Unlock()
			}
			out[i] = hr
		}()
	}
	wg.Wait()
	return out
}

func runOne(ctx context.Context, o *Options, r Runner, key ed25519.PrivateKey, serial uint64, j job) HostReport {
	t0 := o.Now()
	hr := HostReport{Host: j.name}
	b := converge.Bundle{Stack: j.stack, Host: j.name, Serial: serial, Apply: !o.DryRun, Files: j.host.Files, Users: j.host.Users, Dirs: j.host.Dirs}
	wire, err := converge.Sign(key, b)
	if err != nil {
		hr.Status, hr.Error = StatusFailed, err.Error()
		return hr
	}
	out, runErr := r.RunInput(ctx, j.name, helperCommand, bytes.NewReader(wire))
	var res hostconverge.Result
	if jerr := json.Unmarshal(lastLine(out), &res); jerr != nil {
		hr.Status = StatusFailed
		hr.Error = errors.Join(runErr, fmt.Errorf("no result from the host's belay host converge: %w", jerr)).Error()
		return hr
	}
	hr.fill(res, j, o.DryRun)
	if runErr != nil && hr.Error == "" {
		hr.Error = runErr.Error()
	}
	if hr.Error != "" {
		hr.Status = StatusFailed
	}
	hr.Millis = o.Now().Sub(t0).Milliseconds()
	return hr
}

func lastLine(b []byte) []byte {
	s := strings.TrimSpace(string(b))
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return []byte(s)
}

// connect opens the inventory's hosts as the deploy user (lab: the lab's
// admin key; cloud: the agent / key files), as the operator commands do.
func connect(getenv func(string) string, fl *opsenv.Flags) func(inv *inventory.Inventory) (Runner, func(), error) {
	return func(inv *inventory.Inventory) (Runner, func(), error) {
		t, err := opsenv.Open(inv, *fl, getenv)
		if err != nil {
			return nil, nil, err
		}
		return t.Hosts, t.Close, nil
	}
}

// holdLeases takes every app's lease, in name order (opsenv.HoldLeases), like
// a site switch: converge may reload nginx, keepalived and the firewall on
// every app server and PostgreSQL's config under every app, so it excludes
// deploys, rollbacks and drills of all apps. belay has no stack-wide lease;
// taking the per-app ones in a fixed order cannot deadlock with another
// command that does the same.
func holdLeases(getenv func(string) string) func(ctx context.Context, r remote.Runner, inv *inventory.Inventory, progress io.Writer) (context.Context, func(), error) {
	return func(ctx context.Context, r remote.Runner, inv *inventory.Inventory, progress io.Writer) (context.Context, func(), error) {
		return opsenv.HoldLeases(ctx, r, inv, opsenv.LeaseOptions{Apps: opsenv.SiteApps(inv), Action: "converge",
			Actor: deploy.CurrentActor(getenv), LockDir: lease.DefaultLockDir(getenv), Progress: progress})
	}
}
