package run_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/belay-sh/belay/deploy/plan"
	"github.com/belay-sh/belay/deploy/release"
	"github.com/belay-sh/belay/deploy/run"
	"github.com/belay-sh/belay/deploy/sshx"
	"github.com/belay-sh/belay/deploy/sshx/sshdtest"
	"github.com/belay-sh/belay/hostrelease"
	"github.com/belay-sh/belay/hostrelease/journal"
)

// hosts starts one real sshd per host name; each gets its own root directory
// through the BELAY_ROOT session variable, so the layout of "two hosts" on this
// one machine does not collide. The Layout's Base is that variable.
type testHosts struct {
	roots map[string]string
	pool  *sshx.Pool
	dials map[string]int
	mu    sync.Mutex
}

func newHosts(t *testing.T, names ...string) *testHosts {
	t.Helper()
	th := &testHosts{roots: map[string]string{}, dials: map[string]int{}}
	servers := map[string]*sshdtest.Server{}
	for _, n := range names {
		root := filepath.Join(t.TempDir(), n)
		os.MkdirAll(root, 0o755)
		th.roots[n] = root
		servers[n] = sshdtest.New(t, "SetEnv BELAY_ROOT="+root)
	}
	th.pool = sshx.NewPool(func(ctx context.Context, host string) (*sshx.Client, error) {
		s := servers[host]
		th.mu.Lock()
		th.dials[host]++
		th.mu.Unlock()
		cfg := sshx.Config{Auth: []ssh.AuthMethod{ssh.PublicKeys(s.ClientSigner)}, KeepaliveInterval: -1}
		return sshx.NewClientConn(ctx, cfg, sshx.Target{Name: host, Addr: host + ":22", User: s.User, HostKeys: []ssh.PublicKey{s.HostKey}}, s.Conn())
	})
	t.Cleanup(th.pool.Close)
	return th
}

var layout = hostrelease.Layout{App: "shop", Base: "$BELAY_ROOT"}

