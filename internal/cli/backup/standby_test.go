package backup

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/belay-sh/belay/hostcmd"
	"github.com/belay-sh/belay/remote/remotetest"
)

func TestParseReplay(t *testing.T) {
	tests := []struct {
		in      string
		want    Replay
		wantErr string
	}{
		{"t 0/9000060 1700000000.25 16777216\n", Replay{InRecovery: true, LSN: 0x9000060, Commit: time.Unix(1700000000, 250e6).UTC(), SegmentSize: 16 << 20}, ""},
		{"t 1/A none 16777216", Replay{InRecovery: true, LSN: 1<<32 | 0xA, SegmentSize: 16 << 20}, ""},
		{"f none none 1048576", Replay{SegmentSize: 1 << 20}, ""},
		{"false none none 16777216", Replay{}, "unexpected"},
		{"t 0/9 none 1000", Replay{}, "power of two"},
		{"t 09 none 16777216", Replay{}, "LSN"},
		{"", Replay{}, "unexpected"},
	}
	for _, tt := range tests {
		r, err := ParseReplay(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%q: error %v, want one with %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || *r != tt.want {
			t.Errorf("%q: %+v %v, want %+v", tt.in, r, err, tt.want)
		}
	}
}

func TestSegmentNumber(t *testing.T) {
	for _, tt := range []struct {
		name string
		size uint64
		want uint64
		ok   bool
	}{
		{"000000010000000000000009", 16 << 20, 9, true},
		{"0000000200000001000000FF", 16 << 20, 256 + 255, true},
		{"000000010000000100000003", 1 << 30, 4 + 3, true},
		{"00000002", 16 << 20, 0, false},
		{"00000001000000000000000G", 16 << 20, 0, false},
	} {
		got, ok := SegmentNumber(tt.name, tt.size)
		if got != tt.want || ok != tt.ok {
			t.Errorf("%s: %d %v, want %d %v", tt.name, got, ok, tt.want, tt.ok)
		}
	}
}

// TestStandbyJudged: the standby is usable only when restored, in recovery
// and close enough to the archive's newest WAL; each other case says why.
func TestStandbyJudged(t *testing.T) {
	now := time.Unix(1_700_100_000, 0).UTC()
	walAt := now.Add(-20 * time.Second)
	wal := &WAL{Segment: "00000001000000000000000C", At: walAt, Age: 20 * time.Second}
	tests := []struct {
		name        string
		restore     string
		replay      string
		replayErr   error
		wal         *WAL
		usable      bool
		reason      string
		behind, lag string // "" = nil
	}{
		{name: "caught up", restore: "exited", replay: "t 0/C000060 1700099900 16777216", wal: wal, usable: true, behind: "0", lag: "0s"},
		{name: "at the next segment's first byte", restore: "exited", replay: "t 0/D000000 1700099900 16777216", wal: wal, usable: true, behind: "0", lag: "0s"},
		{name: "behind a little", restore: "exited", replay: "t 0/A000060 1700099950 16777216", wal: wal, usable: true, behind: "2", lag: "30s"},
		{name: "behind too far", restore: "exited", replay: "t 0/3000060 1700090000 16777216", wal: wal, reason: "behind the archive (9 segments; max 5m0s)", behind: "9", lag: "2h46m20s"},
		{name: "behind, no commit replayed", restore: "exited", replay: "t 0/3000060 none 16777216", wal: wal, reason: "cannot tell how far", behind: "9"},
		{name: "waiting for the first backup", restore: "running", reason: "not restored yet"},
		{name: "restore failed", restore: "failed", reason: "the restore failed: journalctl -u " + hostcmd.StandbyRestoreUnit},
		{name: "never started", restore: "dead", reason: `is "dead"`},
		{name: "postgres down", restore: "exited", replayErr: errors.New("psql: connection refused"), reason: "does not answer"},
		{name: "promoted", restore: "exited", replay: "f none none 16777216", wal: wal, reason: "promoted"},
		{name: "nothing archived", restore: "exited", replay: "t 0/3000060 none 16777216", reason: "no WAL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &remotetest.Runner{Handle: func(c remotetest.Call) ([]byte, error) {
				switch {
				case c.Host != "db-standby" || !c.Root:
					t.Errorf("unexpected call %s", c)
				case strings.Contains(c.Cmd, hostcmd.StandbyRestoreUnit):
					return []byte(tt.restore + "\n"), nil
				case strings.Contains(c.Cmd, "pg_last_wal_replay_lsn"):
					return []byte(tt.replay + "\n"), tt.replayErr
				}
				return nil, nil
			}}
			sb := collectStandby(context.Background(), r, testInv(t).Database.Standby, tt.wal, 5*time.Minute)
			if sb.Usable != tt.usable || !strings.Contains(sb.Reason, tt.reason) || (tt.usable && sb.Reason != "") {
				t.Errorf("usable %v reason %q, want %v %q", sb.Usable, sb.Reason, tt.usable, tt.reason)
			}
			behind, lag := "", ""
			if sb.SegmentsBehind != nil {
				behind = strconv.FormatInt(*sb.SegmentsBehind, 10)
			}
			if sb.Lag != nil {
				lag = sb.Lag.String()
			}
			if behind != tt.behind || lag != tt.lag {
				t.Errorf("behind %q lag %q, want %q %q", behind, lag, tt.behind, tt.lag)
			}
		})
	}
}
