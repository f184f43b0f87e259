package replace

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/belay-sh/belay/hostcmd"
	"github.com/belay-sh/belay/hostrelease"
	"github.com/belay-sh/belay/internal/cli"
	"github.com/belay-sh/belay/internal/opsenv"
	"github.com/belay-sh/belay/internal/shq"
	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/remote"
	"github.com/belay-sh/belay/replace"
)

// fakeConn is a healthy app pair whose VIP is on vip, and a lease log.
type fakeConn struct {
	mu      sync.Mutex
	log     []string
	vip     string
	holdErr error
}

func (c *fakeConn) add(s string) { c.mu.Lock(); c.log = append(c.log, s); c.mu.Unlock() }

func (c *fakeConn) Run(_ context.Context, host, cmd string) ([]byte, error) {
	c.add(host + ": " + cmd)
	switch {
	case cmd == replace.VIPProbeCmd:
		if host == c.vip {
			return []byte("inet 10.213.0.100/32\n"), nil
		}
		return []byte("inet 10.213.0.21/25\n"), nil
	case cmd == replace.BootDoneCmd:
		return []byte("active\n"), nil
	case cmd == replace.ActiveCmd("shop"):
		return []byte("current=v7\ncanary=\njournal=\n"), nil
	case cmd == shop.ManifestCommand(""):
		return []byte("current=v7\npresent=yes\nsum=" + strings.Repeat("a", 64) + "\nentries=3\nbytes=10\ndigest=" + strings.Repeat("d", 64) + "\n"), nil
	case cmd == shop.ManifestCommand("v7"):
		return []byte("current=\npresent=no\n"), nil // the new server
	}
	return nil, nil // health, release, true
}

var shop = hostrelease.Layout{App: "shop"}

// Stream and RunInput make fakeConn a replace.Piper: the release copy.
func (c *fakeConn) Stream(_ context.Context, host, cmd string, stdout, _ io.Writer) error {
	if cmd != shop.SendCommand("v7") {
		return errors.New("fake: unexpected stream command")
	}
	c.add("SEND " + host)
	_, err := io.WriteString(stdout, "tar bytes")
	return err
}

func (c *fakeConn) RunInput(_ context.Context, host, _ string, stdin io.Reader) ([]byte, error) {
	b, err := io.ReadAll(stdin)
	c.add(fmt.Sprintf("RECEIVE %s %d bytes", host, len(b)))
	return nil, err
}

func (c *fakeConn) RunRoot(_ context.Context, host string, argv ...string) ([]byte, error) {
	c.add(host + ": sudo " + shq.Join(argv...))
	if shq.Join(argv...) == shq.Join(hostcmd.FenceApp("shop")...) && c.vip == host {
		c.vip = map[string]string{"shop-1": "shop-2", "shop-2": "shop-1"}[host]
	}
	return nil, nil
}

func (c *fakeConn) DialTCP(context.Context, string, string) (net.Conn, error) {
	return nil, errors.New("no")
}
func (c *fakeConn) Forget(string)         {}
func (c *fakeConn) Runner() remote.Runner { return c }
func (c *fakeConn) Plain() remote.Runner  { return c }
func (c *fakeConn) Lab() bool             { return true }
func (c *fakeConn) Close()                {}
func (c *fakeConn) SetInventory(inv *inventory.Inventory) {
	c.add("INVENTORY " + inv.Stack)
}

func (c *fakeConn) Hold(ctx context.Context, apps []string, action string, _ io.Writer) (context.Context, func(), error) {
	if c.holdErr != nil {
		return nil, nil, c.holdErr
	}
	c.add("HOLD " + strings.Join(apps, ",") + " for " + action)
	return ctx, func() { c.add("RELEASE") }, nil
}

func (c *fakeConn) Replace(_ context.Context, host string) error {
	c.add("REPLACE " + host)
	return nil
}

func setup(t *testing.T, args ...string) (*fakeConn, *Options, *bytes.Buffer, func() error) {
	t.Helper()
	var out, errb bytes.Buffer
	f := &cli.Factory{IO: cli.IO{Out: &out, ErrOut: &errb}, Getenv: func(string) string { return "" },
		Inventory: func(string) (*inventory.Inventory, error) {
			return inventory.Load("../../../replace/testdata/inventory.json")
		}}
	c := &fakeConn{vip: "shop-2"}
	var opts *Options
	cmd := NewCmdReplace(f, func(_ context.Context, o *Options) error { opts = o; return nil })
	cmd.SetArgs(args)
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	opts.Connect = func(*inventory.Inventory, opsenv.Flags, func(string) string) (Conn, error) { return c, nil }
	opts.Wire = func(*Options, *inventory.Inventory, Conn, []string) (replace.Replacer, replace.Resizer, replace.Converger, error) {
		c.add("WIRE")
		return c, nil, replace.ConvergeFunc(func(_ context.Context, h string) error { c.add("CONVERGE " + h); return nil }), nil
	}
	opts.HTTPGet = func(_ context.Context, url, host string) (int, error) {
		c.add("GET " + url + " " + host)
		return 200, nil
	}
	return c, opts, &out, func() error { return RunReplace(context.Background(), opts) }
}

