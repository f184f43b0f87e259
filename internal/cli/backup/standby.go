package backup

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/belay-sh/belay/hostcmd"
	"github.com/belay-sh/belay/remote"
)

// Standby is the standby site's database as `backup status` judges it: is it
// restored, replaying the archive, and how far behind the archive's newest WAL.
type Standby struct {
	Host string `json:"host"`
	// RestoreState is belay-standby-restore's SubState: running (waiting for
	// the first backup, or restoring), exited (restored), failed.
	RestoreState string `json:"restoreState"`
	// InRecovery is nil when PostgreSQL did not answer.
	InRecovery *bool  `json:"inRecovery"`
	ReplayLSN  string `json:"replayLsn,omitempty"`
	// LastReplayedCommit is the commit time of the last transaction replayed.
	LastReplayedCommit *time.Time `json:"lastReplayedCommit,omitempty"`
	// SegmentsBehind is how many WAL segments the archive holds past the one
	// replay is in (0 = it replayed everything archived); nil when unknown.
	SegmentsBehind *int64 `json:"segmentsBehindArchive"`
	// Lag is how far the standby's data is behind the archive's newest WAL:
	// 0 when it replayed everything archived, else the newest archived
	// segment's time minus the last replayed commit (an upper bound); nil when
	// that cannot be told.
	Lag    *time.Duration `json:"lagNs"`
	Usable bool           `json:"usable"`
	// Reason says why it is not usable ("" when it is).
	Reason string `json:"reason,omitempty"`
}

// Replay is the standby's answer to hostcmd.StandbyReplaySQL.
type Replay struct {
	InRecovery  bool
	LSN         uint64 // 0 = none replayed
	Commit      time.Time
	SegmentSize uint64
}

// ParseReplay reads "<t|f> <lsn|none> <epoch|none> <segment size>".
func ParseReplay(out string) (*Replay, error) {
	f := strings.Fields(out)
	if len(f) != 4 || (f[0] != "t" && f[0] != "f") {
		return nil, fmt.Errorf("standby replay state: unexpected %q, expected \"<t|f> <lsn|none> <epoch|none> <segment size>\"", strings.TrimSpace(out))
	}
	r := &Replay{InRecovery: f[0] == "t"}
	if f[1] != "none" {
		lsn, err := ParseLSN(f[1])
		if err != nil {
			return nil, err
		}
		r.LSN = lsn
	}
	if f[2] != "none" {
		at, err := parseEpoch(f[2])
		if err != nil {
			return nil, fmt.Errorf("standby last replayed commit %q: expected epoch seconds: %w", f[2], err)
		}
		r.Commit = at
	}
	size, err := strconv.ParseUint(f[3], 10, 64)
	if err != nil || size == 0 || size&(size-1) != 0 {
		return nil, fmt.Errorf("standby wal_segment_size %q: expected a power of two in bytes", f[3])
	}
	r.SegmentSize = size
	return r, nil
}

// parseEpoch reads "seconds[.fraction]" exactly (a float64 would round microseconds).
func parseEpoch(s string) (time.Time, error) {
	whole, frac, _ := strings.Cut(s, ".")
	sec, err := strconv.ParseInt(whole, 10, 64)
	if err != nil {
		return time.Time{}, err
	}
	var ns int64
	if frac != "" {
		frac = (frac + "000000000")[:9]
		if ns, err = strconv.ParseInt(frac, 10, 64); err != nil {
			return time.Time{}, err
		}
	}
	return time.Unix(sec, ns).UTC(), nil
}

// ParseLSN reads PostgreSQL's "X/Y" LSN notation.
func ParseLSN(s string) (uint64, error) {
	hi, lo, ok := strings.Cut(s, "/")
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if !ok || err1 != nil || err2 != nil {
		return 0, fmt.Errorf("LSN %q: expected X/Y in hexadecimal", s)
	}
	return h<<32 | l, nil
}

// SegmentNumber is the position of a WAL file name (TTTTTTTTXXXXXXXXYYYYYYYY)
// in the WAL, timeline aside, for segments of size bytes.
func SegmentNumber(name string, size uint64) (uint64, bool) {
	if len(name) != 24 {
		return 0, false // a .history file, or no segment at all
	}
	log, err1 := strconv.ParseUint(name[8:16], 16, 32)
	seg, err2 := strconv.ParseUint(name[16:24], 16, 32)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return log*(1<<32/size) + seg, true
}

