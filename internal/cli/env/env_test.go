package env

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/belay-sh/belay/internal/cli"
	"github.com/belay-sh/belay/inventory"
)

const (
	testInventory = "../../../deploy/plan/testdata/inventory.json"
	testSeed      = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
)

type harness struct {
	out, errOut bytes.Buffer
	dir         string
	env         map[string]string
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	return &harness{dir: t.TempDir(), env: map[string]string{"BELAY_HOST_KEY_SEED": testSeed}}
}

func (h *harness) opts(app string, args ...string) *Options {
	h.out.Reset()
	h.errOut.Reset()
	return &Options{IO: cli.IO{Out: &h.out, ErrOut: &h.errOut}, Inventory: inventory.Load, InventoryRef: testInventory,
		Getenv: func(k string) string { return h.env[k] }, Source: Source{Dir: h.dir}, App: app, Args: args}
}

func TestSetListUnset(t *testing.T) {
	h := newHarness(t)
	if err := RunSet(h.opts("shop", "LOG_LEVEL=info")); err != nil {
		t.Fatal(err)
	}
	o := h.opts("shop", "STRIPE_KEY=sk_live_123")
	o.Secret = true
	if err := RunSet(o); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(h.errOut.String(), "--env-only") || strings.Contains(h.errOut.String(), "sk_live") {
		t.Fatalf("set output: %s", h.errOut.String())
	}
	if err := RunList(h.opts("shop")); err != nil {
		t.Fatal(err)
	}
	if got, want := h.out.String(), "LOG_LEVEL=info\nSTRIPE_KEY=********  (secret)\n"; got != want {
		t.Fatalf("list:\n%s\nwant:\n%s", got, want)
	}
	o = h.opts("shop")
	o.Reveal = true
	if err := RunList(o); err != nil || !strings.Contains(h.out.String(), "STRIPE_KEY=sk_live_123") {
		t.Fatalf("list --reveal: %v\n%s", err, h.out.String())
	}
	if err := RunUnset(h.opts("shop", "LOG_LEVEL")); err != nil {
		t.Fatal(err)
	}
	if err := RunList(h.opts("shop")); err != nil || strings.Contains(h.out.String(), "LOG_LEVEL") {
		t.Fatalf("after unset: %v\n%s", err, h.out.String())
	}
	raw, err := os.ReadFile(filepath.Join(h.dir, "test", "shop.json"))
	if err != nil || strings.Contains(string(raw), "sk_live") || strings.Contains(string(raw), "info") {
		t.Fatalf("stored file: %v\n%s", err, raw)
	}
}

func TestBadInputChangesNothing(t *testing.T) {
	h := newHarness(t)
	if err := RunSet(h.opts("shop", "A=1")); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(h.dir, "test", "shop.json")
	before, _ := os.ReadFile(p)
	for _, tc := range []struct {
		run  func(*Options) error
		app  string
		args []string
		want string
	}{
		{RunSet, "shop", []string{"B=2", "bad=3"}, `key "bad"`},
		{RunSet, "shop", []string{"DATABASE_URL=x"}, "DATABASE_URL"},
		{RunSet, "blog", []string{"B=2"}, `app "blog": not in the inventory`},
		{RunUnset, "shop", []string{"A", "MISSING"}, "key MISSING: not set"},
		{RunUnset, "shop", []string{"BELAY_X"}, "BELAY_* is reserved"},
	} {
		err := tc.run(h.opts(tc.app, tc.args...))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %v: err %v, want %q", tc.app, tc.args, err, tc.want)
		}
		if after, _ := os.ReadFile(p); !bytes.Equal(before, after) {
			t.Fatalf("%v changed the file", tc.args)
		}
	}
	// The wrong seed neither reads nor overwrites.
	h.env["BELAY_HOST_KEY_SEED"] = strings.Repeat("9", 64)
	if err := RunSet(h.opts("shop", "B=2")); err == nil || !strings.Contains(err.Error(), "wrong belay:hostKeySeed") {
		t.Fatalf("wrong seed: %v", err)
	}
	if after, _ := os.ReadFile(p); !bytes.Equal(before, after) {
		t.Fatal("a wrong seed changed the file")
	}
	delete(h.env, "BELAY_HOST_KEY_SEED")
	if err := RunList(h.opts("shop")); err == nil || !strings.Contains(err.Error(), "--seed-file or set BELAY_HOST_KEY_SEED") {
		t.Fatalf("no seed: %v", err)
	}
}

// Without a seed and without an env file, set and unset write nothing, and
// each says what is wrong: set needs the seed to seal, unset of a key that is
// not set fails on the key (no seed is needed to find that out).
func TestNoSeedNoFile(t *testing.T) {
	h := newHarness(t)
	delete(h.env, "BELAY_HOST_KEY_SEED")
	for _, tc := range []struct {
		run  func(*Options) error
		args []string
		want string
	}{
		{RunSet, []string{"A=1"}, "--seed-file or set BELAY_HOST_KEY_SEED"},
		{RunUnset, []string{"A"}, "key A: not set"},
	} {
		err := tc.run(h.opts("shop", tc.args...))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err %v, want %q", tc.args, err, tc.want)
		}
		if _, err := os.Stat(filepath.Join(h.dir, "test", "shop.json")); !os.IsNotExist(err) {
			t.Fatalf("%v wrote the env file (%v)", tc.args, err)
		}
	}
}

// Setting what is already set leaves the file (and its serial) alone.
func TestSetUnchanged(t *testing.T) {
	h := newHarness(t)
	if err := RunSet(h.opts("shop", "A=1")); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(h.dir, "test", "shop.json")
	before, _ := os.ReadFile(p)
	if err := RunSet(h.opts("shop", "A=1")); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(h.errOut.String(), "unchanged (serial 1)") {
		t.Fatalf("output: %s", h.errOut.String())
	}
	if after, _ := os.ReadFile(p); !bytes.Equal(before, after) {
		t.Fatal("an unchanged set rewrote the file")
	}
}
