package failover

import (
	"strconv"
	"strings"
	"testing"

	"github.com/belay-sh/belay/internal/shq"
	"github.com/belay-sh/belay/internal/shq/shqtest"
)

// hostStubs turn the commands a site switch runs into shell functions that
// print their arguments, so each step's command line runs here for real.
const hostStubs = `sudo() { printf '%s\n' "$*"; cat >/dev/null; }
curl() { printf '%s\n' "$*"; }
test() { printf '%s\n' "$*"; }
`

// argvStub prints sudo's arguments NUL-separated.
const argvStub = "sudo() { printf '%s\\000' \"$@\"; }\n"

// TestHostileValuesInert bypasses inventory validation (hostile app name and
// health path set directly) and runs every command of both plans with sh -c:
// none runs anything but the stubbed command.
func TestHostileValuesInert(t *testing.T) {
	n := 0
	for _, v := range shqtest.Values {
		for _, field := range []string{"name", "healthPath", "cells name", "cells healthPath"} {
			inv := testInventory(t)
			if c, ok := strings.CutPrefix(field, "cells "); ok {
				inv, field = cellsInventory(t, false), c
			}
			a := &inv.Apps[0]
			if field == "name" {
				a.Name += v.S
			} else {
				a.HealthPath += v.S
			}
			for _, to := range []Direction{ToStandby, ToPrimary} {
				p, err := PlanSite(inv, to)
				if err != nil {
					t.Fatal(err)
				}
				for _, s := range p.Steps {
					hostile := v.S != "" && (strings.Contains(strings.Join(s.Commands, "\n"), v.S) || strings.Contains(strings.Join(s.Argv, "\x00"), v.S))
					if !hostile {
						continue // no hostile value in this step
					}
					if len(s.Argv) > 0 {
						// Root steps go out as remote.SudoCommand: sudo -n and argv joined.
						out := shqtest.Run(t, argvStub+"sudo -n "+shq.Join(s.Argv...))
						if want := strings.Join(append([]string{"-n"}, s.Argv...), "\x00") + "\x00"; out != want {
							t.Errorf("%s (%s): sudo got %q, want %q", s.ID, v.Name, out, want)
						}
						n++
						continue
					}
					for _, c := range s.Commands {
						shqtest.Run(t, hostStubs+c)
						n++
					}
				}
			}
		}
	}
	t.Logf("%d failover commands with hostile values ran inert", n)
}

func TestHealthCommandHostilePath(t *testing.T) {
	inv := testInventory(t)
	a := inv.Apps[0]
	a.HealthPath = "/up?a=1&b=2"
	out := shqtest.Run(t, hostStubs+HealthCommand(a))
	if want := "-fsS -m 2 -o /dev/null http://127.0.0.1:" + strconv.Itoa(a.Port) + "/up?a=1&b=2\n"; out != want {
		t.Errorf("curl got %q, want %q (one URL argument, no background job)", out, want)
	}
}

// TestRouterStatusCommandHostileApp: the router check's command line gives
// sudo exactly the helper's argv (roles.ShopDBCommand) and the request on
// stdin, whatever the app name holds.
func TestRouterStatusCommandHostileApp(t *testing.T) {
	for _, v := range shqtest.Values {
		app := "shop" + v.S
		out := shqtest.Run(t, "sudo() { printf '%s\\000' \"$@\"; cat; }\n"+RouterStatusCommand(app))
		want := strings.Join([]string{"-n", "/usr/local/bin/belay", "host", "shop-db", "--app", app}, "\x00") + "\x00" + `{"op":"cells"}` + "\n"
		if out != want {
			t.Errorf("%s: got %q, want %q", v.Name, out, want)
		}
	}
}
