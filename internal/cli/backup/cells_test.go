package backup

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/belay-sh/belay/hostcmd"
	"github.com/belay-sh/belay/internal/cli"
	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/remote/remotetest"
)

// TestCollectDedicatedCells: a dedicated cell's stanza is read with its own
// argv (pgbackrest info, belay-last-wal STANZA, its verification file) and
// judged with the stack's thresholds; its problems name the cell; the stack's
// own figures are untouched; --json carries it under "cells".
func TestCollectDedicatedCells(t *testing.T) {
	now := time.Unix(1_700_100_000, 0).UTC()
	inv := testInv(t)
	inv.Apps[0].Cells = append(inv.Apps[0].Cells, inventory.Cell{Name: "c2", Database: "shop_c2", DBNodes: []string{"shop-c2-db-1", "shop-c2-db-2"}, Formation: "shop_c2"})
	app := inv.Apps[0].Name
	info := func(stanza string) string {
		return `[{"name":"` + stanza + `","backup":[{"label":"20231115-010000F","type":"full","timestamp":{"start":1700010000,"stop":1700010100}}]}]`
	}
	wal := func(age time.Duration) []byte {
		return []byte(strconv.FormatFloat(float64(now.Add(-age).UnixNano())/1e9, 'f', 3, 64) + " 000000010000000000000009-abc.zst\n")
	}
	verified := `{"time":"` + now.Add(-time.Hour).Format(time.RFC3339) + `","backupLabel":"20231115-010000F","ok":true,"details":"d","canaryRows":2,"durationSeconds":9}`
	var cmds []string
	r := &remotetest.Runner{Handle: func(c remotetest.Call) ([]byte, error) {
		cmds = append(cmds, c.Cmd)
		switch {
		case strings.Contains(c.Cmd, "--stanza=shop_c2 --output=json info"):
			return []byte(info("shop_c2")), nil
		case strings.Contains(c.Cmd, "info"):
			return []byte(info(inv.Backup.Stanza)), nil
		case c.Cmd == hostcmd.LastWALPath+" shop_c2":
			return wal(time.Hour), nil
		case c.Cmd == hostcmd.LastWALPath:
			return wal(time.Second), nil
		case strings.Contains(c.Cmd, hostcmd.CellVerifyResultFile("shop_c2")):
			return nil, nil // never verified: the file does not exist yet
		case strings.HasPrefix(c.Cmd, "cat "):
			return []byte(verified), nil
		case c.Host == "db-standby" && strings.Contains(c.Cmd, hostcmd.StandbyRestoreUnit):
			return []byte("exited\n"), nil
		case c.Host == "db-standby" && strings.Contains(c.Cmd, "pg_last_wal_replay_lsn"):
			return []byte("t 0/9000060 1700099000.5 16777216\n"), nil
		}
		return nil, nil
	}}
	o := &StatusOptions{Now: func() time.Time { return now }, MaxRPO: 5 * time.Minute, MaxVerifyAge: 26 * time.Hour, MaxFullAge: 8 * 24 * time.Hour, MaxStandbyLag: 5 * time.Minute}
	st, err := Collect(context.Background(), r, inv, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Cells) != 1 {
		t.Fatalf("cells = %+v", st.Cells)
	}
	cb := st.Cells[0]
	if cb.App != app || cb.Cell != "c2" || cb.Stanza != "shop_c2" || cb.LastFull == nil || cb.LastWAL == nil || cb.LastWAL.Age != time.Hour || cb.LastVerify != nil {
		t.Errorf("cell = %+v", cb)
	}
	if len(cb.Problems) != 2 || st.Healthy {
		t.Errorf("cell problems %v, healthy %v: want the RPO and the missing verification", cb.Problems, st.Healthy)
	}
	for _, want := range []string{"cell " + app + "/c2 (stanza shop_c2): newest archived WAL 000000010000000000000009 is 1h0m0s old", "cell " + app + "/c2 (stanza shop_c2): no restore verification"} {
		if !strings.Contains(strings.Join(st.Problems, "\n"), want) {
			t.Errorf("problems lack %q: %v", want, st.Problems)
		}
	}
	if len(st.Problems) != 2 || st.LastWAL.Age != time.Second {
		t.Errorf("the stack's own stanza: problems %v, WAL %+v", st.Problems, st.LastWAL)
	}
	var b bytes.Buffer
	if err := st.Print(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "cell "+app+"/c2 (own pair, stanza shop_c2)\n  last full backup       20231115-010000F") {
		t.Errorf("print:\n%s", b.String())
	}
	b.Reset()
	if err := cli.PrintJSON(&b, st); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Cells []struct {
			Stanza   string   `json:"stanza"`
			Problems []string `json:"problems"`
		} `json:"cells"`
	}
	if err := json.Unmarshal(b.Bytes(), &doc); err != nil || len(doc.Cells) != 1 || doc.Cells[0].Stanza != "shop_c2" || len(doc.Cells[0].Problems) != 2 {
		t.Errorf("json cells: %+v %v\n%s", doc.Cells, err, b.String())
	}

	// A formation name that is not an identifier never reaches a command.
	inv.Apps[0].Cells[len(inv.Apps[0].Cells)-1].Formation = "shop_c2; rm -rf /"
	cmds = nil
	if _, err := Collect(context.Background(), r, inv, o); err == nil || !strings.Contains(err.Error(), "cells.c2") {
		t.Errorf("bad stanza: %v", err)
	}
	for _, c := range cmds {
		if strings.Contains(c, "rm -rf") {
			t.Errorf("ran %q", c)
		}
	}
}

