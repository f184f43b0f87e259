package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/belay-sh/belay/drill"
	"github.com/belay-sh/belay/hostcmd"
	"github.com/belay-sh/belay/internal/cli"
	"github.com/belay-sh/belay/internal/opsenv"
	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/remote"
)

// Streamer is what `backup now` needs from the hosts: the commands of
// remote.Runner, and one that streams its output (tests swap it).
type Streamer interface {
	remote.Runner
	Stream(ctx context.Context, host, cmd string, stdout, stderr io.Writer) error
}

// NowOptions are one `belay backup now` invocation.
type NowOptions struct {
	IO        cli.IO
	Inventory func(ref string) (*inventory.Inventory, error)
	Getenv    func(string) string
	Open      func(inv *inventory.Inventory, fl opsenv.Flags, getenv func(string) string) (*opsenv.Target, error)
	// Hosts replaces the opened target's hosts (tests).
	Hosts Streamer
	Now   func() time.Time

	InventoryRef string
	Full, Diff   bool
	JSON         bool
	Conn         opsenv.Flags
}

// NewCmdNow returns `belay backup now`.
func NewCmdNow(f *cli.Factory, runF func(*NowOptions) error) *cobra.Command {
	opts := &NowOptions{IO: f.IO, Inventory: f.Inventory, Getenv: f.Getenv, Open: opsenv.Open, Now: time.Now}
	cmd := &cobra.Command{
		Use:   "now [--full|--diff]",
		Short: "Take a pgBackRest backup now on the repository host, with its progress; exit status is the backup's",
		Long: `Run one backup on the repository host (inventory backup.host), over SSH with
its pinned host key, as the deploy user through the exact root command its
sudoers allow:

  sudo -n runuser -u pgbackrest -- ` + hostcmd.BackupScript + ` full|diff

That is the job the timers run: it creates the stanza if needed, stamps the
canary on the primary, and backs up. Its output streams here as it comes (to
standard error with --json); the command exits with the backup's exit status.

--diff (the default) backs up what changed since the last full backup;
pgBackRest takes a full one instead when the repository has none. --full
copies everything. A backup already running (a timer, the first backup of a
new stack) holds the stanza's lock: this one then fails with pgBackRest's
lock error and changes nothing. Interrupting (Ctrl-C) stops the backup; the
next one resumes or discards what it left.`,
		Example: "  belay backup now                # differential (full if there is none yet)\n" +
			"  belay backup now --full --json  # progress on stderr, the result as JSON on stdout",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(opts)
			}
			return runNow(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&opts.InventoryRef, "inventory", "i", "", cli.InventoryUsage)
	fl.BoolVar(&opts.Full, "full", false, "take a full backup")
	fl.BoolVar(&opts.Diff, "diff", false, "take a differential backup (the default)")
	fl.BoolVar(&opts.JSON, "json", false, "print the result as JSON (progress goes to standard error)")
	opsenv.AddFlags(cmd, &opts.Conn)
	cmd.MarkFlagsMutuallyExclusive("full", "diff")
	return cmd
}

// NowResult is what one `belay backup now` did.
type NowResult struct {
	Stack  string `json:"stack"`
	Host   string `json:"host"`
	Stanza string `json:"stanza"`
	// Requested is full or diff; Type is what pgBackRest took (a diff becomes a full when none exists).
	Requested string    `json:"requested"`
	Label     string    `json:"label,omitempty"`
	Type      string    `json:"type,omitempty"`
	Started   time.Time `json:"started"`
	Finished  time.Time `json:"finished"`
	Seconds   float64   `json:"durationSeconds"`
	OK        bool      `json:"ok"`
	ExitCode  int       `json:"exitCode"`
	Error     string    `json:"error,omitempty"`
}

func (o *NowOptions) kind() (string, error) {
	switch {
	case o.Full && o.Diff:
		return "", errors.New("--full and --diff: expected one of them")
	case o.Full:
		return "full", nil
	}
	return "diff", nil
}