func readJournal(t *testing.T, root string) *journal.Record {
	t.Helper()
	b, _ := os.ReadFile(filepath.Join(root, "shop", ".belay", "journal.json"))
	r, err := journal.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func recs(hosts ...string) map[string]journal.Record {
	m := map[string]journal.Record{}
	for _, h := range hosts {
		m[h] = journal.Record{DeployID: "d1", App: "shop", Kind: "deploy", Target: "v2", Previous: "v1", Status: journal.Running}
	}
	return m
}

func TestExecStopsAtFirstFailure(t *testing.T) {
	th := newHosts(t, "shop-1", "shop-2")
	var progress bytes.Buffer
	r := &run.Runner{Pool: th.pool, Layout: layout, Progress: &progress}
	both := []string{"shop-1", "shop-2"}
	p := &plan.Plan{Steps: []plan.Step{
		{ID: "01-a", Title: "first", Hosts: both, Command: "mkdir -p $BELAY_ROOT/shop && echo one >> $BELAY_ROOT/shop/trace", Timeout: plan.Duration(time.Minute)},
		{ID: "02-b", Title: "second", Hosts: both, Command: "echo two >> $BELAY_ROOT/shop/trace; case $BELAY_ROOT in */shop-2) echo 'disk full' >&2; exit 3;; esac", Timeout: plan.Duration(time.Minute)},
		{ID: "03-c", Title: "third", Hosts: both, Command: "echo three >> $BELAY_ROOT/shop/trace", Timeout: plan.Duration(time.Minute)},
	}}
	err := r.Exec(context.Background(), p, recs(both...))
	var se *run.StepError
	if !errors.As(err, &se) || se.Step.ID != "02-b" || len(se.ByHost) != 1 || se.ByHost["shop-2"] == nil {
		t.Fatalf("want step 02-b failing on shop-2 only, got %v", err)
	}
	if !strings.Contains(err.Error(), "disk full") || !strings.Contains(err.Error(), "shop-2") {
		t.Errorf("error should carry host and remote stderr: %v", err)
	}
	for h, want := range map[string]string{"shop-1": "one\ntwo\n", "shop-2": "one\ntwo\n"} {
		got, _ := os.ReadFile(filepath.Join(th.roots[h], "shop", "trace"))
		if string(got) != want {
			t.Errorf("%s ran %q, want %q (nothing after the failing step)", h, got, want)
		}
	}
	if j := readJournal(t, th.roots["shop-1"]); j.Step != "02-b" || j.InProgress != "" {
		t.Errorf("shop-1 journal %+v, want step 02-b done", j)
	}
	if j := readJournal(t, th.roots["shop-2"]); j.Step != "01-a" || j.InProgress != "02-b" {
		t.Errorf("shop-2 journal %+v, want 01-a done and 02-b in progress", j)
	}
	for _, line := range []string{"[shop-1] second … ok (", "[shop-2] second … FAILED ("} {
		if !strings.Contains(progress.String(), line) {
			t.Errorf("progress lacks %q:\n%s", line, progress.String())
		}
	}
	if th.dials["shop-1"] != 1 || th.dials["shop-2"] != 1 {
		t.Errorf("dials %v: want one connection per host for all steps", th.dials)
	}
}

func TestArtifactStreamedOncePerHostAndSkip(t *testing.T) {
	th := newHosts(t, "shop-1", "shop-2")
	dir := t.TempDir()
	art := filepath.Join(dir, "shop")
	body := "#!/bin/sh\nexec sleep 1000\n" + strings.Repeat("#", 1<<20)
	os.WriteFile(art, []byte(body), 0o755)
	a, err := release.Inspect(art)
	if err != nil {
		t.Fatal(err)
	}
	opens := 0
	var mu sync.Mutex
	r := &run.Runner{Pool: th.pool, Layout: layout, Artifact: func() (io.ReadCloser, error) {
		mu.Lock()
		opens++
		mu.Unlock()
		return os.Open(art)
	}}
	both := []string{"shop-1", "shop-2"}
	steps := func() *plan.Plan {
		return &plan.Plan{Steps: []plan.Step{
			{ID: "01-upload", Title: "upload", Hosts: both, Stdin: "artifact", Command: layout.ReceiveCommand("v2", a.SHA256), Skip: layout.Unpacked("v2", a.SHA256), Timeout: plan.Duration(time.Minute)},
			{ID: "02-unpack", Title: "unpack", Hosts: both, Command: layout.UnpackCommand("v2", a), Skip: layout.Unpacked("v2", a.SHA256), Timeout: plan.Duration(time.Minute)},
		}}
	}
	if err := r.Exec(context.Background(), steps(), recs(both...)); err != nil {
		t.Fatal(err)
	}
	if opens != 2 {
		t.Fatalf("artifact opened %d times, want once per host", opens)
	}
	sum := sha256.Sum256([]byte(body))
	for _, h := range both {
		got, err := os.ReadFile(filepath.Join(th.roots[h], "shop", "releases", "v2", "start"))
		if err != nil || sha256.Sum256(got) != sum {
			t.Fatalf("%s: start missing or different (%v)", h, err)
		}
	}
	// A re-run (e.g. after a crash) sends nothing again.
	if err := r.Exec(context.Background(), steps(), recs(both...)); err != nil {
		t.Fatal(err)
	}
	if opens != 2 {
		t.Fatalf("re-run re-sent the artifact (%d opens)", opens)
	}
	_ = hex.EncodeToString
}

func TestStepTimeout(t *testing.T) {
	th := newHosts(t, "shop-1")
	r := &run.Runner{Pool: th.pool, Layout: layout}
	// The hang ends itself once its session is gone (its next write fails):
	// the test's sshd runs in inetd mode, which refuses the SIGKILL the runner
	// sends on a timeout ("session signalling requires privilege separation"),
	// and a `sleep 60` would outlive the test and write its journal into the
	// removed temporary directory. A daemon sshd (the lab's) kills the group.
	hang := "while sleep 0.1; do echo . || exit 1; done"
	p := &plan.Plan{Steps: []plan.Step{{ID: "01-hang", Title: "hang", Hosts: []string{"shop-1"}, Command: hang, Timeout: plan.Duration(300 * time.Millisecond)}}}
	err := r.Exec(context.Background(), p, recs("shop-1"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want a deadline error, got %v", err)
	}
}

func TestMain(m *testing.M) {
	if _, err := exec.LookPath("sha256sum"); err != nil {
		fmt.Println("skip: no coreutils")
		return
	}
	os.Exit(m.Run())
}

// TestPipelineHostsDoNotWait: within a pipeline a host goes on to its next step
// while another is still busy — here shop-2's first step can only finish after
// shop-1's second step ran, which a per-step barrier would never allow — and
// the step after the pipeline starts only when every host finished it.
func TestPipelineHostsDoNotWait(t *testing.T) {
	th := newHosts(t, "shop-1", "shop-2")
	shared := t.TempDir()
	r := &run.Runner{Pool: th.pool, Layout: layout}
	both := []string{"shop-1", "shop-2"}
	me := "$(basename $BELAY_ROOT)"
	p := &plan.Plan{Steps: []plan.Step{
		{ID: "01-a", Title: "a", Hosts: both, Pipeline: "prepare", Timeout: plan.Duration(20 * time.Second),
			Command: "case $BELAY_ROOT in */shop-2) until [ -e " + shared + "/b-shop-1 ]; do sleep 0.05; done;; esac"},
		{ID: "02-b", Title: "b", Hosts: both, Pipeline: "prepare", Timeout: plan.Duration(time.Minute),
			Command: "touch " + shared + "/b-" + me},
		{ID: "03-c", Title: "c", Hosts: both, Timeout: plan.Duration(time.Minute),
			Command: "test -e " + shared + "/b-shop-1 && test -e " + shared + "/b-shop-2 || { echo 'c ran before every host finished the pipeline' >&2; exit 1; }"},
	}}
	if err := r.Exec(context.Background(), p, recs(both...)); err != nil {
		t.Fatal(err)
	}
	for _, h := range both {
		if j := readJournal(t, th.roots[h]); j.Step != "03-c" || j.InProgress != "" {
			t.Errorf("%s journal %+v, want 03-c done", h, j)
		}
	}
}

// TestPipelineStopsAfterFailure: once a host fails inside a pipeline, no host
// starts another step of it, and the error names the failed step and host.
func TestPipelineStopsAfterFailure(t *testing.T) {
	th := newHosts(t, "shop-1", "shop-2")
	shared := t.TempDir()
	r := &run.Runner{Pool: th.pool, Layout: layout}
	both := []string{"shop-1", "shop-2"}
	trace := "mkdir -p $BELAY_ROOT/shop && echo $0 >> $BELAY_ROOT/shop/trace"
	p := &plan.Plan{Steps: []plan.Step{
		{ID: "01-a", Title: "a", Hosts: both, Pipeline: "prepare", Timeout: plan.Duration(time.Minute),
			// shop-1 fails at once; shop-2 finishes its step a second after that.
			Command: "sh -c '" + trace + "' a; case $BELAY_ROOT in */shop-1) touch " + shared + "/failed; echo 'no space left' >&2; exit 3;; esac\n" +
				"until [ -e " + shared + "/failed ]; do sleep 0.05; done; sleep 1"},
		{ID: "02-b", Title: "b", Hosts: both, Pipeline: "prepare", Timeout: plan.Duration(time.Minute),
			Command: "sh -c '" + trace + "' b"},
	}}
	err := r.Exec(context.Background(), p, recs(both...))
	var se *run.StepError
	if !errors.As(err, &se) || se.Step.ID != "01-a" || len(se.ByHost) != 1 || se.ByHost["shop-1"] == nil {
		t.Fatalf("want step 01-a failing on shop-1 only, got %v", err)
	}
	if !strings.Contains(err.Error(), "no space left") {
		t.Errorf("error lacks the remote stderr: %v", err)
	}
	for _, h := range both {
		got, _ := os.ReadFile(filepath.Join(th.roots[h], "shop", "trace"))
		if string(got) != "a\n" {
			t.Errorf("%s ran %q, want only step a (no step starts after a failure)", h, got)
		}
	}
}
