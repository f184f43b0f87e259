package lease_test

import (
	"strings"
	"testing"

	"github.com/belay-sh/belay/deploy/lease"
	"github.com/belay-sh/belay/hostrelease"
	"github.com/belay-sh/belay/internal/shq/shqtest"
)

// TestFenceHostileAppNames: every hostile value in the app name (so in every
// path the fence commands use) stays inert; the fence is written where the
// layout says, lets its own run's step through and refuses another token.
func TestFenceHostileAppNames(t *testing.T) {
	for _, v := range shqtest.Values {
		l := hostrelease.Layout{App: "shop" + v.S, Base: t.TempDir()}
		if _, stderr, err := shqtest.RunInput(t, lease.WriteFenceCommand(l, "tok-a"), nil); err != nil {
			t.Errorf("%s: write fence: %v: %s", v.Name, err, stderr)
			continue
		}
		own := &lease.Fence{Layout: l, Token: "tok-a", LeaseHost: "elsewhere"}
		if out, stderr, err := shqtest.RunInput(t, own.Wrap("shop-2", "echo ran"), nil); err != nil || strings.TrimSpace(out) != "ran" {
			t.Errorf("%s: own step: %q %v %s", v.Name, out, err, stderr)
		}
		other := &lease.Fence{Layout: l, Token: "tok-b", LeaseHost: "elsewhere"}
		if out, _, err := shqtest.RunInput(t, other.Wrap("shop-2", "echo ran"), nil); err == nil || strings.Contains(out, "ran") {
			t.Errorf("%s: another run's step was not refused: %q", v.Name, out)
		}
		if out, _, _ := shqtest.RunInput(t, lease.ReadFenceCommand(l), nil); strings.TrimSpace(out) != "tok-a" {
			t.Errorf("%s: read fence: %q", v.Name, out)
		}
	}
}
