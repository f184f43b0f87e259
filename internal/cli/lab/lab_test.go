package lab

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/belay-sh/belay/internal/cli"
	thelab "github.com/belay-sh/belay/lab"
)

type fakes struct {
	up     thelab.UpOptions
	faults []thelab.Fault
	execed []string
	upErr  error
}

func (f *fakes) deps() Deps {
	return Deps{
		Up: func(_ context.Context, o thelab.UpOptions) (*thelab.UpSummary, error) {
			f.up = o
			return &thelab.UpSummary{Stack: "lab", Image: "abc", ImageCached: true, Seconds: 12.5,
				Machines: []thelab.MachineSummary{{Name: "db-1", Site: "primary", Address: "10.213.0.10", Action: "created", CloudInit: "done", Seconds: 11}}}, f.upErr
		},
		Down: func(context.Context, thelab.Paths, thelab.Runner, io.Writer) (*thelab.DownSummary, error) {
			return &thelab.DownSummary{Machines: []string{"db-1"}, Network: true}, nil
		},
		Status: func(context.Context, thelab.Paths, thelab.Runner) (*thelab.Status, error) {
			return &thelab.Status{Network: "up", Machines: []thelab.MachineStatus{{Name: "db-1", Site: "primary", Address: "10.213.0.10", State: "running", System: "running", CloudInit: "done"}}}, nil
		},
		Inject: func(_ context.Context, _ thelab.Paths, _ thelab.Runner, fl thelab.Fault) error {
			if err := fl.Validate(); err != nil {
				return err
			}
			f.faults = append(f.faults, fl)
			return nil
		},
		Heal: func(context.Context, thelab.Paths, thelab.Runner, io.Writer) ([]thelab.Fault, error) {
			return f.faults, nil
		},
		Exec: func(_ context.Context, _ cli.IO, argv []string) (int, error) {
			f.execed = argv
			return 3, nil
		},
		Executable: func() (string, error) { return "/usr/bin/belay", nil },
	}
}

