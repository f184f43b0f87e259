package replace

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/belay-sh/belay/hostcmd"
	"github.com/belay-sh/belay/hostrelease"
	"github.com/belay-sh/belay/internal/shq"
	"github.com/belay-sh/belay/remote"
)

// fakeHosts simulates a stack: a VRRP pair, a pg_auto_failover formation and
// servers that can be replaced. Every call is logged in order.
type fakeHosts struct {
	mu  sync.Mutex
	log []string
	// vip is who holds the app's VIP; fenced hosts give it up.
	vip     string
	fenced  map[string]bool
	down    map[string]bool // unreachable
	primary string
	states  map[string]string // data node -> state
	uuid    map[string]string // host -> volume UUID
	// reformat makes a replacement mount a new filesystem.
	reformat bool
	// switchoverFails makes the monitor's switchover fail.
	switchoverFails bool
	// noRelease: hosts without a release of the app.
	noRelease map[string]bool
	// current: the release each app server's current points to ("" none);
	// digest its manifest digest; canary a paused rollout's canary.
	current map[string]string
	digest  map[string]string
	canary  map[string]string
	// receiveFails makes the receiving end of a copy fail (a tampered stream).
	receiveFails bool
	// streamed counts the bytes each receiver read.
	streamed map[string]int
}

var (
	sumV7    = strings.Repeat("a", 64)
	digestV7 = strings.Repeat("d", 64)
)

func newFake() *fakeHosts {
	return &fakeHosts{vip: "shop-2", fenced: map[string]bool{}, down: map[string]bool{}, primary: "db-1",
		current: map[string]string{"shop-1": "v7", "shop-2": "v7", "shop-standby": "v7"},
		digest:  map[string]string{"shop-1": digestV7, "shop-2": digestV7, "shop-standby": digestV7},
		canary:  map[string]string{}, streamed: map[string]int{},
		states: map[string]string{"db-1": "primary", "db-2": "secondary"},
		uuid:   map[string]string{"db-1": "uuid-1", "db-2": "uuid-2"}}
}

func (f *fakeHosts) record(s string) {
	f.mu.Lock()
	f.log = append(f.log, s)
	f.mu.Unlock()
}

func (f *fakeHosts) Run(_ context.Context, host, cmd string) ([]byte, error) {
	f.record(host + ": " + cmd)
	if f.down[host] {
		return nil, errors.New("dial tcp: connection refused")
	}
	switch {
	case cmd == "true":
		return nil, nil
	case cmd == VIPProbeCmd:
		if f.vip == host {
			return []byte("2: eth0 inet 10.213.0.100/32 scope global eth0\n"), nil
		}
		return []byte("2: eth0 inet 10.213.0.21/25 scope global eth0\n"), nil
	case cmd == BootDoneCmd:
		return []byte("active\n"), nil
	case strings.HasPrefix(cmd, "findmnt"):
		return []byte(f.uuid[host] + "\n"), nil
	case strings.HasPrefix(cmd, "systemctl is-active --quiet keepalived"):
		if f.fenced[host] {
			return nil, errors.New("exit status 3")
		}
		return nil, nil
	case cmd == ActiveCmd("shop"):
		return []byte(fmt.Sprintf("current=%s\ncanary=%s\njournal=\n", f.current[host], f.canary[host])), nil
	case cmd == shopLayout.ManifestCommand("") || cmd == shopLayout.ManifestCommand("v7"):
		cur := f.current[host]
		if cur == "" {
			return []byte("currentPath=\ncurrent=\npresent=no\n"), nil
		}
		return []byte(fmt.Sprintf("currentPath=/srv/shop/releases/%[1]s\ncurrent=%[1]s\npresent=yes\nid=%[1]s\nsum=%[2]s\nentries=12\nbytes=4096\ndigest=%[3]s\n",
			cur, sumV7, f.digest[host])), nil
	case strings.HasPrefix(cmd, "test -x"):
		if f.noRelease[host] {
			return nil, errors.New("exit status 1")
		}
		return nil, nil
	}
	return nil, fmt.Errorf("fake: unexpected command %q on %s", cmd, host)
}

var shopLayout = hostrelease.Layout{App: "shop"}

// Stream is the sending end of a copy: a stream of the release's bytes.
func (f *fakeHosts) Stream(ctx context.Context, host, cmd string, stdout, _ io.Writer) error {
	f.record(host + ": STREAM " + strings.SplitN(remote.Summarize(cmd), "\n", 2)[0])
	if cmd != shopLayout.SendCommand(f.current[host]) {
		return fmt.Errorf("fake: unexpected stream command %q on %s", cmd, host)
	}
	for i := 0; i < 64; i++ {
		if _, err := stdout.Write(bytes.Repeat([]byte{'t'}, 1024)); err != nil {
			return err
		}
	}
	return nil
}

