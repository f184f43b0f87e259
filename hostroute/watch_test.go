package hostroute

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/belay-sh/belay/deploy/traffic"
)

func TestWatcherMarksDeadMemberDownAndBackUp(t *testing.T) {
	n := startNginx(t, "shop")
	port := freePort(t)
	startBackend(t, fmt.Sprintf("127.0.0.1:%d", port), "one", 0)
	two := startBackend(t, fmt.Sprintf("127.0.0.2:%d", port), "two", 0)
	n.boot(t, spec("shop", port, traffic.Stable, []string{"127.0.0.1", "127.0.0.2"}, nil))
	var log bytes.Buffer
	w := &Watcher{Opts: n.opts, Log: &log}
	ctx := context.Background()
	round := func() {
		t.Helper()
		if err := w.Once(ctx); err != nil {
			t.Fatal(err)
		}
	}
	httpConf := func() string {
		b, _ := os.ReadFile(filepath.Join(n.opts.Dir, "shop", httpFile))
		return string(b)
	}
	dead := fmt.Sprintf("server 127.0.0.2:%d down;", port)

	round()
	if strings.Contains(httpConf(), "down;") {
		t.Fatal("a live member was marked down")
	}
	two.srv.Close()
	round()
	if strings.Contains(httpConf(), "down;") {
		t.Fatal("marked down after one failed probe; Fall is 2")
	}
	round()
	if !strings.Contains(httpConf(), dead) {
		t.Fatalf("after two failed probes http.conf has no %q:\n%s", dead, httpConf())
	}
	for i := 0; i < 20; i++ {
		if code, body := get(t, n.front+"/"); code != 200 || body != "one" {
			t.Fatalf("request %d: %d %q, want every request on the live member", i, code, body)
		}
	}
	// The deployer's next stage keeps the member down.
	if _, err := Apply(ctx, "shop", Request{Spec: spec("shop", port, traffic.Stable, []string{"127.0.0.1", "127.0.0.2"}, nil)}, n.opts); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(httpConf(), dead) {
		t.Fatal("a deployer's route brought a dead member back")
	}
	startBackend(t, fmt.Sprintf("127.0.0.2:%d", port), "two", 0)
	round()
	round()
	if strings.Contains(httpConf(), "down;") {
		t.Fatalf("member answering again still down:\n%s", httpConf())
	}
	if !strings.Contains(log.String(), "marked down") || !strings.Contains(log.String(), "marked up") {
		t.Fatalf("log does not tell the transitions:\n%s", log.String())
	}
}

// When every member of a pool is unreachable none is rendered down: nginx
// trying them is better than a guaranteed 502.
func TestWatcherNeverEmptiesAPool(t *testing.T) {
	n := startNginx(t, "shop")
	port := freePort(t)
	n.boot(t, spec("shop", port, traffic.Stable, []string{"127.0.0.1", "127.0.0.2"}, nil))
	w := &Watcher{Opts: n.opts}
	for i := 0; i < 3; i++ {
		if err := w.Once(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := os.ReadFile(filepath.Join(n.opts.Dir, "shop", httpFile))
	if strings.Contains(string(b), "down;") {
		t.Fatalf("every member down, yet some rendered down:\n%s", b)
	}
	if got := readDown(n.opts.RunDir, "shop"); len(got) != 2 {
		t.Fatalf("down list %v, want both members recorded", got)
	}
}

// The watcher re-renders the stage in force when it applies, never a spec it
// read earlier: a deployer's route in between (here: back to stable) wins.
func TestWatcherReappliesTheStageInForce(t *testing.T) {
	n := startNginx(t, "shop")
	port := freePort(t)
	full := spec("shop", port, traffic.Full, []string{"127.0.0.1", "127.0.0.2"}, []string{"127.0.0.1", "127.0.0.2"})
	n.boot(t, full)
	stale, _ := LoadStage(filepath.Join(n.opts.Dir, "shop"))
	if _, err := Apply(context.Background(), "shop", Request{Spec: spec("shop", port, traffic.Stable, []string{"127.0.0.1", "127.0.0.2"}, nil)}, n.opts); err != nil {
		t.Fatal(err)
	}
	if err := writeDown(n.opts.RunDir, "shop", []string{fmt.Sprintf("127.0.0.2:%d", port)}); err != nil {
		t.Fatal(err)
	}
	res, err := Apply(context.Background(), "shop", Request{Current: true}, n.opts)
	if err != nil {
		t.Fatal(err)
	}
	routing, _ := os.ReadFile(filepath.Join(n.opts.Dir, "shop", routingFile))
	if stale.Stage.Kind != traffic.Full || res.Stage != "stable" || !strings.Contains(string(routing), "stage stable") {
		t.Fatalf("re-render applied %q (routing %q), want the stage in force (stable), not the stale %s", res.Stage, routing, stale.Stage)
	}
	if len(res.Down) != 1 {
		t.Fatalf("down %v, want the watcher's member", res.Down)
	}
	if _, err := Decode([]byte(`{"spec":{"app":"shop"},"Current":true}`)); err == nil {
		t.Fatal("the deploy user could ask for a re-render of an old stage through the wire format")
	}
}