func run(t *testing.T, f *fakes, state string, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	fac := &cli.Factory{IO: cli.IO{In: strings.NewReader(""), Out: &out, ErrOut: &errb}}
	if state == "" {
		state = t.TempDir()
	}
	cmd := newCmdLab(fac, f.deps(), thelab.Paths{State: state, Cache: state})
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

func TestUp(t *testing.T) {
	f := &fakes{}
	out, err := run(t, f, "", "up", "--apps", "2", "--stack", "s.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if f.up.Stack.Apps != 2 || f.up.Stack.File != "s.yaml" || f.up.BelayBinary != "/usr/bin/belay" {
		t.Errorf("up options = %+v", f.up)
	}
	if !strings.Contains(out, "lab up: 1 machines in 12.5s") || !strings.Contains(out, "db-1") {
		t.Errorf("output:\n%s", out)
	}
	out, err = run(t, f, "", "up", "--json")
	if err != nil || !strings.Contains(out, `"imageCached": true`) {
		t.Errorf("--json: %v\n%s", err, out)
	}
	if _, err := run(t, f, "", "up", "--apps", "-1"); err == nil || !strings.Contains(err.Error(), "--apps") {
		t.Errorf("negative --apps: %v", err)
	}
	f.upErr = errors.New("1 of 8 machines failed")
	out, err = run(t, f, "", "up")
	if err == nil || !strings.Contains(out, "db-1") {
		t.Errorf("a failed up still prints its summary: %v\n%s", err, out)
	}
}

func TestStatusAndDown(t *testing.T) {
	f := &fakes{}
	out, err := run(t, f, "", "status")
	if err != nil || !strings.Contains(out, "network: up") || !strings.Contains(out, "10.213.0.10") {
		t.Errorf("status: %v\n%s", err, out)
	}
	out, err = run(t, f, "", "down")
	if err != nil || !strings.Contains(out, "removed 1 machines and the network") {
		t.Errorf("down: %v\n%s", err, out)
	}
}

func TestFaultAndHeal(t *testing.T) {
	f := &fakes{}
	tests := []struct {
		args []string
		want thelab.Fault
	}{
		{[]string{"fault", "kill", "db-1"}, thelab.Fault{Kind: thelab.FaultKill, Machine: "db-1"}},
		{[]string{"fault", "stop-service", "shop-1", "nginx"}, thelab.Fault{Kind: thelab.FaultStopService, Machine: "shop-1", Service: "nginx"}},
		{[]string{"fault", "netem", "shop-2", "loss", "10%"}, thelab.Fault{Kind: thelab.FaultNetem, Machine: "shop-2", Netem: []string{"loss", "10%"}}},
		{[]string{"fault", "partition"}, thelab.Fault{Kind: thelab.FaultPartition}},
	}
	for _, tt := range tests {
		f.faults = nil
		if _, err := run(t, f, "", tt.args...); err != nil {
			t.Fatalf("%v: %v", tt.args, err)
		}
		if len(f.faults) != 1 || f.faults[0].String() != tt.want.String() {
			t.Errorf("%v injected %v, want %v", tt.args, f.faults, tt.want)
		}
	}
	if _, err := run(t, f, "", "fault", "netem", "shop-2", "bogus"); err == nil {
		t.Error("netem with bad arguments accepted")
	}
	if _, err := run(t, f, "", "fault", "kill"); err == nil {
		t.Error("kill without a machine accepted")
	}
	out, err := run(t, f, "", "heal")
	if err != nil || !strings.Contains(out, "healed 1 fault(s)") {
		t.Errorf("heal: %v\n%s", err, out)
	}
}

func TestSSH(t *testing.T) {
	dir := t.TempDir()
	inv := `{"version":1,"stack":"lab","sites":{"primary":{"provider":"lab","region":"p","cidr":"10.213.0.0/25"}},
"hosts":[{"name":"db-1","site":"primary","provider":"lab","roles":["db"],"privateAddress":"10.213.0.10","sshAddress":"10.213.0.10","sshPort":22,"deployUser":"deploy","hostKey":"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGf2dDm0m3ka+P5OhGw3qJsnOhCTcDpVEd8PT8zQvQ0I"}],
"apps":[],"database":{"name":"app","port":5432,"nodes":["db-1"],"monitor":"","standbyHost":"","writerUrl":"","synchronous":false},"backup":{"host":"","stanza":""}}`
	if err := os.WriteFile(filepath.Join(dir, "inventory.json"), []byte(inv), 0o644); err != nil {
		t.Fatal(err)
	}
	f := &fakes{}
	_, err := run(t, f, dir, "ssh", "db-1", "systemctl", "is-system-running")
	var exit cli.ExitError
	if !errors.As(err, &exit) || exit.Code != 3 {
		t.Errorf("exit code not passed on: %v", err)
	}
	got := strings.Join(f.execed, " ")
	for _, want := range []string{"StrictHostKeyChecking=yes", "UserKnownHostsFile=" + filepath.Join(dir, "known_hosts"), "-l deploy", "10.213.0.10 -- systemctl is-system-running"} {
		if !strings.Contains(got, want) {
			t.Errorf("ssh argv lacks %q: %s", want, got)
		}
	}
	if _, err := run(t, f, dir, "ssh", "nope"); err == nil || !strings.Contains(err.Error(), "expected one of db-1") {
		t.Errorf("unknown host: %v", err)
	}
}

func TestReplace(t *testing.T) {
	f := &fakes{}
	var got thelab.ReplaceOptions
	deps := f.deps()
	deps.Replace = func(_ context.Context, o thelab.ReplaceOptions) (*thelab.ReplaceSummary, error) {
		got = o
		return &thelab.ReplaceSummary{Host: o.Host, DataDisk: "/var/lib/belay/lab/volumes/db-2.img", CloudInit: "done", Seconds: 41.2}, nil
	}
	runWith := func(deps Deps, args ...string) (string, error) {
		var out, errb bytes.Buffer
		fac := &cli.Factory{IO: cli.IO{In: strings.NewReader(""), Out: &out, ErrOut: &errb}}
		state := t.TempDir()
		if err := os.WriteFile(filepath.Join(state, "state.json"), []byte(`{"machines":{"db-1":{"name":"db-1"},"db-2":{"name":"db-2"}}}`), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := newCmdLab(fac, deps, thelab.Paths{State: state, Cache: state})
		cmd.SetArgs(args)
		cmd.SetOut(&out)
		cmd.SetErr(&errb)
		err := cmd.ExecuteContext(context.Background())
		return out.String(), err
	}
	out, err := runWith(deps, "replace", "db-2")
	if err != nil || got.Host != "db-2" || got.Progress == nil {
		t.Fatalf("replace db-2: %v, options %+v", err, got)
	}
	if want := "lab replace: db-2 replaced in 41.2s (cloud-init done; data disk kept: /var/lib/belay/lab/volumes/db-2.img)"; !strings.Contains(out, want) {
		t.Errorf("output %q, want %q", out, want)
	}
	if out, err := runWith(deps, "replace", "db-2", "--json"); err != nil || !strings.Contains(out, `"dataDisk": "/var/lib/belay/lab/volumes/db-2.img"`) {
		t.Errorf("--json: %v\n%s", err, out)
	}
	if _, err := runWith(deps, "replace"); err == nil {
		t.Error("replace without a host accepted")
	}
	// The real lab.Replace refuses a host the lab does not have, naming the ones it has.
	deps.Replace = thelab.Replace
	if _, err := runWith(deps, "replace", "db-9"); err == nil || !strings.Contains(err.Error(), `"db-9": not in the lab, expected one of db-1, db-2`) {
		t.Errorf("unknown host: %v", err)
	}
	cmd := newCmdLab(&cli.Factory{}, deps, thelab.Paths{})
	rc, _, err := cmd.Find([]string{"replace"})
	if err != nil || !strings.Contains(rc.Example, "belay lab replace db-2") {
		t.Errorf("replace --help has no example: %v %q", err, rc.Example)
	}
}
