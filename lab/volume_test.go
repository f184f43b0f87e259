package lab

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/belay-sh/belay/hostspec"
)

// fakeSysBlock points sysBlock at a tree with the given loop devices attached
// (name -> backing file; "" = a loop node with nothing attached).
func fakeSysBlock(t *testing.T, loops map[string]string) {
	t.Helper()
	dir := t.TempDir()
	for name, backing := range loops {
		d := filepath.Join(dir, name, "loop")
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if backing != "" {
			if err := os.WriteFile(filepath.Join(d, "backing_file"), []byte(backing+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	old := sysBlock
	sysBlock = dir
	t.Cleanup(func() { sysBlock = old })
}

func TestLoopsBackedBy(t *testing.T) {
	p := Paths{State: "/var/lib/belay/lab"}
	fakeSysBlock(t, map[string]string{
		"loop0": "/var/lib/belay/lab/machines/db-1/disk.img",
		"loop3": p.volumeImage("db-1"),
		"loop4": p.volumeImage("db-1") + " (deleted)",
		"loop5": "/srv/other.img",
		"loop6": "",
		"sda":   "/not/a/loop",
	})
	if got, want := loopsBackedBy(p.volumeImage("db-1")), []string{"/dev/loop3", "/dev/loop4"}; !reflect.DeepEqual(got, want) {
		t.Errorf("loopsBackedBy = %v, want %v", got, want)
	}
	if got := loopsBackedBy(p.volumeImage("db-2")); len(got) != 0 {
		t.Errorf("loopsBackedBy(db-2) = %v, want none", got)
	}
	left := loopLeftovers(p)
	if len(left) != 3 || strings.Contains(strings.Join(left, "\n"), "/srv/other.img") {
		t.Errorf("loopLeftovers = %q, want the three loops under %s only", left, p.State)
	}
}

// TestDetachDataDiskDetachesByBackingFile: detach names the loop devices the
// kernel says hold the file, and reports one still attached afterwards.
func TestDetachDataDiskDetachesByBackingFile(t *testing.T) {
	p := Paths{State: t.TempDir()}
	fakeSysBlock(t, map[string]string{"loop2": p.volumeImage("backup"), "loop7": "/elsewhere.img"})
	r := &recordRunner{}
	err := detachDataDisk(context.Background(), r, p, "backup")
	if got := strings.Join(r.cmds, "\n"); got != "losetup --detach /dev/loop2" {
		t.Errorf("commands = %q, want one detach of /dev/loop2", got)
	}
	// The fake kernel never detaches: the leak is reported, naming the device.
	if err == nil || !strings.Contains(err.Error(), "still attached to /dev/loop2") {
		t.Errorf("err = %v, want the device still attached named", err)
	}
}

func TestNspawnArgsBindTheDataDisk(t *testing.T) {
	d := Paths{State: "/s"}.dirs("db-1")
	m := MachineSpec{Name: "db-1", Segment: Segments()[0], DataDisk: true}
	args := nspawnArgs(d, m, &DataDisk{Image: "/s/volumes/db-1.img", Loop: "/dev/loop9"})
	if got := args[len(args)-1]; got != "--bind=/dev/loop9:"+hostspec.LabDataDevice {
		t.Errorf("last argument = %q, want the loop bound at %s", got, hostspec.LabDataDevice)
	}
	for _, disk := range []*DataDisk{nil, {Image: "/s/volumes/db-1.img"}} {
		for _, a := range nspawnArgs(d, m, disk) {
			if strings.HasPrefix(a, "--bind") {
				t.Errorf("disk %+v: unexpected %s", disk, a)
			}
		}
	}
}

// TestReplaceRefusals: bad requests are refused before anything is touched
// (no root needed for these: the host check comes first).
func TestReplaceRefusals(t *testing.T) {
	p := Paths{State: t.TempDir(), Cache: t.TempDir()}
	ctx := context.Background()
	if _, err := Replace(ctx, ReplaceOptions{Paths: p, Host: "db-1"}); err == nil || !strings.Contains(err.Error(), "the lab has no machines") {
		t.Errorf("no lab: err = %v", err)
	}
	st := &State{Machines: map[string]*MachineState{
		"db-1": {Name: "db-1", Site: "primary", Address: "10.213.0.10"},
		"db-2": {Name: "db-2", Site: "primary", Address: "10.213.0.11"},
	}, Faults: []Fault{{Kind: FaultCutLink, Machine: "db-2", At: time.Now()}}}
	if err := p.saveState(st); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(p.stateFile())
	for _, tc := range []struct{ host, want string }{
		{"", "which machine?"},
		{"db-9", `machine "db-9": not in the lab, expected one of db-1, db-2`},
	} {
		_, err := Replace(ctx, ReplaceOptions{Paths: p, Host: tc.host})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Replace(%q): err = %v, want %q", tc.host, err, tc.want)
		}
	}
	if os.Geteuid() == 0 {
		_, err := Replace(ctx, ReplaceOptions{Paths: p, Host: "db-2"})
		if err == nil || !strings.Contains(err.Error(), `fault "cut-link db-2" is injected on it`) {
			t.Errorf("Replace(db-2) with a cut link: err = %v", err)
		}
	}
	if after, _ := os.ReadFile(p.stateFile()); string(after) != string(before) {
		t.Errorf("a refused replace changed the state:\n%s", after)
	}
}