// collectStandby reads a standby database host (the stack's, or a dedicated
// cell's) and judges it against its stanza's newest archived WAL (wal may be
// nil: nothing archived).
func collectStandby(ctx context.Context, hosts remote.Runner, host string, wal *WAL, maxLag time.Duration) *Standby {
	sb := &Standby{Host: host}
	out, err := hosts.RunRoot(ctx, sb.Host, hostcmd.StandbyRestoreState()...)
	if err != nil {
		sb.Reason = fmt.Sprintf("cannot read %s: %v", hostcmd.StandbyRestoreUnit, err)
		return sb
	}
	sb.RestoreState = strings.TrimSpace(string(out))
	switch sb.RestoreState {
	case "exited":
	case "running":
		sb.Reason = "not restored yet: " + hostcmd.StandbyRestoreUnit + " is waiting for the first backup or restoring it"
		return sb
	case "failed":
		sb.Reason = "the restore failed: journalctl -u " + hostcmd.StandbyRestoreUnit + " on " + sb.Host
		return sb
	default:
		sb.Reason = fmt.Sprintf("not restored: %s is %q", hostcmd.StandbyRestoreUnit, sb.RestoreState)
		return sb
	}
	out, err = hosts.RunRoot(ctx, sb.Host, hostcmd.Psql(hostcmd.StandbyReplaySQL)...)
	if err != nil {
		sb.Reason = fmt.Sprintf("the standby PostgreSQL does not answer: %v", err)
		return sb
	}
	r, err := ParseReplay(string(out))
	if err != nil {
		sb.Reason = err.Error()
		return sb
	}
	sb.InRecovery = &r.InRecovery
	if !r.InRecovery {
		sb.Reason = "promoted: it serves writes (a site switch), so it is no standby to switch to"
		return sb
	}
	if r.LSN != 0 {
		sb.ReplayLSN = fmt.Sprintf("%X/%X", r.LSN>>32, uint32(r.LSN))
	}
	if !r.Commit.IsZero() {
		c := r.Commit
		sb.LastReplayedCommit = &c
	}
	if wal != nil && r.LSN != 0 {
		if archived, ok := SegmentNumber(wal.Segment, r.SegmentSize); ok {
			// After a segment switch replay stands at the next segment's first
			// byte, which is not archived yet: the byte before it tells the segment.
			behind := int64(archived) - int64((r.LSN-1)/r.SegmentSize)
			if behind < 0 {
				behind = 0
			}
			sb.SegmentsBehind = &behind
			var lag time.Duration
			switch {
			case behind == 0:
				sb.Lag = &lag
			case sb.LastReplayedCommit != nil:
				if lag = wal.At.Sub(r.Commit); lag < 0 {
					lag = 0
				}
				sb.Lag = &lag
			}
		}
	}
	switch {
	case wal == nil:
		sb.Reason = "the archive holds no WAL to replay"
	case sb.Lag == nil:
		sb.Reason = "cannot tell how far replay is behind the archive (replayed " + orNone(sb.ReplayLSN) + ", archive at " + wal.Segment + ")"
	case *sb.Lag > maxLag:
		sb.Reason = fmt.Sprintf("replay is %s behind the archive (%d segments; max %s)", short(*sb.Lag), *sb.SegmentsBehind, maxLag)
	default:
		sb.Usable = true
	}
	return sb
}

func orNone(s string) string {
	if s == "" {
		return "nothing"
	}
	return s
}

// printStandby writes a standby database's lines of the status.
func printStandby(b *strings.Builder, sb *Standby, at time.Time) {
	state := "usable"
	if !sb.Usable {
		state = "NOT usable"
	}
	lag := "unknown"
	if sb.Lag != nil {
		lag = short(*sb.Lag)
	}
	behind := "?"
	if sb.SegmentsBehind != nil {
		behind = strconv.FormatInt(*sb.SegmentsBehind, 10)
	}
	fmt.Fprintf(b, "  %-22s %s %s: restore %s, replayed %s, %s WAL segments and %s behind the archive\n", "standby database", sb.Host, state, orNone(sb.RestoreState), orNone(sb.ReplayLSN), behind, lag)
	if sb.LastReplayedCommit != nil {
		fmt.Fprintf(b, "  %-22s %s (%s ago)\n", "last replayed commit", sb.LastReplayedCommit.Format(time.RFC3339), short(at.Sub(*sb.LastReplayedCommit)))
	}
}
