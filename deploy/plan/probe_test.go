package plan_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/belay-sh/belay/deploy/plan"
)

// probeScript is the plan's analysis probe, reading log instead of nginx's.
func probeScript(t *testing.T, log string) string {
	t.Helper()
	p, err := plan.Deploy(plan.Input{Inventory: inv(t), App: "shop", Release: "v42", Artifact: artifact,
		Strategy: plan.Strategy{Steps: []int{10}, Pause: 5 * time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range p.Steps {
		if a := s.Analyze; a != nil {
			if a.Tick != plan.Duration(plan.AnalyzeTick) {
				t.Errorf("tick %s, want %s", time.Duration(a.Tick), plan.AnalyzeTick)
			}
			real := plan.AccessLog("shop")
			if !strings.Contains(a.ProbeCommand, real) {
				t.Fatalf("probe does not read %s:\n%s", real, a.ProbeCommand)
			}
			return strings.ReplaceAll(a.ProbeCommand, real, log)
		}
	}
	t.Fatal("no analyze step")
	return ""
}

// TestProbeCommand runs the rendered probe in a real shell with a fake
// systemd: the first probe starts the window at the log's end and takes the
// unit's restart count; later ones return only the bytes written since; a
// rotated log is read from its start; a crashed unit comes with its exit time
// and log.
func TestProbeCommand(t *testing.T) {
	log := filepath.Join(t.TempDir(), "access.log")
	os.WriteFile(log, []byte("before the stage\n"), 0o644)
	script := probeScript(t, log)
	f := newFakeSystemd(t, "ActiveState=active SubState=running NRestarts=2")
	probe := func(off int64, restarts int) plan.Probe {
		t.Helper()
		out, err := f.cmd(plan.ProbeArgs(off, restarts) + script).Output()
		if err != nil {
			t.Fatalf("probe: %v\n%s", err, out)
		}
		p, err := plan.ParseProbe(out)
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		return p
	}
	p := probe(-1, -1)
	if p.Offset != int64(len("before the stage\n")) || p.Restarts != 2 || len(p.Log) != 0 || p.Bad != "" {
		t.Fatalf("first probe %+v, want the window at the log's end, 2 restarts, no log", p)
	}
	appendLog := func(s string) {
		fh, _ := os.OpenFile(log, os.O_APPEND|os.O_WRONLY, 0)
		fh.WriteString(s)
		fh.Close()
	}
	appendLog("line 1\nline 2 (half")
	p2 := probe(p.Offset, p.Restarts)
	if p2.Offset != p.Offset || string(p2.Log) != "line 1\nline 2 (half" {
		t.Fatalf("second probe %+v, want the new bytes only", p2)
	}
	os.WriteFile(log, []byte("rotated\n"), 0o644)
	if p3 := probe(p.Offset+7, 2); p3.Offset != 0 || string(p3.Log) != "rotated\n" {
		t.Errorf("after rotation %+v, want the new file from its start", p3)
	}
	f.set(t, "ActiveState=activating SubState=auto-restart NRestarts=2 ExecMainExitTimestamp=Thu_2026-11-22_03:00:07.250000_UTC")
	// The fake's state file splits on spaces; put them back in the timestamp.
	st, _ := os.ReadFile(filepath.Join(f.dir, "state"))
	f.write(t, "state", strings.ReplaceAll(string(st), "_", " "))
	p4 := probe(0, 2)
	if !strings.Contains(p4.Bad, "waits for its automatic restart") || !strings.Contains(p4.Journal, "panic: database URL not set") {
		t.Errorf("crashed probe %+v, want the reason and the unit's log", p4)
	}
	if want := time.Date(2026, 11, 22, 3, 0, 7, 250e6, time.UTC); !p4.Exited.Equal(want) {
		t.Errorf("exited %s, want %s", p4.Exited, want)
	}
	f.set(t, "ActiveState=active SubState=running NRestarts=3")
	if p5 := probe(0, 2); !strings.Contains(p5.Bad, "restarted 1 time(s)") {
		t.Errorf("restarted probe %+v, want it flagged", p5)
	}
	os.Chmod(log, 0)
	if os.Getuid() != 0 {
		out, err := f.cmd(plan.ProbeArgs(0, 0) + script).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "needs read access") {
			t.Errorf("unreadable log: err %v\n%s", err, out)
		}
	}
}

func TestParseProbe(t *testing.T) {
	p, err := plan.ParseProbe([]byte("offset 12\nrestarts 0\nbad x is failed (failed)\nexited \njournal a\njournal b\nlog\nraw\nlog\n"))
	if err != nil || p.Offset != 12 || p.Bad != "x is failed (failed)" || !p.Exited.IsZero() || p.Journal != "a\nb" || string(p.Log) != "raw\nlog\n" {
		t.Errorf("got %+v, %v", p, err)
	}
	for _, bad := range []string{"offset 1\nrestarts 0\n", "offset x\nrestarts 0\nlog\n", "restarts 0\nlog\n", "offset 1\nrestarts 0\nwhat\nlog\n"} {
		if _, err := plan.ParseProbe([]byte(bad)); err == nil {
			t.Errorf("ParseProbe(%q) accepted it", bad)
		}
	}
}
