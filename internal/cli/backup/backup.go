// Package backup is the `belay backup` command group: `status` reads the
// repository host (last backups, newest archived WAL = current RPO, last
// verified restore) and the standby database (restored, replaying, how far
// behind the archive) and exits non-zero when a threshold is exceeded or the
// standby is not usable, for monitoring; `now` takes a backup on demand.
package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/belay-sh/belay/drill"
	"github.com/belay-sh/belay/hostcmd"
	"github.com/belay-sh/belay/internal/cli"
	"github.com/belay-sh/belay/internal/opsenv"
	"github.com/belay-sh/belay/internal/shq"
	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/remote"
)

// NewCmdBackup returns the `belay backup` group.
func NewCmdBackup(f *cli.Factory) *cobra.Command {
	cmd := &cobra.Command{Use: "backup", Short: "Inspect the stack's backups and the standby, or take a backup now"}
	cmd.AddCommand(NewCmdStatus(f, nil), NewCmdNow(f, nil))
	return cmd
}

// StatusOptions are one `belay backup status` invocation.
type StatusOptions struct {
	IO        cli.IO
	Inventory func(ref string) (*inventory.Inventory, error)
	Getenv    func(string) string
	Open      func(inv *inventory.Inventory, fl opsenv.Flags, getenv func(string) string) (*opsenv.Target, error)
	Now       func() time.Time

	InventoryRef string
	JSON         bool
	MaxRPO       time.Duration
	MaxVerifyAge time.Duration
	MaxFullAge   time.Duration
	// MaxStandbyLag is how far the standby may be behind the archive's newest WAL and still count as usable.
	MaxStandbyLag time.Duration
	Conn          opsenv.Flags
}

// NewCmdStatus returns `belay backup status`.
func NewCmdStatus(f *cli.Factory, runF func(*StatusOptions) error) *cobra.Command {
	opts := &StatusOptions{IO: f.IO, Inventory: f.Inventory, Getenv: f.Getenv, Open: opsenv.Open, Now: time.Now}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Last backups, WAL archive age (RPO), last verified restore, standby replay lag; exit 1 on a problem",
		Long: `Read the repository host over SSH: the last full and differential pgBackRest
backups (and, on a new stack, the first-backup job's state), the newest
archived WAL segment and its age (the cross-site RPO right now), and the last
restore verification with its age.

Then the standby site's database: whether it is restored (belay-standby-restore
done), replaying the archive (in recovery), and how far behind the archive's
newest WAL it is — in segments, and in time (0 when it replayed everything
archived, else the newest segment's archive time minus its last replayed
commit, an upper bound). It is usable when restored, in recovery and at most
--max-standby-lag behind.

Each cell with its own PostgreSQL pair (cells[].database: dedicated) archives
to its own stanza in the same repository: it gets the same figures and
thresholds, in its own block (and under "cells" in --json); its problems name
the cell.

Exits 1 when the RPO, the last full backup or the last verified restore is
older than its threshold, the last verification failed, or the standby is not
usable, so monitoring (or a script waiting for a new stack's standby) can run it.`,
		Example: "  belay backup status\n  belay backup status --json --max-rpo 2m --max-verify-age 26h --max-standby-lag 2m",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(opts)
			}
			return runStatus(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&opts.InventoryRef, "inventory", "i", "", cli.InventoryUsage)
	fl.BoolVar(&opts.JSON, "json", false, "print the status as JSON")
	fl.DurationVar(&opts.MaxRPO, "max-rpo", 5*time.Minute, "alert when the newest archived WAL is older than this")
	fl.DurationVar(&opts.MaxVerifyAge, "max-verify-age", 26*time.Hour, "alert when the last verified restore is older than this")
	fl.DurationVar(&opts.MaxFullAge, "max-full-age", 8*24*time.Hour, "alert when the last full backup is older than this")
	fl.DurationVar(&opts.MaxStandbyLag, "max-standby-lag", 5*time.Minute, "alert when the standby's replay is further behind the archive's newest WAL")
	opsenv.AddFlags(cmd, &opts.Conn)
	return cmd
}

// Backup is one backup in the status.
type Backup struct {
	Label string        `json:"label"`
	Type  string        `json:"type"`
	Stop  time.Time     `json:"stop"`
	Age   time.Duration `json:"ageNs"`
}

// WAL is the newest archived WAL segment.
type WAL struct {
	Segment string        `json:"segment"`
	At      time.Time     `json:"at"`
	Age     time.Duration `json:"ageNs"`
}

// Verified is the last restore verification.
type Verified struct {
	drill.VerifyResult
	Age time.Duration `json:"ageNs"`
}