func runNow(ctx context.Context, o *NowOptions) error {
	if ctx == nil {
		ctx = context.Background()
	}
	kind, err := o.kind()
	if err != nil {
		return err
	}
	inv, err := o.Inventory(o.InventoryRef)
	if err != nil {
		return err
	}
	if inv.Backup.Host == "" || inv.Host(inv.Backup.Host) == nil {
		return fmt.Errorf("inventory backup.host %q: not a host of stack %s", inv.Backup.Host, inv.Stack)
	}
	hosts := o.Hosts
	if hosts == nil {
		t, err := o.Open(inv, o.Conn, o.Getenv)
		if err != nil {
			return err
		}
		defer t.Close()
		hosts = t.Hosts
	}
	progress := o.IO.Out
	if o.JSON {
		progress = o.IO.ErrOut
	}
	res, err := TakeBackup(ctx, hosts, inv, kind, progress, o.Now)
	if err != nil {
		return err
	}
	if o.JSON {
		if err := cli.PrintJSON(o.IO.Out, res); err != nil {
			return err
		}
	} else if res.OK {
		fmt.Fprintf(o.IO.Out, "backup %s (%s) of stanza %s on %s done in %s\n", res.Label, res.Type, res.Stanza, res.Host, time.Duration(res.Seconds*float64(time.Second)).Round(100*time.Millisecond))
	} else {
		fmt.Fprintf(o.IO.ErrOut, "backup failed on %s (exit status %d): %s\n", res.Host, res.ExitCode, res.Error)
	}
	if !res.OK {
		return cli.ExitError{Code: res.ExitCode}
	}
	return nil
}

// TakeBackup runs one backup of kind (full or diff) on the repository host
// through `sudo -n` over SSH (always: the sudoers line is the contract, in the
// lab too), streaming its output to progress, and names the backup it made.
// An error means nothing could be judged (no connection, unreadable
// repository); a backup that ran and failed is a result with OK false and the
// remote exit status.
func TakeBackup(ctx context.Context, hosts Streamer, inv *inventory.Inventory, kind string, progress io.Writer, now func() time.Time) (*NowResult, error) {
	ok := false
	for _, k := range hostcmd.BackupKinds {
		ok = ok || k == kind
	}
	if !ok {
		return nil, fmt.Errorf("backup kind %q: expected one of %v", kind, hostcmd.BackupKinds)
	}
	repo, stanza := inv.Backup.Host, inv.Backup.Stanza
	res := &NowResult{Stack: inv.Stack, Host: repo, Stanza: stanza, Requested: kind}
	before := map[string]bool{}
	out, err := hosts.RunRoot(ctx, repo, hostcmd.PgBackRestInfo(stanza)...)
	if err != nil {
		return nil, fmt.Errorf("pgbackrest info on %s before the backup: %w", repo, err)
	}
	// A stanza not created yet is fine: the backup job creates it.
	if bi, err := drill.ParseBackupInfo(out, stanza); err == nil {
		for _, b := range bi.Backup {
			before[b.Label] = true
		}
	}
	res.Started = now().UTC()
	err = hosts.Stream(ctx, repo, remote.SudoCommand(hostcmd.BackupNow(kind, stanza)), progress, progress)
	res.Finished = now().UTC()
	res.Seconds = res.Finished.Sub(res.Started).Seconds()
	if err != nil {
		code, exited := remote.ExitStatus(err)
		if !exited {
			return nil, fmt.Errorf("backup on %s: %w", repo, err)
		}
		res.ExitCode, res.Error = code, err.Error()
		return res, nil
	}
	out, err = hosts.RunRoot(ctx, repo, hostcmd.PgBackRestInfo(stanza)...)
	if err != nil {
		return nil, fmt.Errorf("pgbackrest info on %s after the backup: %w", repo, err)
	}
	bi, err := drill.ParseBackupInfo(out, stanza)
	if err != nil {
		return nil, err
	}
	for _, b := range bi.Backup {
		if !before[b.Label] {
			res.Label, res.Type = b.Label, b.Type
		}
	}
	if res.Label == "" {
		res.ExitCode, res.Error = 1, "the backup job succeeded but the repository lists no new backup"
		return res, nil
	}
	res.OK = true
	return res, nil
}
