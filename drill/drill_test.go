package drill

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/belay-sh/belay/failover"
	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/remote/remotetest"
)

func labInventory(t *testing.T) *inventory.Inventory {
	t.Helper()
	inv, err := inventory.Load("testdata/inventory.json")
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

func TestParseVIPHolder(t *testing.T) {
	out := "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever\n" +
		"2: host0    inet 10.213.0.20/25 brd 10.213.0.127 scope global host0\\       valid_lft forever\n" +
		"2: host0    inet 10.213.0.100/32 scope global host0\\       valid_lft forever\n"
	tests := []struct {
		vip  string
		want bool
	}{
		{"10.213.0.100", true},
		{"10.213.0.10", false}, // a prefix of the VIP is not the VIP
		{"10.213.0.20", true},
		{"10.213.0.101", false},
	}
	for _, tt := range tests {
		if got := ParseVIPHolder(out, tt.vip); got != tt.want {
			t.Errorf("ParseVIPHolder(%s) = %v, want %v", tt.vip, got, tt.want)
		}
	}
}

func TestFirstAckAfterFailure(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ms := func(v int) time.Time { return t0.Add(time.Duration(v) * time.Millisecond) }
	tests := []struct {
		name  string
		fails []time.Time
		acks  []time.Time
		want  time.Time
		ok    bool
	}{
		{"no failure since the fault", []time.Time{ms(-100)}, []time.Time{ms(-50), ms(10)}, time.Time{}, false},
		{"failure then ack", []time.Time{ms(-100), ms(50), ms(3000)}, []time.Time{ms(-50), ms(10), ms(9000), ms(9010)}, ms(9000), true},
		{"failure, no ack yet", []time.Time{ms(50)}, []time.Time{ms(10)}, time.Time{}, false},
	}
	for _, tt := range tests {
		got, ok := FirstAckAfterFailure(tt.fails, tt.acks, t0)
		if !got.Equal(tt.want) || ok != tt.ok {
			t.Errorf("%s: %v %v, want %v %v", tt.name, got, ok, tt.want, tt.ok)
		}
	}
}

func TestStepsOfEveryDrill(t *testing.T) {
	inv := labInventory(t)
	for _, k := range Kinds {
		for _, v := range Variants[k] {
			steps, err := Steps(inv, k, v, "")
			if err != nil {
				t.Fatalf("%s/%s: %v", k, v, err)
			}
			seen := map[string]bool{}
			for _, s := range steps {
				if s.ID == "" || s.Title == "" || s.Where == "" {
					t.Errorf("%s/%s: incomplete step %+v", k, v, s)
				}
				if seen[s.ID] {
					t.Errorf("%s/%s: duplicate step %s", k, v, s.ID)
				}
				seen[s.ID] = true
			}
			for _, must := range map[Kind][]string{AppNode: {"inject", "detect", "recover", "heal", "verify"}, DBPrimary: {"load", "inject", "count", "heal", "verify"}, Restore: {"backup", "verify"}, Site: {"inject", "switch", "verify", "heal"}}[k] {
				if !seen[must] {
					t.Errorf("%s/%s: no %s step", k, v, must)
				}
			}
		}
	}
	if _, err := Steps(inv, AppNode, "", "nope"); err == nil || !strings.Contains(err.Error(), "shop") {
		t.Errorf("unknown app: %v", err)
	}
	if _, err := CheckVariant(AppNode, "explode"); err == nil || !strings.Contains(err.Error(), "kill, cut-link, stop-nginx") {
		t.Errorf("bad variant: %v", err)
	}
	if _, err := CheckVariant("meteor", ""); err == nil {
		t.Error("unknown drill accepted")
	}
}

func TestStepperRunsOnlyPlannedSteps(t *testing.T) {
	var out bytes.Buffer
	s := &stepper{drill: "x", steps: []Step{{ID: "a", Title: "first"}}, out: &out, run: 1}
	if err := s.do("a", "", func() error { return nil }); err != nil {
		t.Fatal(err)
	}
	if err := s.do("b", "", func() error { return nil }); err == nil {
		t.Error("an unplanned step ran")
	}
	if err := s.do("a", "", func() error { return errors.New("boom") }); err == nil || !strings.Contains(err.Error(), "step a: boom") {
		t.Errorf("err = %v", err)
	}
	if !strings.Contains(out.String(), "step 1/1 a: first") || !strings.Contains(out.String(), "FAILED") {
		t.Errorf("progress:\n%s", out.String())
	}
}

func TestSupportedOutsideTheLab(t *testing.T) {
	inv := labInventory(t)
	inv.Sites[inventory.Primary] = inventory.Site{Provider: "hetzner"}
	env := &Env{Inv: inv}
	for _, c := range []struct {
		k  Kind
		v  string
		ok bool
	}{{AppNode, "kill", false}, {AppNode, "cut-link", false}, {DBPrimary, "kill", false}, {DBPrimary, "cut-link", false},
		{Site, "partition", false}, {Restore, "corrupt", false}, {Restore, "verify", true},
		{AppNode, "stop-nginx", true}, {DBPrimary, "stop-service", true}} {
		err := Supported(env, c.k, c.v)
		if (err == nil) != c.ok {
			t.Errorf("%s/%s: %v", c.k, c.v, err)
		}
		if err != nil && (!errors.Is(err, ErrNoFaults) || !strings.Contains(err.Error(), "hetzner")) {
			t.Errorf("%s/%s: unclear refusal: %v", c.k, c.v, err)
		}
	}
	env.Lab = true
	if err := Supported(env, Site, "partition"); err != nil {
		t.Errorf("site drill in the lab: %v", err)
	}
}

// fakeRepo scripts the repository host: pgbackrest info, the verification unit and its result file.
type fakeRepo struct {
	backups   []string
	corrupted bool
	result    string
	now       func() time.Time
}

func (f *fakeRepo) info() []byte {
	var bs []string
	for _, l := range f.backups {
		bs = append(bs, fmt.Sprintf(`{"label":%q,"type":"full","timestamp":{"start":1,"stop":2}}`, l))
	}
	return []byte(`[{"name":"belay","status":{"code":0,"message":"ok"},"archive":[],"backup":[` + strings.Join(bs, ",") + `]}]`)
}

func (f *fakeRepo) handle(c remotetest.Call) ([]byte, error) {
	switch {
	case strings.Contains(c.Cmd, "--output=json info"):
		return f.info(), nil
	case strings.Contains(c.Cmd, "systemctl start belay-backup-full.service"):
		f.backups = append(f.backups, fmt.Sprintf("20260101-0%d0000F", len(f.backups)+1))
		f.corrupted = false
	case strings.HasPrefix(c.Cmd, "sh -c find "):
		return []byte("8192 /var/lib/pgbackrest/backup/belay/" + f.backups[len(f.backups)-1] + "/pg_data/base/1/1259.zst\n"), nil
	case strings.HasPrefix(c.Cmd, "dd "):
		f.corrupted = true
	case strings.Contains(c.Cmd, "systemctl start belay-verify-restore.service"):
		ok := !f.corrupted
		label := f.backups[len(f.backups)-1]
		f.result = fmt.Sprintf(`{"time":%q,"backupLabel":%q,"ok":%v,"details":"restored %s","canaryRows":3,"durationSeconds":7}`,
			f.now().UTC().Format(time.RFC3339), label, ok, label)
		if !ok {
			return nil, errors.New("exit status 1")
		}
	case strings.HasPrefix(c.Cmd, "cat -- /var/lib/belay/last-verified-restore.json"), strings.HasPrefix(c.Cmd, "cat /var/lib/belay/last-verified-restore.json"):
		return []byte(f.result), nil
	}
	return nil, nil
}

type noFaults struct{}

func (noFaults) Inject(context.Context, Fault) (time.Time, error) {
	return time.Time{}, errors.New("no faults in this test")
}
func (noFaults) Heal(context.Context) error                { return nil }
func (noFaults) Partitioned(context.Context) (bool, error) { return false, nil }

func TestRestoreDrill(t *testing.T) {
	tests := []struct {
		variant   string
		backups   []string
		wantNotes []string
		wantCmds  []string
	}{
		{"verify", []string{"20260101-010000F"}, []string{"restored 20260101-010000F"}, []string{"systemctl start belay-verify-restore.service"}},
		{"verify", nil, []string{"restored 20260101-010000F"}, []string{"systemctl start belay-backup-full.service"}},
		{"corrupt", []string{"20260101-010000F"}, []string{"corruption caught", "healed: new full 20260101-030000F"},
			[]string{"dd if=/dev/urandom of=/var/lib/pgbackrest/backup/belay/20260101-020000F/pg_data/base/1/1259.zst", "--set=20260101-020000F expire"}},
	}
	for _, tt := range tests {
		t.Run(tt.variant, func(t *testing.T) {
			f := &fakeRepo{backups: tt.backups, now: time.Now}
			r := &remotetest.Runner{Handle: f.handle}
			var progress bytes.Buffer
			env := &Env{Inv: labInventory(t), Hosts: r, Faults: noFaults{}, Lab: true, Progress: &progress}
			rep, err := Execute(context.Background(), env, Options{Kind: Restore, Variant: tt.variant, Repeat: 1})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Summary.Failed != 0 {
				t.Fatalf("failed: %+v\n%s", rep.Runs, progress.String())
			}
			notes := strings.Join(rep.Runs[0].Notes, "\n")
			for _, n := range tt.wantNotes {
				if !strings.Contains(notes, n) {
					t.Errorf("notes lack %q:\n%s", n, notes)
				}
			}
			var cmds []string
			for _, c := range r.Snapshot() {
				if c.Host != "backup" && !(c.Host == "db-standby" && strings.HasPrefix(c.Cmd, "systemctl show -p SubState")) {
					t.Errorf("command %s: want only the repository host (and a read-only look at the standby)", c)
				}
				cmds = append(cmds, c.Cmd)
			}
			all := strings.Join(cmds, "\n")
			for _, c := range tt.wantCmds {
				if !strings.Contains(all, c) {
					t.Errorf("commands lack %q:\n%s", c, all)
				}
			}
		})
	}
}

func TestRestoreDrillFailsWhenCorruptionPasses(t *testing.T) {
	f := &fakeRepo{backups: []string{"20260101-010000F"}, now: time.Now}
	r := &remotetest.Runner{Handle: func(c remotetest.Call) ([]byte, error) {
		if strings.HasPrefix(c.Cmd, "dd ") {
			return nil, nil // the "corruption" changes nothing: verification passes
		}
		return f.handle(c)
	}}
	env := &Env{Inv: labInventory(t), Hosts: r, Faults: noFaults{}, Lab: true}
	rep, err := Execute(context.Background(), env, Options{Kind: Restore, Variant: "corrupt", Repeat: 1})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Summary.Failed != 1 || !strings.Contains(rep.Runs[0].Error, "NOT caught") {
		t.Fatalf("want a failed run (corruption not caught), got %+v", rep.Runs)
	}
}

func TestParseVerifyResult(t *testing.T) {
	for _, in := range []string{"\n", `{"time":"","backupLabel":"","ok":false,"details":"no restore verification has run yet"}`} {
		if _, err := ParseVerifyResult([]byte(in)); !errors.Is(err, ErrNeverVerified) {
			t.Errorf("%q: %v, want ErrNeverVerified", in, err)
		}
	}
	if _, err := ParseVerifyResult([]byte("{")); err == nil {
		t.Error("bad JSON accepted")
	}
	v, err := ParseVerifyResult([]byte(`{"time":"2026-01-01T05:00:00Z","backupLabel":"20260101-010000F","ok":false,"details":"canary mismatch","canaryRows":null,"durationSeconds":12}`))
	if err != nil || v.OK || v.CanaryRows != nil || v.DurationSeconds != 12 {
		t.Errorf("%+v %v", v, err)
	}
}

func TestParseBackupInfo(t *testing.T) {
	f := &fakeRepo{backups: []string{"20260101-010000F", "20260101-010000F_20260101-130000D"}}
	bi, err := ParseBackupInfo(f.info(), "belay")
	if err != nil {
		t.Fatal(err)
	}
	if l, _ := bi.LatestBackup(); l != "20260101-010000F_20260101-130000D" {
		t.Errorf("latest = %s", l)
	}
	if _, err := ParseBackupInfo(f.info(), "other"); err == nil {
		t.Error("missing stanza accepted")
	}
	for s, want := range map[string]bool{"20260101-010000F": true, "20260101-010000F_20260101-130000D": true, "../../etc": false, "20260101-010000F; rm": false} {
		if ValidLabel(s) != want {
			t.Errorf("ValidLabel(%q) != %v", s, want)
		}
	}
}

func TestRunbookListsExecutedSteps(t *testing.T) {
	inv := labInventory(t)
	var b bytes.Buffer
	if err := WriteRunbook(&b, inv); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	for _, k := range Kinds {
		for _, v := range Variants[k] {
			steps, _ := Steps(inv, k, v, "")
			if !strings.Contains(md, fmt.Sprintf("### %s, variant %s", k, v)) {
				t.Errorf("runbook lacks drill %s/%s", k, v)
			}
			for _, s := range steps {
				if !strings.Contains(md, s.Title) {
					t.Errorf("runbook lacks %s/%s step %q", k, v, s.Title)
				}
			}
		}
	}
	for _, to := range []failover.Direction{failover.ToStandby, failover.ToPrimary} {
		p, err := failover.PlanSite(inv, to)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range p.Steps {
			if !strings.Contains(md, "**"+s.ID+"**") {
				t.Errorf("runbook lacks step %s of the switch to %s", s.ID, to)
			}
			for _, c := range s.Commands {
				if !strings.Contains(md, c) {
					t.Errorf("runbook lacks command %q", c)
				}
			}
		}
	}
}

// A repository whose verification fails anyway must not count as "corruption caught".
func TestRestoreDrillNeedsAPassingBaseline(t *testing.T) {
	f := &fakeRepo{backups: []string{"20260101-010000F"}, now: time.Now, corrupted: true}
	r := &remotetest.Runner{Handle: func(c remotetest.Call) ([]byte, error) {
		if strings.Contains(c.Cmd, "belay-backup-full") {
			out, err := f.handle(c)
			f.corrupted = true // every backup is unreadable (e.g. a permission problem)
			return out, err
		}
		return f.handle(c)
	}}
	env := &Env{Inv: labInventory(t), Hosts: r, Faults: noFaults{}, Lab: true}
	rep, err := Execute(context.Background(), env, Options{Kind: Restore, Variant: "corrupt", Repeat: 1})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Summary.Failed != 1 || !strings.Contains(rep.Runs[0].Error, "before the corruption") {
		t.Fatalf("want a failed baseline, got %+v", rep.Runs)
	}
	for _, c := range r.Snapshot() {
		if strings.HasPrefix(c.Cmd, "dd ") {
			t.Error("corrupted a backup although the baseline failed")
		}
	}
}

func TestFailureReasons(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	res := []ProbeResult{
		{Start: t0.Add(-time.Second), Err: "dial tcp: connection refused"},
		{Start: t0, OK: true, Status: 200},
		{Start: t0.Add(time.Millisecond), Err: "Get \"http://10.213.0.100/\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"},
		{Start: t0.Add(2 * time.Millisecond), Status: 502},
		{Start: t0.Add(3 * time.Millisecond), Err: "read: connection reset by peer"},
	}
	if got := failureReasons(res, t0); got != "1 HTTP 502, 1 connection error, 1 timeout" {
		t.Errorf("failureReasons = %q", got)
	}
}

// The corrupt variant never damages the backup a standby is restoring from:
// it waits for the seeding to end, and gives up (nothing damaged) past the bound.
func TestRestoreDrillWaitsForStandbyRestore(t *testing.T) {
	f := &fakeRepo{backups: []string{"20260101-010000F"}, now: time.Now}
	var polls atomic.Int32
	r := &remotetest.Runner{Handle: func(c remotetest.Call) ([]byte, error) {
		if c.Host == "db-standby" && strings.HasPrefix(c.Cmd, "systemctl show -p SubState") {
			polls.Add(1)
			return []byte("running\n"), nil
		}
		return f.handle(c)
	}}
	env := &Env{Inv: labInventory(t), Hosts: r, Faults: noFaults{}, Lab: true, SeedWait: 30 * time.Millisecond}
	rep, err := Execute(context.Background(), env, Options{Kind: Restore, Variant: "corrupt", Repeat: 1})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Summary.Failed != 1 || !strings.Contains(rep.Runs[0].Error, "still seeding from the repository") {
		t.Fatalf("want a refusal after the bound, got %+v", rep.Runs)
	}
	if polls.Load() < 2 {
		t.Errorf("asked the standby %d time(s), want it to wait and ask again", polls.Load())
	}
	for _, c := range r.Snapshot() {
		if strings.HasPrefix(c.Cmd, "dd ") {
			t.Error("corrupted a backup while the standby restores")
		}
	}
}

// A standby that finishes seeding while the drill waits lets the drill go on.
func TestRestoreDrillProceedsAfterStandbySeeded(t *testing.T) {
	f := &fakeRepo{backups: []string{"20260101-010000F"}, now: time.Now}
	var polls atomic.Int32
	r := &remotetest.Runner{Handle: func(c remotetest.Call) ([]byte, error) {
		if c.Host == "db-standby" && strings.HasPrefix(c.Cmd, "systemctl show -p SubState") {
			if polls.Add(1) == 1 {
				return []byte("running\n"), nil
			}
			return []byte("exited\n"), nil
		}
		return f.handle(c)
	}}
	env := &Env{Inv: labInventory(t), Hosts: r, Faults: noFaults{}, Lab: true, SeedWait: time.Second}
	if _, err := Execute(context.Background(), env, Options{Kind: Restore, Variant: "corrupt", Repeat: 1}); err != nil {
		t.Fatal(err)
	}
	corrupted := false
	for _, c := range r.Snapshot() {
		corrupted = corrupted || strings.HasPrefix(c.Cmd, "dd ")
	}
	if polls.Load() != 2 || !corrupted {
		t.Fatalf("polls=%d corrupted=%v: want the drill to wait once, then corrupt the backup", polls.Load(), corrupted)
	}
}