func (c *fakeConn) index(prefix string) int {
	for i, l := range c.log {
		if strings.HasPrefix(l, prefix) {
			return i
		}
	}
	return -1
}

func TestReplaceWithoutYesChangesNothing(t *testing.T) {
	for _, args := range [][]string{{"shop-2"}, {"shop-2", "--yes", "--dry-run"}} {
		c, _, out, run := setup(t, args...)
		if err := run(); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), "[fence/shop-2]") || !strings.Contains(out.String(), "[replace/shop-2]") {
			t.Errorf("plan not printed:\n%s", out)
		}
		for _, l := range c.log {
			if strings.HasPrefix(l, "HOLD") || strings.Contains(l, "sudo") || l == "WIRE" {
				t.Errorf("%v: changed something: %s", args, l)
			}
		}
	}
}

func TestReplaceRefusals(t *testing.T) {
	t.Run("unknown host: refused before connecting", func(t *testing.T) {
		_, o, _, run := setup(t, "shop-9", "--yes")
		o.Connect = func(*inventory.Inventory, opsenv.Flags, func(string) string) (Conn, error) {
			t.Fatal("connected")
			return nil, nil
		}
		if err := run(); !errors.Is(err, replace.ErrRefused) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("a cloud flag on the lab", func(t *testing.T) {
		c, _, _, run := setup(t, "shop-2", "--yes", "--pulumi-dir", "/src/stack")
		if err := run(); err == nil || !strings.Contains(err.Error(), "--pulumi-dir: the target is the lab") {
			t.Fatalf("err = %v", err)
		}
		if c.index("HOLD") >= 0 {
			t.Errorf("went on: %v", c.log)
		}
	})
	t.Run("lease held: nothing changed", func(t *testing.T) {
		c, _, _, run := setup(t, "shop-2", "--yes")
		c.holdErr = errors.New("lease of app shop held by deploy v42 (alice)")
		err := run()
		if err == nil || !strings.Contains(err.Error(), "replace shop-2 refused, nothing changed: lease of app shop held by deploy v42") {
			t.Fatalf("err = %v", err)
		}
		if c.index("WIRE") >= 0 || c.index("REPLACE") >= 0 {
			t.Errorf("went on: %v", c.log)
		}
	})
}

func TestReplaceHoldsTheAppLease(t *testing.T) {
	c, _, out, run := setup(t, "shop-2", "--yes")
	if err := run(); err != nil {
		t.Fatalf("%v\n%s", err, strings.Join(c.log, "\n"))
	}
	hold, repl, rel := c.index("HOLD shop for replace shop-2"), c.index("REPLACE shop-2"), c.index("RELEASE")
	if !(hold >= 0 && hold < repl && repl < rel) {
		t.Errorf("hold %d, replace %d, release %d\n%s", hold, repl, rel, strings.Join(c.log, "\n"))
	}
	if i := c.index("INVENTORY lab"); i < repl {
		t.Errorf("the inventory was not reloaded after the replacement (at %d)", i)
	}
	if recv, start := c.index("RECEIVE shop-2 9 bytes"), c.index("shop-2: sudo systemctl start"); !(c.index("SEND shop-1") >= 0 && recv > c.index("CONVERGE shop-2") && recv < start) {
		t.Errorf("the release copy (receive at %d) must come after converge and before the start (%d)\n%s", recv, start, strings.Join(c.log, "\n"))
	}
	if c.index("GET http://10.213.0.100/ shop.lab.belay.test") < 0 {
		t.Errorf("the app was not checked through its VIP")
	}
	if !strings.Contains(out.String(), "replace shop-2: done") {
		t.Errorf("output %q", out)
	}
}

func TestReplaceLeaseHostReleasesBeforeTheReplacement(t *testing.T) {
	c, _, _, run := setup(t, "shop-1", "--yes")
	c.vip = "shop-1"
	if err := run(); err != nil {
		t.Fatalf("%v\n%s", err, strings.Join(c.log, "\n"))
	}
	fence, rel, repl := c.index("shop-1: sudo "+shq.Join(hostcmd.FenceApp("shop")...)), c.index("RELEASE"), c.index("REPLACE shop-1")
	if !(fence >= 0 && fence < rel && rel < repl) {
		t.Errorf("fence %d, release %d, replace %d: the lease must cover the move and end before the lease host goes\n%s", fence, rel, repl, strings.Join(c.log, "\n"))
	}
	if c.index("CONVERGE shop-1") < repl {
		t.Errorf("converge before the replacement")
	}
	if c.index("SEND shop-2") < rel || c.index("RECEIVE shop-1 9 bytes") < rel {
		t.Errorf("the release was not copied from shop-2 to the new shop-1\n%s", strings.Join(c.log, "\n"))
	}
}

func TestResizeFlags(t *testing.T) {
	f := &cli.Factory{IO: cli.IO{Out: io.Discard, ErrOut: io.Discard}, Getenv: func(string) string { return "" }}
	cmd := NewCmdResize(f, func(context.Context, *Options) error { return nil })
	cmd.SetArgs(nil)
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), `"size" not set`) {
		t.Fatalf("err = %v", err)
	}
}
