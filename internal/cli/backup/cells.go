package backup

// The dedicated cells' stanzas in `belay backup status`: each cell with its
// own PostgreSQL pair archives to its own stanza in the same repository, so
// each gets the same figures and thresholds as the stack's (last full and
// diff, newest archived WAL = the cell's RPO, last verified restore).

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/belay-sh/belay/drill"
	"github.com/belay-sh/belay/hostcmd"
	"github.com/belay-sh/belay/internal/shq"
	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/remote"
)

// CellBackups is one dedicated cell's stanza.
type CellBackups struct {
	App        string    `json:"app"`
	Cell       string    `json:"cell"`
	Stanza     string    `json:"stanza"`
	LastFull   *Backup   `json:"lastFull"`
	LastDiff   *Backup   `json:"lastDiff"`
	LastWAL    *WAL      `json:"lastArchivedWal"`
	LastVerify *Verified `json:"lastVerifiedRestore"`
	// Standby is the cell's own standby-site database, judged against its
	// stanza's archive like the stack's (nil when the inventory has none).
	Standby  *Standby `json:"standby"`
	Problems []string `json:"problems"`
	// standbyHost is the inventory's cells[].standbyDB.
	standbyHost string
}

// dedicatedStanzas lists the inventory's dedicated cells with their stanza
// (a dedicated pair's stanza is its formation's name: hostspec.CellStanza).
func dedicatedStanzas(inv *inventory.Inventory) []CellBackups {
	var out []CellBackups
	for _, a := range inv.Apps {
		for _, c := range a.Cells {
			if c.Dedicated() {
				out = append(out, CellBackups{App: a.Name, Cell: c.Name, Stanza: c.Formation, Problems: []string{}, standbyHost: c.StandbyDB})
			}
		}
	}
	return out
}

// collectCells reads each dedicated cell's stanza on the repository host.
func collectCells(ctx context.Context, hosts remote.Runner, inv *inventory.Inventory, repo string, now time.Time, st *Status) error {
	for _, cb := range dedicatedStanzas(inv) {
		if err := hostcmd.CheckFormation(cb.Stanza); err != nil {
			return fmt.Errorf("inventory apps.%s.cells.%s: stanza of its own pair: %w", cb.App, cb.Cell, err)
		}
		out, err := hosts.RunRoot(ctx, repo, hostcmd.PgBackRestInfo(cb.Stanza)...)
		if err != nil {
			return fmt.Errorf("pgbackrest info of stanza %s (cell %s/%s) on %s: %w", cb.Stanza, cb.App, cb.Cell, repo, err)
		}
		bi, err := drill.ParseBackupInfo(out, cb.Stanza)
		if err != nil {
			return err
		}
		cb.LastFull, cb.LastDiff = lastBackups(bi, now)
		out, err = hosts.RunRoot(ctx, repo, hostcmd.LastWALOf(cb.Stanza)...)
		if err != nil {
			return fmt.Errorf("archived WAL of stanza %s on %s: %w", cb.Stanza, repo, err)
		}
		if cb.LastWAL, err = ParseLastWAL(string(out), now); err != nil {
			return err
		}
		// The cell's result file exists once its first verification ran.
		out, err = hosts.Run(ctx, repo, shq.Join("cat", "--", hostcmd.CellVerifyResultFile(cb.Stanza))+" 2>/dev/null || true")
		if err != nil {
			return fmt.Errorf("last verified restore of stanza %s on %s: %w", cb.Stanza, repo, err)
		}
		v, err := drill.ParseVerifyResult(out)
		switch {
		case errors.Is(err, drill.ErrNeverVerified):
		case err != nil:
			return fmt.Errorf("stanza %s: %w", cb.Stanza, err)
		default:
			cb.LastVerify = &Verified{VerifyResult: *v, Age: now.Sub(v.Time)}
		}
		if cb.standbyHost != "" {
			cb.Standby = collectStandby(ctx, hosts, cb.standbyHost, cb.LastWAL, st.Thresholds.MaxStandbyLag)
		}
		st.Cells = append(st.Cells, cb)
	}
	return nil
}

// judgeCells applies the stack's thresholds to each cell's stanza; every
// problem also goes to the status's list, naming the cell.
func (st *Status) judgeCells() {
	for i := range st.Cells {
		cb := &st.Cells[i]
		cb.Problems = judgeStanza(cb.LastFull, cb.LastWAL, cb.LastVerify, st.Thresholds.MaxFullAge, st.Thresholds.MaxRPO, st.Thresholds.MaxVerifyAge)
		if sb := cb.Standby; sb != nil && !sb.Usable {
			cb.Problems = append(cb.Problems, fmt.Sprintf("standby database %s is not usable: %s", sb.Host, sb.Reason))
		}
		for _, p := range cb.Problems {
			st.Problems = append(st.Problems, fmt.Sprintf("cell %s/%s (stanza %s): %s", cb.App, cb.Cell, cb.Stanza, p))
		}
	}
}

// judgeStanza is the per-stanza part of the verdict: a full backup recent
// enough, WAL archived recently enough, a recent successful verification.
func judgeStanza(full *Backup, wal *WAL, ver *Verified, maxFull, maxRPO, maxVerify time.Duration) []string {
	out := []string{}
	p := func(format string, a ...any) { out = append(out, fmt.Sprintf(format, a...)) }
	switch {
	case full == nil:
		p("no full backup in the repository")
	case full.Age > maxFull:
		p("last full backup %s is %s old (max %s)", full.Label, short(full.Age), maxFull)
	}
	switch {
	case wal == nil:
		p("no WAL archived yet")
	case wal.Age > maxRPO:
		p("newest archived WAL %s is %s old: RPO above %s", wal.Segment, short(wal.Age), maxRPO)
	}
	switch {
	case ver == nil:
		p("no restore verification has run yet")
	case !ver.OK:
		p("last restore verification FAILED (%s): %s", ver.Time.Format(time.RFC3339), ver.Details)
	case ver.Age > maxVerify:
		p("last verified restore is %s old (max %s)", short(ver.Age), maxVerify)
	}
	return out
}

// printCells writes one block per dedicated cell's stanza.
func (st *Status) printCells(b *strings.Builder) {
	for _, cb := range st.Cells {
		fmt.Fprintf(b, "cell %s/%s (own pair, stanza %s)\n", cb.App, cb.Cell, cb.Stanza)
		printFigures(b, cb.LastFull, cb.LastDiff, cb.LastWAL, cb.LastVerify)
		if cb.Standby != nil {
			printStandby(b, cb.Standby, st.At)
		}
	}
}