// Status is the whole answer.
type Status struct {
	Stack    string    `json:"stack"`
	Host     string    `json:"host"`
	Stanza   string    `json:"stanza"`
	At       time.Time `json:"at"`
	LastFull *Backup   `json:"lastFull"`
	// FirstBackup is the first-backup job's SubState (running while a new
	// stack waits for its primary, exited once done; "" on older stacks).
	FirstBackup string    `json:"firstBackupState"`
	LastDiff    *Backup   `json:"lastDiff"`
	LastWAL     *WAL      `json:"lastArchivedWal"`
	LastVerify  *Verified `json:"lastVerifiedRestore"`
	// Standby is nil on a stack without a standby database.
	Standby *Standby `json:"standby"`
	// Cells are the dedicated cells' stanzas (cells.go), empty without one.
	Cells      []CellBackups `json:"cells"`
	Problems   []string      `json:"problems"`
	Healthy    bool          `json:"healthy"`
	Thresholds struct {
		MaxRPO        time.Duration `json:"maxRpoNs"`
		MaxVerifyAge  time.Duration `json:"maxVerifyAgeNs"`
		MaxFullAge    time.Duration `json:"maxFullAgeNs"`
		MaxStandbyLag time.Duration `json:"maxStandbyLagNs"`
	} `json:"thresholds"`
}

func runStatus(ctx context.Context, o *StatusOptions) error {
	if ctx == nil {
		ctx = context.Background()
	}
	for _, th := range []struct {
		flag string
		d    time.Duration
	}{{"--max-rpo", o.MaxRPO}, {"--max-verify-age", o.MaxVerifyAge}, {"--max-full-age", o.MaxFullAge}, {"--max-standby-lag", o.MaxStandbyLag}} {
		if th.d <= 0 {
			return fmt.Errorf("%s %s: expected a positive duration such as 5m", th.flag, th.d)
		}
	}
	inv, err := o.Inventory(o.InventoryRef)
	if err != nil {
		return err
	}
	if inv.Backup.Host == "" || inv.Host(inv.Backup.Host) == nil {
		return fmt.Errorf("inventory backup.host %q: not a host of stack %s", inv.Backup.Host, inv.Stack)
	}
	t, err := o.Open(inv, o.Conn, o.Getenv)
	if err != nil {
		return err
	}
	defer t.Close()
	st, err := Collect(ctx, t.Hosts, inv, o)
	if err != nil {
		return err
	}
	if o.JSON {
		err = cli.PrintJSON(o.IO.Out, st)
	} else {
		err = st.Print(o.IO.Out)
	}
	if err != nil {
		return err
	}
	if !st.Healthy {
		return cli.ExitError{Code: 1}
	}
	return nil
}

// Collect reads the repository host and judges the figures.
func Collect(ctx context.Context, hosts remote.Runner, inv *inventory.Inventory, o *StatusOptions) (*Status, error) {
	repo, stanza := inv.Backup.Host, inv.Backup.Stanza
	now := o.Now()
	st := &Status{Stack: inv.Stack, Host: repo, Stanza: stanza, At: now.UTC(), Problems: []string{}}
	st.Thresholds.MaxRPO, st.Thresholds.MaxVerifyAge, st.Thresholds.MaxFullAge = o.MaxRPO, o.MaxVerifyAge, o.MaxFullAge
	st.Thresholds.MaxStandbyLag = o.MaxStandbyLag
	out, err := hosts.RunRoot(ctx, repo, hostcmd.PgBackRestInfo(stanza)...)
	if err != nil {
		return nil, fmt.Errorf("pgbackrest info on %s: %w", repo, err)
	}
	bi, err := drill.ParseBackupInfo(out, stanza)
	if err != nil {
		return nil, err
	}
	st.LastFull, st.LastDiff = lastBackups(bi, now)
	out, err = hosts.RunRoot(ctx, repo, hostcmd.LastWAL()...)
	if err != nil {
		return nil, fmt.Errorf("archived WAL on %s: %w", repo, err)
	}
	if w, err := ParseLastWAL(string(out), now); err != nil {
		return nil, err
	} else {
		st.LastWAL = w
	}
	out, err = hosts.Run(ctx, repo, shq.Join("cat", "--", drill.VerifyResultFile))
	if err != nil {
		return nil, fmt.Errorf("last verified restore on %s: %w", repo, err)
	}
	v, err := drill.ParseVerifyResult(out)
	switch {
	case errors.Is(err, drill.ErrNeverVerified):
	case err != nil:
		return nil, err
	default:
		st.LastVerify = &Verified{VerifyResult: *v, Age: now.Sub(v.Time)}
	}
	if st.LastFull == nil {
		// Only worth a round trip while there is no full backup: it tells a
		// new stack still waiting for its primary from one whose job gave up.
		out, err := hosts.RunRoot(ctx, repo, hostcmd.FirstBackupState()...)
		if err != nil {
			return nil, fmt.Errorf("first-backup job on %s: %w", repo, err)
		}
		st.FirstBackup = strings.TrimSpace(string(out))
	}
	if inv.Database.Standby != "" {
		st.Standby = collectStandby(ctx, hosts, inv.Database.Standby, st.LastWAL, o.MaxStandbyLag)
	}
	st.Cells = []CellBackups{}
	if err := collectCells(ctx, hosts, inv, repo, now, st); err != nil {
		return nil, err
	}
	st.judge()
	st.judgeCells()
	st.Healthy = len(st.Problems) == 0
	return st, nil
}