// RunInput is the receiving end: it reads the whole stream, then "checks" it.
func (f *fakeHosts) RunInput(_ context.Context, host, cmd string, stdin io.Reader) ([]byte, error) {
	f.record(host + ": RECEIVE")
	want := shopLayout.ReceiveCopyCommand(hostrelease.Copy{ID: "v7", Sum: sumV7, Digest: digestV7, Entries: 12, Bytes: 4096})
	if cmd != want {
		return nil, fmt.Errorf("fake: unexpected receive command on %s:\n%s", host, cmd)
	}
	n, err := io.Copy(io.Discard, stdin)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.streamed[host] = int(n)
	if err != nil {
		return nil, err
	}
	if f.receiveFails {
		return nil, errors.New("exit status 69: release v7 arrived with manifest eeee, the source has dddd: refused, nothing kept")
	}
	f.current[host], f.digest[host] = "v7", digestV7
	delete(f.noRelease, host)
	return []byte("release v7 copied (manifest dddd): current -> v7\n"), nil
}

func (f *fakeHosts) RunRoot(_ context.Context, host string, argv ...string) ([]byte, error) {
	line := shq.Join(argv...)
	f.record(host + ": sudo " + line)
	if f.down[host] {
		return nil, errors.New("dial tcp: connection refused")
	}
	switch line {
	case shq.Join(hostcmd.FenceApp("shop")...):
		f.fenced[host] = true
		if f.vip == host {
			f.vip = "shop-1"
		}
		return nil, nil
	case shq.Join(hostcmd.StartApp("shop")...):
		f.fenced[host] = false
		return nil, nil
	case shq.Join(hostcmd.MonitorPsql(hostcmd.SwitchoverSQL)...):
		if f.switchoverFails {
			return nil, errors.New("ERROR: cannot perform switchover")
		}
		for n, st := range f.states {
			if st == "primary" {
				f.states[n] = "secondary"
			} else {
				f.states[n] = "primary"
				f.primary = n
			}
		}
		return []byte("\n"), nil
	case shq.Join(hostcmd.MonitorPsql(hostcmd.NodeStatesSQL)...):
		return []byte(fmt.Sprintf("db-1|%s|%s\ndb-2|%s|%s\n", f.states["db-1"], f.states["db-1"], f.states["db-2"], f.states["db-2"])), nil
	case shq.Join(hostcmd.Psql(hostcmd.InRecoverySQL)...):
		if host == f.primary {
			return []byte("f\n"), nil
		}
		return []byte("t\n"), nil
	case shq.Join(hostcmd.Psql(hostcmd.StreamingReplicasSQL)...):
		return []byte("1\n"), nil
	case shq.Join(hostcmd.StopUnit(hostcmd.PGAutoFailoverUnit)...):
		f.states[host] = "catchingup"
		return nil, nil
	case shq.Join(hostcmd.StartUnit(hostcmd.PGAutoFailoverUnit)...):
		f.states[host] = "secondary"
		return nil, nil
	}
	return nil, fmt.Errorf("fake: unexpected root command %q on %s", line, host)
}

func (f *fakeHosts) DialTCP(context.Context, string, string) (net.Conn, error) {
	return nil, errors.New("fake: no tunnels")
}

func (f *fakeHosts) Forget(host string) { f.record(host + ": forget") }

// replaceServer is the fake Replacer: a new server, same volume (unless
// reformat), which rejoins the formation as a secondary after converge.
func (f *fakeHosts) Replace(_ context.Context, host string) error {
	f.record("REPLACE " + host)
	f.down[host] = false
	if f.reformat {
		f.uuid[host] = "uuid-new"
	}
	if _, ok := f.states[host]; ok {
		f.states[host] = "secondary"
	}
	return nil
}

func (f *fakeHosts) SetSize(_ context.Context, key *SizeKey, size string) error {
	if key != nil {
		size += " " + key.Path()
	}
	f.record("SET-SIZE " + size)
	return nil
}

func (f *fakeHosts) Resize(_ context.Context, host string) error {
	f.record("RESIZE " + host)
	if f.states[host] == "primary" {
		return errors.New("fake: resized a primary")
	}
	return nil
}

func (f *fakeHosts) env() *Env {
	return &Env{Hosts: f, Pipe: f, Replacer: f, Resizer: f,
		Converger: ConvergeFunc(func(_ context.Context, host string) error { f.record("CONVERGE " + host); return nil }),
		HTTPGet:   func(context.Context, string, string) (int, error) { return 200, nil },
		Sleep:     func(context.Context, time.Duration) {}, Interval: time.Millisecond,
		Changed: func(_ context.Context, host string) error { f.record("RELOAD " + host); return nil }}
}

// index is the position of the first log line with prefix, -1 if none.
func (f *fakeHosts) index(prefix string) int {
	for i, l := range f.log {
		if strings.HasPrefix(l, prefix) {
			return i
		}
	}
	return -1
}