// TestCollectDedicatedCellStandby: a dedicated cell's own standby database is
// read on its host and judged against the cell's stanza's newest WAL (not
// the stack's), printed in the cell's block; one that is not usable is a
// problem naming the cell and the host.
func TestCollectDedicatedCellStandby(t *testing.T) {
	now := time.Unix(1_700_100_000, 0).UTC()
	for _, tt := range []struct {
		name, replay string
		usable       bool
		problem      string
	}{
		{"caught up with the cell's archive", "t 0/C000060 1700099990 16777216", true, ""},
		{"promoted", "f none none 16777216", false, "cell shop/c2 (stanza shop_c2): standby database shop-c2-standby-db is not usable: promoted"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			inv := testInv(t)
			inv.Apps[0].Cells = append(inv.Apps[0].Cells, inventory.Cell{Name: "c2", Database: "shop_c2", DBNodes: []string{"shop-c2-db-1", "shop-c2-db-2"}, Formation: "shop_c2", StandbyDB: "shop-c2-standby-db"})
			info := func(stanza string) string {
				return `[{"name":"` + stanza + `","backup":[{"label":"20231115-010000F","type":"full","timestamp":{"start":1700090000,"stop":1700090100}}]}]`
			}
			wal := func(seg string) []byte {
				return []byte(strconv.FormatFloat(float64(now.Add(-time.Second).UnixNano())/1e9, 'f', 3, 64) + " " + seg + "-abc.zst\n")
			}
			verified := `{"time":"` + now.Add(-time.Hour).Format(time.RFC3339) + `","backupLabel":"20231115-010000F","ok":true,"details":"d","canaryRows":2,"durationSeconds":9}`
			r := &remotetest.Runner{Handle: func(c remotetest.Call) ([]byte, error) {
				switch {
				case strings.Contains(c.Cmd, "--stanza=shop_c2 --output=json info"):
					return []byte(info("shop_c2")), nil
				case strings.Contains(c.Cmd, "info"):
					return []byte(info(inv.Backup.Stanza)), nil
				case c.Cmd == hostcmd.LastWALPath+" shop_c2":
					return wal("00000001000000000000000C"), nil // the cell's archive
				case c.Cmd == hostcmd.LastWALPath:
					return wal("000000010000000000000040"), nil // the stack's, far ahead
				case strings.HasPrefix(c.Cmd, "cat "):
					return []byte(verified), nil
				case strings.Contains(c.Cmd, hostcmd.StandbyRestoreUnit):
					return []byte("exited\n"), nil
				case c.Host == "db-standby" && strings.Contains(c.Cmd, "pg_last_wal_replay_lsn"):
					return []byte("t 0/40000060 1700099990 16777216\n"), nil
				case c.Host == "shop-c2-standby-db" && strings.Contains(c.Cmd, "pg_last_wal_replay_lsn"):
					return []byte(tt.replay + "\n"), nil
				}
				return nil, nil
			}}
			o := &StatusOptions{Now: func() time.Time { return now }, MaxRPO: 5 * time.Minute, MaxVerifyAge: 26 * time.Hour, MaxFullAge: 8 * 24 * time.Hour, MaxStandbyLag: 5 * time.Minute}
			st, err := Collect(context.Background(), r, inv, o)
			if err != nil {
				t.Fatal(err)
			}
			sb := st.Cells[0].Standby
			if sb == nil || sb.Host != "shop-c2-standby-db" || sb.Usable != tt.usable {
				t.Fatalf("cell standby = %+v, want usable %v", sb, tt.usable)
			}
			if tt.usable && (sb.SegmentsBehind == nil || *sb.SegmentsBehind != 0) {
				t.Errorf("segments behind %v: want 0, judged against the cell's archive", sb.SegmentsBehind)
			}
			got := strings.Join(st.Problems, "\n")
			if tt.problem == "" && len(st.Problems) != 0 || tt.problem != "" && !strings.Contains(got, tt.problem) {
				t.Errorf("problems %q, want %q", got, tt.problem)
			}
			var b bytes.Buffer
			if err := st.Print(&b); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(b.String(), "(own pair, stanza shop_c2)\n") || !strings.Contains(b.String(), "standby database       shop-c2-standby-db ") {
				t.Errorf("print:\n%s", b.String())
			}
		})
	}
}