// lastBackups picks the newest full and the newest diff/incr backup.
func lastBackups(bi *drill.BackupInfo, now time.Time) (full, diff *Backup) {
	for _, b := range bi.Backup {
		x := &Backup{Label: b.Label, Type: b.Type, Stop: time.Unix(b.Timestamp.Stop, 0).UTC()}
		x.Age = now.Sub(x.Stop)
		switch b.Type {
		case "full":
			full = x
		case "diff", "incr":
			diff = x
		}
	}
	return full, diff
}

// ParseLastWAL reads "<mtime epoch> <file>" ("" = nothing archived).
func ParseLastWAL(out string, now time.Time) (*WAL, error) {
	out = strings.TrimSpace(out)
	if out == "" {
		return nil, nil
	}
	f := strings.Fields(out)
	if len(f) != 2 {
		return nil, fmt.Errorf("archived WAL: unexpected %q", out)
	}
	secs, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return nil, fmt.Errorf("archived WAL time %q: %w", f[0], err)
	}
	at := time.Unix(0, int64(secs*1e9)).UTC()
	seg := f[1]
	if i := strings.IndexAny(seg, "-."); i > 0 {
		seg = seg[:i]
	}
	return &WAL{Segment: seg, At: at, Age: now.Sub(at)}, nil
}

func (st *Status) judge() {
	p := func(format string, a ...any) { st.Problems = append(st.Problems, fmt.Sprintf(format, a...)) }
	switch {
	case st.LastFull == nil && st.FirstBackup == "running":
		p("no full backup in the repository yet: %s is waiting for a writable primary or taking it", hostcmd.FirstBackupUnit)
	case st.LastFull == nil && st.FirstBackup == "failed":
		p("no full backup in the repository: %s gave up (journalctl -u %s on %s), `belay backup now --full` takes one", hostcmd.FirstBackupUnit, hostcmd.FirstBackupUnit, st.Host)
	case st.LastFull == nil:
		p("no full backup in the repository")
	case st.LastFull.Age > st.Thresholds.MaxFullAge:
		p("last full backup %s is %s old (max %s)", st.LastFull.Label, short(st.LastFull.Age), st.Thresholds.MaxFullAge)
	}
	switch {
	case st.LastWAL == nil:
		p("no WAL archived yet")
	case st.LastWAL.Age > st.Thresholds.MaxRPO:
		p("newest archived WAL %s is %s old: RPO above %s", st.LastWAL.Segment, short(st.LastWAL.Age), st.Thresholds.MaxRPO)
	}
	switch {
	case st.LastVerify == nil:
		p("no restore verification has run yet")
	case !st.LastVerify.OK:
		p("last restore verification FAILED (%s): %s", st.LastVerify.Time.Format(time.RFC3339), st.LastVerify.Details)
	case st.LastVerify.Age > st.Thresholds.MaxVerifyAge:
		p("last verified restore is %s old (max %s)", short(st.LastVerify.Age), st.Thresholds.MaxVerifyAge)
	}
	if sb := st.Standby; sb != nil && !sb.Usable {
		p("standby database %s is not usable: %s", sb.Host, sb.Reason)
	}
	st.Healthy = len(st.Problems) == 0
}

func short(d time.Duration) string {
	if d > time.Hour {
		return d.Round(time.Minute).String()
	}
	return d.Round(time.Second).String()
}

// Print writes the status for people.
func (st *Status) Print(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "backups of stack %s (stanza %s on %s) at %s\n", st.Stack, st.Stanza, st.Host, st.At.Format(time.RFC3339))
	printFigures(&b, st.LastFull, st.LastDiff, st.LastWAL, st.LastVerify)
	if sb := st.Standby; sb != nil {
		printStandby(&b, sb, st.At)
	}
	st.printCells(&b)
	if st.Healthy {
		b.WriteString("healthy\n")
	} else {
		for _, p := range st.Problems {
			fmt.Fprintf(&b, "PROBLEM: %s\n", p)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// printFigures writes one stanza's backups, newest archived WAL and last
// verification.
func printFigures(b *strings.Builder, full, diff *Backup, wal *WAL, ver *Verified) {
	line := func(name string, x *Backup) {
		if x == nil {
			fmt.Fprintf(b, "  %-22s none\n", name)
			return
		}
		fmt.Fprintf(b, "  %-22s %s, finished %s (%s ago)\n", name, x.Label, x.Stop.Format(time.RFC3339), short(x.Age))
	}
	line("last full backup", full)
	line("last diff backup", diff)
	if wal != nil {
		fmt.Fprintf(b, "  %-22s %s at %s (%s ago = current RPO)\n", "last archived WAL", wal.Segment, wal.At.Format(time.RFC3339), short(wal.Age))
	} else {
		fmt.Fprintf(b, "  %-22s none\n", "last archived WAL")
	}
	if v := ver; v != nil {
		res := "ok"
		if !v.OK {
			res = "FAILED"
		}
		fmt.Fprintf(b, "  %-22s %s of %s at %s (%s ago): %s\n", "last verified restore", res, v.BackupLabel, v.Time.Format(time.RFC3339), short(v.Age), v.Details)
	} else {
		fmt.Fprintf(b, "  %-22s none\n", "last verified restore")
	}
}