func TestExecuteAppReplaceMovesVIPFirst(t *testing.T) {
	f := newFake()
	inv := testInventory(t)
	p, err := PlanReplace(inv, "shop-2", Observe(context.Background(), f, inv, "shop-2"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := Execute(context.Background(), f.env(), p, "")
	if err != nil {
		t.Fatalf("%v\n%s", err, strings.Join(f.log, "\n"))
	}
	if !res.OK || f.vip != "shop-1" || f.fenced["shop-2"] {
		t.Errorf("ok %v, vip on %s, shop-2 fenced %v", res.OK, f.vip, f.fenced["shop-2"])
	}
	fence, repl := f.index("shop-2: sudo "+shq.Join(hostcmd.FenceApp("shop")...)), f.index("REPLACE shop-2")
	if fence < 0 || repl < fence {
		t.Errorf("fence at %d, replace at %d: the VIP must move before the replacement\n%s", fence, repl, strings.Join(f.log, "\n"))
	}
	if conv := f.index("CONVERGE shop-2"); conv < repl {
		t.Errorf("converge at %d before replace at %d", conv, repl)
	}
}

func TestExecuteDBPrimarySwitchesOverFirst(t *testing.T) {
	f := newFake()
	inv := testInventory(t)
	p, err := PlanReplace(inv, "db-1", Observe(context.Background(), f, inv, "db-1"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := Execute(context.Background(), f.env(), p, "")
	if err != nil {
		t.Fatalf("%v\n%s", err, strings.Join(f.log, "\n"))
	}
	if f.primary != "db-2" || f.states["db-1"] != "secondary" {
		t.Errorf("primary %s, db-1 %s", f.primary, f.states["db-1"])
	}
	sw, repl := f.index("db-monitor: sudo runuser -u postgres -- psql -X -q -t -A -v ON_ERROR_STOP=1 -d pg_auto_failover -c 'SELECT pgautofailover.perform_failover"), f.index("REPLACE db-1")
	if sw < 0 || repl < sw {
		t.Errorf("switchover at %d, replace at %d", sw, repl)
	}
	if i := f.index("RELOAD db-1"); i < f.index("REPLACE db-1") || i > f.index("db-1: systemctl is-active cloud-final") {
		t.Errorf("the inventory was not reloaded between the replacement and the boot wait\n%s", strings.Join(f.log, "\n"))
	}
	if res.Facts["volume/db-1"] != "uuid-1" {
		t.Errorf("facts %v", res.Facts)
	}
}

func TestExecuteRefusesAReformattedVolume(t *testing.T) {
	f := newFake()
	f.reformat = true
	inv := testInventory(t)
	p, err := PlanReplace(inv, "db-2", Observe(context.Background(), f, inv, "db-2"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Execute(context.Background(), f.env(), p, "")
	if err == nil || !strings.Contains(err.Error(), `step volume-kept/db-2: filesystem "uuid-new" mounted, expected "uuid-2"`) {
		t.Fatalf("err = %v", err)
	}
	if i := f.index("CONVERGE db-2"); i >= 0 {
		t.Errorf("converged a node whose volume changed")
	}
}

func TestExecuteStopsAtAFailedSwitchoverBeforeReplacing(t *testing.T) {
	f := newFake()
	f.switchoverFails = true
	inv := testInventory(t)
	p, err := PlanReplace(inv, "db-1", Observe(context.Background(), f, inv, "db-1"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := Execute(context.Background(), f.env(), p, "")
	if err == nil || !strings.Contains(err.Error(), "--from switchover/db-1") {
		t.Fatalf("err = %v", err)
	}
	if f.index("REPLACE") >= 0 || res.OK {
		t.Errorf("replaced after a failed switchover")
	}
}

func TestExecuteDeadAppServerIsSkippedNotFenced(t *testing.T) {
	f := newFake()
	f.down["shop-2"] = true
	f.vip = "shop-1" // keepalived moved it when shop-2 died
	inv := testInventory(t)
	p, err := PlanReplace(inv, "shop-2", Observe(context.Background(), f, inv, "shop-2"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := Execute(context.Background(), f.env(), p, "")
	if err != nil {
		t.Fatalf("%v\n%s", err, strings.Join(f.log, "\n"))
	}
	if res.Steps[1].ID != "fence/shop-2" || res.Steps[1].Status != "skipped" {
		t.Errorf("fence step %+v", res.Steps[1])
	}
}

func TestExecuteNewAppServerGetsThePeersRelease(t *testing.T) {
	f := newFake()
	f.noRelease = map[string]bool{"shop-2": true}
	f.current["shop-2"] = "" // the replacement brings an empty server
	inv := testInventory(t)
	p, err := PlanReplace(inv, "shop-2", Observe(context.Background(), f, inv, "shop-2"))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	env := f.env()
	env.Out = &out
	f.current["shop-2"] = ""
	res, err := Execute(context.Background(), env, p, "")
	if err != nil {
		t.Fatalf("%v\n%s", err, strings.Join(f.log, "\n"))
	}
	conv, stream, recv, start := f.index("CONVERGE shop-2"), f.index("shop-1: STREAM"), f.index("shop-2: RECEIVE"), f.index("shop-2: sudo systemctl start")
	if !(conv >= 0 && conv < stream && stream < start && recv < start) {
		t.Errorf("converge %d, stream from shop-1 %d, receive on shop-2 %d, start %d: want the copy after converge, before the start\n%s",
			conv, stream, recv, start, strings.Join(f.log, "\n"))
	}
	if f.streamed["shop-2"] != 64<<10 || f.current["shop-2"] != "v7" {
		t.Errorf("shop-2 read %d bytes, runs %q; want all 65536 bytes and v7", f.streamed["shop-2"], f.current["shop-2"])
	}
	if !strings.Contains(out.String(), "copying v7 from shop-1 to shop-2: 12 entries, 4.0 KiB in files") || !strings.Contains(res.Steps[slices.IndexFunc(res.Steps, func(r StepResult) bool { return r.ID == "copy-release/shop-2" })].Note, "manifest "+digestV7+" equal on both") {
		t.Errorf("output:\n%s\nsteps %+v", out.String(), res.Steps)
	}
}

func TestExecuteFrom(t *testing.T) {
	f := newFake()
	inv := testInventory(t)
	p, err := PlanReplace(inv, "db-2", Observe(context.Background(), f, inv, "db-2"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Execute(context.Background(), f.env(), p, "nope"); err == nil || !strings.Contains(err.Error(), `--from "nope": not a step of this plan`) {
		t.Fatalf("err = %v", err)
	}
	res, err := Execute(context.Background(), f.env(), p, "boot/db-2")
	if err != nil {
		t.Fatal(err)
	}
	if f.index("REPLACE") >= 0 {
		t.Errorf("--from after the replacement replaced again")
	}
	if res.Steps[0].Status != "not-run" {
		t.Errorf("first step %+v", res.Steps[0])
	}
}

func TestExecuteResizeNeverResizesThePrimary(t *testing.T) {
	f := newFake()
	inv := cloudInventory(t)
	p, err := PlanResize(inv, "cpx42", Observe(context.Background(), f, inv, ""))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Execute(context.Background(), f.env(), p, ""); err != nil {
		t.Fatalf("%v\n%s", err, strings.Join(f.log, "\n"))
	}
	set, r2, r1 := f.index("SET-SIZE cpx42"), f.index("RESIZE db-2"), f.index("RESIZE db-1")
	if !(set >= 0 && set < r2 && r2 < r1) {
		t.Errorf("set-size %d, resize db-2 %d, resize db-1 %d: want set, the secondary, then the old primary", set, r2, r1)
	}
	if f.primary != "db-2" {
		t.Errorf("primary %s after the resize", f.primary)
	}
}

func TestExecuteWaitTimesOut(t *testing.T) {
	f := newFake()
	now := time.Unix(0, 0)
	env := f.env()
	env.Now = func() time.Time { return now }
	env.Sleep = func(context.Context, time.Duration) { now = now.Add(time.Minute) }
	p := &Plan{Steps: []Step{{ID: "rejoin/db-2", Kind: KindWait, Host: "db-monitor", Argv: hostcmd.MonitorPsql(hostcmd.NodeStatesSQL),
		Want: &Want{Node: "db-2", States: []string{"primary"}}, Timeout: 5 * time.Minute}}}
	_, err := Execute(context.Background(), env, p, "")
	if err == nil || !strings.Contains(err.Error(), "db-2 is secondary, waiting for primary") || !strings.Contains(err.Error(), "not done after 5m0s") {
		t.Fatalf("err = %v", err)
	}
}

func TestExecuteStandbyAppServerGetsThePrimarySitesRelease(t *testing.T) {
	f := newFake()
	f.current["shop-standby"] = ""
	inv := testInventory(t)
	p, err := PlanReplace(inv, "shop-standby", Observe(context.Background(), f, inv, "shop-standby"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Execute(context.Background(), f.env(), p, ""); err != nil {
		t.Fatalf("%v\n%s", err, strings.Join(f.log, "\n"))
	}
	if f.current["shop-standby"] != "v7" || f.index("shop-1: STREAM") < f.index("CONVERGE shop-standby") {
		t.Errorf("standby runs %q\n%s", f.current["shop-standby"], strings.Join(f.log, "\n"))
	}
	if f.index("shop-standby: sudo systemctl start") >= 0 {
		t.Errorf("started the app on the standby site")
	}
}
