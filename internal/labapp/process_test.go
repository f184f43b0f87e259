package labapp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// These tests run the app as a process, as the unit would, and see the
// signals and exit codes a systemd unit sees. To spare a `go build` per
// behaviour, the test binary re-executes itself as the app (helperEnv holds the
// switches) through the same Main the command calls; TestCommandWiring builds
// the real command once to check its -X switches reach Main.

const helperEnv = "LABAPP_TEST_SWITCHES"

func TestMain(m *testing.M) {
	if js := os.Getenv(helperEnv); js != "" {
		var sw Switches
		if err := json.Unmarshal([]byte(js), &sw); err != nil {
			fmt.Fprintln(os.Stderr, "labapp helper:", err)
			os.Exit(3)
		}
		os.Exit(Main(sw, "helper"))
	}
	os.Exit(m.Run())
}

// app is the command of these switches: the test binary in helper mode.
func app(t *testing.T, sw Switches) []string {
	t.Helper()
	js, _ := json.Marshal(sw)
	return []string{os.Args[0], helperEnv + "=" + string(js)}
}

type proc struct {
	cmd    *exec.Cmd
	url    string
	stderr *bytes.Buffer
	done   chan error
}

// start runs cmd[0] with the environment of a unit in slot plus cmd[1:] (NAME=value).
func start(t *testing.T, cmd []string, slot string) *proc {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	p := &proc{cmd: exec.Command(cmd[0]), url: fmt.Sprintf("http://127.0.0.1:%d", port), stderr: &bytes.Buffer{}, done: make(chan error, 1)}
	p.cmd.Env = append(os.Environ(), fmt.Sprintf("PORT=%d", port), "BELAY_RELEASE=r1", "BELAY_SLOT="+slot)
	p.cmd.Env = append(p.cmd.Env, cmd[1:]...)
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

// startUp starts cmd and waits for its health check. The free port start picks
// can be taken by a parallel test (another package) before the app binds it,
// so a bind conflict gets a new port rather than failing the test.
func startUp(t *testing.T, cmd []string, slot string) *proc {
	t.Helper()
	for try := 1; ; try++ {
		p := start(t, cmd, slot)
		if p.waitUp(t) {
			return p
		}
		if try == 5 || !strings.Contains(p.stderr.String(), "address already in use") {
			t.Fatalf("never healthy:\n%s", p.stderr)
		}
	}
}

// waitUp polls the health check; false if the process exited or never listened.
func (p *proc) waitUp(t *testing.T) bool {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if resp, err := http.Get(p.url + HealthPath); err == nil {
			resp.Body.Close()
			return resp.StatusCode == 200
		}
	}
	return false
}

func (p *proc) exit(t *testing.T, within time.Duration) (code int, sig syscall.Signal, after time.Duration) {
	t.Helper()
	begin := time.Now()
	select {
	case err := <-p.done:
		p.done <- err // for the cleanup
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			ws := ee.Sys().(syscall.WaitStatus)
			if ws.Signaled() {
				return -1, ws.Signal(), time.Since(begin)
			}
			return ws.ExitStatus(), 0, time.Since(begin)
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0, 0, time.Since(begin)
	case <-time.After(within):
		t.Fatalf("process still running %s later; stderr:\n%s", within, p.stderr)
	}
	return
}

// inFlight starts GET /sleep?d=2s and returns its outcome on the channel.
func inFlight(t *testing.T, p *proc) <-chan error {
	t.Helper()
	ch := make(chan error, 1)
	go func() {
		resp, err := http.Get(p.url + "/sleep?d=2s")
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil && resp.StatusCode != 200 {
				err = fmt.Errorf("status %d", resp.StatusCode)
			}
		}
		ch <- err
	}()
	time.Sleep(200 * time.Millisecond) // the request is in the handler
	return ch
}

func TestProcessSignals(t *testing.T) {
	t.Run("ordinary app dies at once on SIGTERM, cutting the request in flight", func(t *testing.T) {
		p := startUp(t, app(t, Switches{}), "stable")
		req := inFlight(t, p)
		p.cmd.Process.Signal(syscall.SIGTERM)
		_, sig, after := p.exit(t, time.Second)
		if sig != syscall.SIGTERM {
			t.Errorf("exit by signal %v, want death by SIGTERM (no handler)", sig)
		}
		if err := <-req; err == nil {
			t.Errorf("the in-flight request succeeded: the app drained (exit after %s)", after)
		}
	})
	t.Run("drain finishes the request in flight, then exits 0", func(t *testing.T) {
		p := startUp(t, app(t, Switches{Drain: "5s"}), "stable")
		req := inFlight(t, p)
		p.cmd.Process.Signal(syscall.SIGTERM)
		code, sig, _ := p.exit(t, 5*time.Second)
		if code != 0 || sig != 0 {
			t.Errorf("exit %d signal %v, want 0", code, sig)
		}
		if err := <-req; err != nil {
			t.Errorf("in-flight request lost despite drain: %v", err)
		}
	})
}

func TestProcessCrashes(t *testing.T) {
	t.Run("crashLoop exits 1 at start, never listening", func(t *testing.T) {
		p := start(t, app(t, Switches{CrashLoop: "yes"}), "canary")
		code, _, _ := p.exit(t, 2*time.Second)
		if code != 1 || !strings.Contains(p.stderr.String(), "crashLoop=yes") {
			t.Errorf("exit %d, stderr %q; want 1 naming crashLoop", code, p.stderr)
		}
	})
	t.Run("crashLoop held to the canary slot starts in stable", func(t *testing.T) {
		startUp(t, app(t, Switches{CrashLoop: "yes", FaultSlot: "canary"}), "stable")
	})
	t.Run("crashAfter exits 2 after the first passed health check", func(t *testing.T) {
		p := startUp(t, app(t, Switches{CrashAfter: "300ms"}), "canary")
		code, _, after := p.exit(t, 3*time.Second)
		if code != 2 || !strings.Contains(p.stderr.String(), "crashing on purpose (crashAfter=300ms") {
			t.Errorf("exit %d after %s, stderr %q; want 2 naming crashAfter", code, after, p.stderr)
		}
	})
}

// TestCommandWiring builds deploy/testdata/labapp as the lab tests do: its -X
// switches reach Main (a bad one stops it naming the switch; good ones act).
func TestCommandWiring(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the lab app")
	}
	out := filepath.Join(t.TempDir(), "labapp")
	build := func(ldflags ...string) {
		t.Helper()
		cmd := exec.Command("go", "build", "-o", out, "-ldflags", strings.Join(ldflags, " "), "github.com/belay-sh/belay/deploy/testdata/labapp")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build labapp %v: %v\n%s", ldflags, err, b)
		}
	}
	build("-X main.buildID=b9", "-X main.errorsOneIn=2", "-X main.faultSlot=canary")
	p := startUp(t, []string{out}, "canary")
	var got []string
	for i := 0; i < 2; i++ {
		resp, err := http.Get(p.url + "/")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got = append(got, fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(b))))
	}
	if want := []string{"200 release=r1 slot=canary build=b9", "503 unavailable on purpose"}; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("answers %q, want %q", got, want)
	}
	build("-X main.errorsOneIn=4%")
	p = start(t, []string{out}, "stable")
	code, _, _ := p.exit(t, 5*time.Second)
	if code != 1 || !strings.Contains(p.stderr.String(), `main.errorsOneIn="4%"`) {
		t.Errorf("exit %d, stderr %q; want 1 naming the switch", code, p.stderr)
	}
}
