package plan_test

import (
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/belay-sh/belay/deploy/plan"
)

func ids(p *plan.Plan) []string {
	var out []string
	for _, s := range p.Steps {
		out = append(out, s.ID[3:])
	}
	return out
}

// The release command runs once, on one host, after every host has unpacked
// the release and its env, and before anything starts from it or routes to it.
func TestReleaseCommandOrder(t *testing.T) {
	i := inv(t)
	p, err := plan.Deploy(plan.Input{Inventory: i, App: "shop", Release: "v42", Artifact: artifact, Env: true,
		ReleaseCommand: []string{"bin/migrate", "--up"}, ReleaseTimeout: 90 * time.Second,
		Strategy: plan.Strategy{Steps: []int{10}, Pause: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(ids(p), " ")
	if !strings.HasPrefix(got, "upload unpack env release-command canary-start canary-health route-10 ") {
		t.Fatalf("order: %s", got)
	}
	var hook plan.Step
	for _, s := range p.Steps {
		if strings.HasSuffix(s.ID, "release-command") {
			hook = s
		}
	}
	if len(hook.Hosts) != 1 || hook.Hosts[0] != i.App("shop").Hosts[0] || !hook.Stream || hook.Pipeline != "" || hook.Stage != plan.Release {
		t.Fatalf("hook step: %+v", hook)
	}
	if time.Duration(hook.Timeout) != 90*time.Second+time.Minute || !strings.Contains(hook.Command, "timeout --kill-after=10 90 sudo -n systemctl start belay-release@shop.service") {
		t.Fatalf("hook timeout: %s\n%s", time.Duration(hook.Timeout), hook.Command)
	}
	// Every step up to the hook prepares files only: a hook failure leaves
	// traffic, units and links as they were.
	for _, s := range p.Steps {
		if s.ID == hook.ID {
			break
		}
		if s.Stage == plan.Route || s.Stage == plan.Canary || s.Switches || strings.Contains(s.Command, "systemctl") {
			t.Fatalf("step %s before the release command changes what runs or serves", s.ID)
		}
	}
}

func TestEnvOnlyCopies(t *testing.T) {
	p, err := plan.Deploy(plan.Input{Inventory: inv(t), App: "shop", Release: "v41.env3", CopyFrom: "v41", Env: true, Strategy: plan.Strategy{Steps: []int{10}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(ids(p), " "); !strings.HasPrefix(got, "copy env canary-start ") || !strings.HasSuffix(got, " cleanup") {
		t.Fatalf("env-only plan: %s", got)
	}
	if plan.EnvRelease("v41.env3", 4) != "v41.env4" || plan.EnvRelease("v41", 1) != "v41.env1" {
		t.Fatal("EnvRelease")
	}
}

func TestPrepareInputRefused(t *testing.T) {
	for _, tc := range []struct {
		in   plan.Input
		want string
	}{
		{plan.Input{Release: "v42", Artifact: artifact, ReleaseCommand: []string{"/bin/sh"}}, "must be a path inside the release"},
		{plan.Input{Release: "v42", Artifact: artifact, ReleaseCommand: []string{"bin/../../x"}}, "no .."},
		{plan.Input{Release: "v42", Artifact: artifact, ReleaseCommand: []string{"bin/m"}, ReleaseTimeout: time.Millisecond}, "release timeout"},
		{plan.Input{Release: "v42", Artifact: artifact, CopyFrom: "v41"}, "one or the other"},
		{plan.Input{Release: "v42", CopyFrom: "v42"}, "the release itself"},
		{plan.Input{Release: "v42", Env: true, Strategy: plan.Strategy{Direct: true}}, "only for a new release"},
	} {
		tc.in.Inventory, tc.in.App = inv(t), "shop"
		if _, err := plan.Deploy(tc.in); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err %v, want %q", tc.in, err, tc.want)
		}
	}
	if w, err := plan.ParseReleaseCommand("  bin/migrate   --to 42 "); err != nil || strings.Join(w, "|") != "bin/migrate|--to|42" {
		t.Fatalf("parse: %q %v", w, err)
	}
}

// TestEnvStepHostile runs the env step's script for real against a layout in
// a temp dir: the deploy user (here: the test user) pre-planted a symlink at
// the release's env path pointing at a file it wants root or the app to
// read. The step replaces the link itself, never writes through it, and the
// file it leaves is 0640 with the app group inherited from shared/.
func TestEnvStepHostile(t *testing.T) {
	g, err := user.LookupGroupId(strings.TrimSpace(run(t, "id", "-g")))
	if err != nil {
		t.Skip("no group name for the test user")
	}
	base := t.TempDir()
	rel := filepath.Join(base, "shop", "releases", "v42")
	shared := filepath.Join(base, "shop", "shared")
	for _, d := range []string{rel, shared} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(shared, os.ModeSetgid|0o775); err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(base, "shadow")
	if err := os.WriteFile(victim, []byte("root:secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	envPath := filepath.Join(rel, plan.EnvFile)
	if err := os.Symlink(victim, envPath); err != nil {
		t.Fatal(err)
	}
	p, err := plan.Deploy(plan.Input{Inventory: inv(t), App: "shop", Release: "v42", Artifact: artifact, Env: true, Base: base, Strategy: plan.Strategy{Steps: []int{10}}})
	if err != nil {
		t.Fatal(err)
	}
	var cmd string
	for _, s := range p.Steps {
		if strings.HasSuffix(s.ID, "-env") {
			cmd = s.Command
			if s.Stdin != "env" {
				t.Fatalf("env step stdin %q", s.Stdin)
			}
		}
	}
	cmd = strings.ReplaceAll(cmd, "= "+plan.AppGroup+" ]", "= "+g.Name+" ]")
	env := "# belay env\nSTRIPE_KEY=sk_live_$(touch PWNED) `id` 'x'\n"
	sh := exec.Command("sh", "-c", cmd)
	sh.Dir = base
	sh.Stdin = strings.NewReader(env)
	if out, err := sh.CombinedOutput(); err != nil {
		t.Fatalf("env step: %v\n%s", err, out)
	}
	if b, _ := os.ReadFile(victim); string(b) != "root:secret\n" {
		t.Fatalf("the step wrote through the planted link: %q", b)
	}
	st, err := os.Lstat(envPath)
	if err != nil || !st.Mode().IsRegular() || st.Mode().Perm() != 0o640 {
		t.Fatalf("env file: %v %v", st.Mode(), err)
	}
	if b, _ := os.ReadFile(envPath); string(b) != env {
		t.Fatalf("env file content %q", b)
	}
	if _, err := os.Stat(filepath.Join(base, "PWNED")); err == nil {
		t.Fatal("a value ran as code")
	}
	if left, _ := filepath.Glob(filepath.Join(shared, ".belay-env.*")); len(left) != 0 {
		t.Fatalf("temp dirs left in shared: %v", left)
	}

	// The same release already running as the canary keeps its env: a
	// different one is refused and the file is unchanged.
	if err := os.Symlink(rel, filepath.Join(base, "shop", "canary")); err != nil {
		t.Fatal(err)
	}
	sh = exec.Command("sh", "-c", cmd)
	sh.Stdin = strings.NewReader("OTHER=1\n")
	out, err := sh.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "already runs with another env") {
		t.Fatalf("changed env under a running canary: %v %s", err, out)
	}
	if b, _ := os.ReadFile(envPath); string(b) != env {
		t.Fatalf("refused step changed the file: %q", b)
	}
	// The same env again is fine (a resumed rollout).
	sh = exec.Command("sh", "-c", cmd)
	sh.Stdin = strings.NewReader(env)
	if out, err := sh.CombinedOutput(); err != nil {
		t.Fatalf("same env again: %v %s", err, out)
	}

	// shared without its setgid bit: refused, nothing written.
	if err := os.Chmod(shared, 0o775); err != nil {
		t.Fatal(err)
	}
	sh = exec.Command("sh", "-c", cmd)
	sh.Stdin = strings.NewReader(env)
	if out, err := sh.CombinedOutput(); err == nil || !strings.Contains(string(out), "setgid shared directory") {
		t.Fatalf("no setgid: %v %s", err, out)
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// TestReleaseCommandScript runs the release-command step's script for real,
// with sudo and journalctl replaced by stubs on PATH (timeout is the real
// one): the unit's journal is streamed, its failure or timeout fails the step
// and, on a timeout, the unit is stopped; the hook link never outlives the step.
func TestReleaseCommandScript(t *testing.T) {
	for _, tc := range []struct {
		name     string
		startRC  string // what `sudo -n systemctl start` does
		timeout  time.Duration
		wantErr  string
		wantLogs []string
	}{
		{"passes", "exit 0", 0, "", []string{"start belay-release@shop.service"}},
		{"fails", "exit 3", 0, "release command failed", []string{"start belay-release@shop.service"}},
		{"times out", "sleep 30", time.Second, "timed out after 1s and was stopped", []string{"start belay-release@shop.service", "stop belay-release@shop.service"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base, bin := t.TempDir(), t.TempDir()
			rel := filepath.Join(base, "shop", "releases", "v42")
			if err := os.MkdirAll(rel, 0o755); err != nil {
				t.Fatal(err)
			}
			log := filepath.Join(base, "sudo.log")
			stub := func(name, body string) {
				if err := os.WriteFile(filepath.Join(bin, name), []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			stub("sudo", `shift; echo "$2 $3" >> `+log+`; case $2 in start) `+tc.startRC+`;; esac`)
			stub("journalctl", `case "$*" in *--show-cursor*) echo "-- cursor: s=abc";; *--follow*) echo "migrating 1/1"; exec sleep 60;; esac`)
			p, err := plan.Deploy(plan.Input{Inventory: inv(t), App: "shop", Release: "v42", Artifact: artifact, Env: true, Base: base,
				ReleaseCommand: []string{"bin/migrate", "--to", "42"}, ReleaseTimeout: tc.timeout, Strategy: plan.Strategy{Steps: []int{10}}})
			if err != nil {
				t.Fatal(err)
			}
			var cmd string
			for _, s := range p.Steps {
				if strings.HasSuffix(s.ID, "release-command") {
					cmd = s.Command
				}
			}
			sh := exec.Command("sh", "-c", cmd)
			sh.Env = []string{"PATH=" + bin + ":" + os.Getenv("PATH")}
			start := time.Now()
			out, err := sh.CombinedOutput()
			if took := time.Since(start); took > 20*time.Second {
				t.Fatalf("the step took %s", took)
			}
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(string(out), tc.wantErr)) {
				t.Fatalf("err %v, output:\n%s", err, out)
			}
			if !strings.Contains(string(out), "migrating 1/1") {
				t.Errorf("the unit's journal was not streamed:\n%s", out)
			}
			logged, _ := os.ReadFile(log)
			for _, w := range tc.wantLogs {
				if !strings.Contains(string(logged), w) {
					t.Errorf("sudo calls %q lack %q", logged, w)
				}
			}
			if b, _ := os.ReadFile(filepath.Join(rel, plan.ReleaseCommandFile)); string(b) != "bin/migrate\n--to\n42\n" {
				t.Errorf("command file %q", b)
			}
			if _, err := os.Lstat(filepath.Join(base, "shop", "hook")); err == nil {
				t.Error("the hook link outlived the step")
			}
		})
	}
}
