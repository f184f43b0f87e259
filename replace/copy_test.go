package replace

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/belay-sh/belay/hostrelease"
	"github.com/belay-sh/belay/internal/shq"
)

// localHosts runs each host's commands with real sh, the host's /srv being
// its own temp dir (BELAY_ROOT): the copy step end to end, streams included.
type localHosts struct {
	root map[string]string
	// tamper, if set, rewrites the bytes on their way to the receiver.
	tamper func([]byte) []byte
}

func (l *localHosts) cmd(ctx context.Context, host, script string) *exec.Cmd {
	c := exec.CommandContext(ctx, "sh", "-c", script)
	c.Env = append(os.Environ(), "BELAY_ROOT="+l.root[host])
	return c
}

func (l *localHosts) Run(ctx context.Context, host, script string) ([]byte, error) {
	var errb bytes.Buffer
	c := l.cmd(ctx, host, script)
	c.Stderr = &errb
	out, err := c.Output()
	if err != nil {
		return out, errors.New(err.Error() + ": " + errb.String())
	}
	return out, nil
}

func (l *localHosts) RunRoot(context.Context, string, ...string) ([]byte, error) {
	return nil, errors.New("no root here")
}
func (l *localHosts) DialTCP(context.Context, string, string) (net.Conn, error) {
	return nil, errors.New("no tcp here")
}
func (l *localHosts) Forget(string) {}

func (l *localHosts) Stream(ctx context.Context, host, script string, stdout, stderr io.Writer) error {
	c := l.cmd(ctx, host, script)
	c.Stdout, c.Stderr = stdout, stderr
	if l.tamper != nil {
		var b bytes.Buffer
		c.Stdout = &b
		if err := c.Run(); err != nil {
			return err
		}
		_, err := stdout.Write(l.tamper(b.Bytes()))
		return err
	}
	return c.Run()
}

func (l *localHosts) RunInput(ctx context.Context, host, script string, stdin io.Reader) ([]byte, error) {
	c := l.cmd(ctx, host, script)
	c.Stdin = stdin
	var errb bytes.Buffer
	c.Stderr = &errb
	out, err := c.Output()
	if err != nil {
		return out, errors.New(err.Error() + ": " + strings.TrimSpace(errb.String()))
	}
	return out, nil
}

