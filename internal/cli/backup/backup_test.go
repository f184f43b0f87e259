package backup

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/belay-sh/belay/hostcmd"
	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/remote/remotetest"
)

func TestParseLastWAL(t *testing.T) {
	now := time.Unix(1_700_000_100, 0)
	tests := []struct {
		in      string
		seg     string
		age     time.Duration
		nilWant bool
		wantErr bool
	}{
		{"", "", 0, true, false},
		{"1700000040.5 000000010000000000000005-9a1b2c.zst\n", "000000010000000000000005", 59500 * time.Millisecond, false, false},
		{"1700000090.0000000000 00000002.history", "00000002", 10 * time.Second, false, false},
		{"garbage", "", 0, false, true},
		{"x 000000010000000000000005", "", 0, false, true},
	}
	for _, tt := range tests {
		w, err := ParseLastWAL(tt.in, now)
		if tt.wantErr {
			if err == nil {
				t.Errorf("%q: no error", tt.in)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%q: %v", tt.in, err)
		}
		if tt.nilWant {
			if w != nil {
				t.Errorf("%q: %+v, want nil", tt.in, w)
			}
			continue
		}
		if w.Segment != tt.seg || w.Age != tt.age {
			t.Errorf("%q: %s %s, want %s %s", tt.in, w.Segment, w.Age, tt.seg, tt.age)
		}
	}
}

func testInv(t *testing.T) *inventory.Inventory {
	t.Helper()
	inv, err := inventory.Load("../../../drill/testdata/inventory.json")
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

func TestCollectAndJudge(t *testing.T) {
	now := time.Unix(1_700_100_000, 0).UTC()
	info := `[{"name":"belay","archive":[{"id":"15-1","max":"000000010000000000000009","min":"000000010000000000000001"}],"backup":[` +
		`{"label":"20231115-010000F","type":"full","timestamp":{"start":1700010000,"stop":1700010100}},` +
		`{"label":"20231115-010000F_20231115-130000D","type":"diff","timestamp":{"start":1700050000,"stop":1700050100}}]}]`
	verify := func(ok bool, at time.Time) string {
		return `{"time":"` + at.Format(time.RFC3339) + `","backupLabel":"20231115-010000F","ok":` + map[bool]string{true: "true", false: "false"}[ok] + `,"details":"d","canaryRows":2,"durationSeconds":9}`
	}
	tests := []struct {
		name     string
		walAge   time.Duration
		verify   string
		problems []string
	}{
		{"healthy", 30 * time.Second, verify(true, now.Add(-time.Hour)), nil},
		{"rpo too high", 10 * time.Minute, verify(true, now.Add(-time.Hour)), []string{"RPO above 5m0s"}},
		{"verification failed", time.Second, verify(false, now.Add(-time.Hour)), []string{"verification FAILED"}},
		{"verification old", time.Second, verify(true, now.Add(-48*time.Hour)), []string{"last verified restore is 48h0m0s old"}},
		{"never verified", time.Second, "", []string{"no restore verification"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &remotetest.Runner{Handle: func(c remotetest.Call) ([]byte, error) {
				switch {
				case strings.Contains(c.Cmd, "info"):
					return []byte(info), nil
				case c.Cmd == hostcmd.LastWALPath:
					at := float64(now.Add(-tt.walAge).UnixNano()) / 1e9
					return []byte(strconv.FormatFloat(at, 'f', 3, 64) + " 000000010000000000000009-abc.zst\n"), nil
				case strings.HasPrefix(c.Cmd, "cat "):
					return []byte(tt.verify), nil
				case c.Host == "db-standby" && strings.Contains(c.Cmd, hostcmd.StandbyRestoreUnit):
					return []byte("exited\n"), nil
				case c.Host == "db-standby" && strings.Contains(c.Cmd, "pg_last_wal_replay_lsn"):
					// Replayed everything archived (segment 9): usable.
					return []byte("t 0/9000060 1700099000.5 16777216\n"), nil
				}
				return nil, nil
			}}
			o := &StatusOptions{Now: func() time.Time { return now }, MaxRPO: 5 * time.Minute, MaxVerifyAge: 26 * time.Hour, MaxFullAge: 8 * 24 * time.Hour, MaxStandbyLag: 5 * time.Minute}
			st, err := Collect(context.Background(), r, testInv(t), o)
			if err != nil {
				t.Fatal(err)
			}
			if st.LastFull == nil || st.LastFull.Label != "20231115-010000F" || st.LastDiff == nil {
				t.Errorf("backups: %+v %+v", st.LastFull, st.LastDiff)
			}
			if st.Healthy != (len(tt.problems) == 0) {
				t.Errorf("healthy = %v, problems %v", st.Healthy, st.Problems)
			}
			all := strings.Join(st.Problems, "\n")
			for _, p := range tt.problems {
				if !strings.Contains(all, p) {
					t.Errorf("problems lack %q: %v", p, st.Problems)
				}
			}
			var b bytes.Buffer
			if err := st.Print(&b); err != nil {
				t.Fatal(err)
			}
			if st.Standby == nil || !st.Standby.Usable || st.Standby.Lag == nil || *st.Standby.Lag != 0 {
				t.Errorf("standby = %+v", st.Standby)
			}
			if !strings.Contains(b.String(), "current RPO") || !strings.Contains(b.String(), "db-standby usable") {
				t.Errorf("print:\n%s", b.String())
			}
		})
	}
}