// TestCopyReleaseStepReal runs the copy-release step through Execute with
// real shells on two directory trees: a release with a nested executable, a
// symlink, a 0600 env file and an 8 MiB file arrives identical; a rerun is a
// no-op; a tampered stream fails the step and leaves nothing.
func TestCopyReleaseStepReal(t *testing.T) {
	for _, tool := range []string{"tar", "find", "sort", "xargs", "stat", "sha256sum", "awk", "mktemp"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	hosts := &localHosts{root: map[string]string{"shop-1": t.TempDir(), "shop-2": t.TempDir()}}
	src := func(p string) string { return hosts.root["shop-1"] + "/shop/" + p }
	for _, h := range []string{"shop-1", "shop-2"} {
		must(t, os.MkdirAll(hosts.root[h]+"/shop/shared", 0o775))
		must(t, os.Chmod(hosts.root[h]+"/shop/shared", os.ModeSetgid|0o775))
	}
	must(t, os.MkdirAll(src("releases/v7/lib/deep"), 0o755))
	must(t, os.MkdirAll(src(".belay/releases"), 0o755))
	must(t, os.WriteFile(src("releases/v7/start"), []byte("#!/bin/sh\nexec lib/deep/app\n"), 0o755))
	must(t, os.WriteFile(src("releases/v7/lib/deep/app"), []byte("app\n"), 0o755))
	must(t, os.WriteFile(src("releases/v7/lib/blob"), bytes.Repeat([]byte("0123456789abcdef"), 512<<10), 0o644))
	must(t, os.WriteFile(src("releases/v7/.belay-env"), []byte("TOKEN=sekrit\n"), 0o600))
	must(t, os.Symlink("deep/app", src("releases/v7/lib/app")))
	must(t, os.WriteFile(src(".belay/releases/v7.sha256"), []byte(strings.Repeat("c", 64)+"\n"), 0o644))
	must(t, os.Symlink(src("releases/v7"), src("current")))

	p := &Plan{Steps: []Step{copyStep("shop", "shop-2", "shop-1", "v7")}}
	run := func() (*Result, string, error) {
		var out bytes.Buffer
		env := &Env{Hosts: hosts, Pipe: hosts, Base: shq.RootVar, Out: &out}
		res, err := Execute(context.Background(), env, p, "")
		return res, out.String(), err
	}
	manifest := func(host string) *hostrelease.Manifest {
		out, err := hosts.Run(context.Background(), host, hostrelease.Layout{App: "shop", Base: shq.RootVar}.ManifestCommand(""))
		must(t, err)
		m, err := hostrelease.ParseManifest(string(out))
		must(t, err)
		return m
	}

	// A tampered stream first: refused, nothing kept.
	hosts.tamper = func(b []byte) []byte { return bytes.Replace(b, []byte("TOKEN=sekrit"), []byte("TOKEN=sekriT"), 1) }
	res, out, err := run()
	if err == nil || !strings.Contains(err.Error(), "arrived with manifest") || !strings.Contains(err.Error(), "--from copy-release/shop-2") || res.OK {
		t.Fatalf("tampered: %v\n%s", err, out)
	}
	if strings.Contains(out+err.Error(), "sekri") {
		t.Errorf("the env file's content reached the output")
	}
	if m := manifest("shop-2"); m.Present || m.Current != "" {
		t.Fatalf("a refused copy left %+v", m)
	}
	if left, _ := os.ReadDir(hosts.root["shop-2"] + "/shop/releases"); len(left) != 0 {
		t.Fatalf("a refused copy left %v", left)
	}

	hosts.tamper = nil
	if res, out, err = run(); err != nil || res.Steps[0].Status != "done" {
		t.Fatalf("copy: %v %+v\n%s", err, res, out)
	}
	a, b := manifest("shop-1"), manifest("shop-2")
	if b.Current != "v7" || b.Digest != a.Digest || b.Sum != a.Sum || a.Bytes < 8<<20 {
		t.Fatalf("shop-2 %+v, shop-1 %+v", b, a)
	}
	if !strings.Contains(res.Steps[0].Note, "8.0 MiB streamed") {
		t.Errorf("note %q", res.Steps[0].Note)
	}

	if res, out, err = run(); err != nil || res.Steps[0].Status != "skipped" || !strings.Contains(res.Steps[0].Note, "nothing copied") {
		t.Fatalf("rerun: %v %+v\n%s", err, res, out)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestCopyProgress: a slow stream prints the bytes streamed as it goes.
func TestCopyProgress(t *testing.T) {
	var out bytes.Buffer
	slow := &slowPipe{}
	env := &Env{Pipe: slow, Out: &out, ProgressEvery: 5 * time.Millisecond}
	env.defaults()
	n, err := env.pipe(context.Background(), "a", "send", "b", "receive")
	if err != nil || n != 4<<10 {
		t.Fatalf("pipe: %d bytes, %v", n, err)
	}
	if !strings.Contains(out.String(), " streamed\n") || !strings.HasSuffix(out.String(), "  received\n") {
		t.Errorf("output %q: want progress lines, then the receiver's last line", out.String())
	}
}

type slowPipe struct{}

func (slowPipe) Stream(_ context.Context, _, _ string, stdout, _ io.Writer) error {
	for i := 0; i < 4; i++ {
		time.Sleep(10 * time.Millisecond)
		if _, err := stdout.Write(make([]byte, 1024)); err != nil {
			return err
		}
	}
	return nil
}

func (slowPipe) RunInput(_ context.Context, _, _ string, stdin io.Reader) ([]byte, error) {
	_, err := io.Copy(io.Discard, stdin)
	return []byte("received\n"), err
}

// TestCopyReceiverQuitsEarly: a receiver that refuses without reading does
// not leave the sender blocked; the receiver's error is the step's.
func TestCopyReceiverQuitsEarly(t *testing.T) {
	env := &Env{Pipe: quitPipe{}}
	env.defaults()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := env.pipe(ctx, "a", "send", "b", "receive")
	if err == nil || !strings.Contains(err.Error(), "receiving on b: exit status 66: refused") || ctx.Err() != nil {
		t.Fatalf("err = %v (ctx %v)", err, ctx.Err())
	}
}

type quitPipe struct{}

func (quitPipe) Stream(ctx context.Context, _, _ string, stdout, _ io.Writer) error {
	for ctx.Err() == nil {
		if _, err := stdout.Write(make([]byte, 64<<10)); err != nil {
			return err
		}
	}
	return ctx.Err()
}

func (quitPipe) RunInput(context.Context, string, string, io.Reader) ([]byte, error) {
	return nil, errors.New("exit status 66: refused")
}

func TestExecuteCopyRelease(t *testing.T) {
	tests := []struct {
		name string
		edit func(f *fakeHosts)
		// want is the copy step's status, or a part of the run's error.
		status, want string
		streamed     bool
	}{
		{"the new server has the release already: nothing copied", func(f *fakeHosts) {}, "skipped", "has release v7 already", false},
		{"another digest of v7 there: copied again (the receiver refuses or replaces)", func(f *fakeHosts) { f.digest["shop-2"] = strings.Repeat("e", 64) }, "done", "copied from shop-1", true},
		{"a tampered stream: the step fails, resumable", func(f *fakeHosts) {
			f.current["shop-2"] = ""
			f.receiveFails = true
		}, "failed", "receiving on shop-2: exit status 69: release v7 arrived with manifest eeee, the source has dddd", true},
		{"the peer moved on since the plan", func(f *fakeHosts) { f.current["shop-1"] = "v8" }, "failed", `shop-1's current is "v8" now`, false},
		{"no way to stream", func(f *fakeHosts) { f.current["shop-2"] = "" }, "failed", "no way to stream between hosts", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake()
			inv := testInventory(t)
			p, err := PlanReplace(inv, "shop-2", Observe(context.Background(), f, inv, "shop-2"))
			if err != nil {
				t.Fatal(err)
			}
			tc.edit(f)
			env := f.env()
			if strings.HasPrefix(tc.name, "no way") {
				env.Pipe = nil
			}
			res, err := Execute(context.Background(), env, p, "copy-release/shop-2")
			i := slices.IndexFunc(res.Steps, func(r StepResult) bool { return r.ID == "copy-release/shop-2" })
			if i < 0 || res.Steps[i].Status != tc.status {
				t.Fatalf("copy step %+v, want %s (err %v)", res.Steps, tc.status, err)
			}
			msg := res.Steps[i].Note
			if tc.status == "failed" {
				if err == nil || !strings.Contains(err.Error(), "--from copy-release/shop-2") {
					t.Errorf("err = %v, want a resume hint", err)
				}
				if f.index("shop-2: sudo systemctl start") >= 0 {
					t.Errorf("started the app after a failed copy")
				}
			}
			if !strings.Contains(msg, tc.want) {
				t.Errorf("note %q, want %q", msg, tc.want)
			}
			if got := f.index("shop-1: STREAM") >= 0; got != tc.streamed {
				t.Errorf("streamed %v, want %v\n%s", got, tc.streamed, strings.Join(f.log, "\n"))
			}
			if f.index("REPLACE") >= 0 {
				t.Errorf("--from copy-release replaced the server again")
			}
		})
	}
}
