package plan_test

import (
	"strings"
	"testing"
	"time"

	"github.com/belay-sh/belay/deploy/plan"
	"github.com/belay-sh/belay/internal/shq/shqtest"
)

// stubs replace every command a plan step runs on a host with a shell
// function, so the rendered scripts run here for real (parsing, quoting,
// expansions, failure branches) without touching the system: curl always
// fails, so the health steps take their failure branch.
const stubs = `curl() { echo 000; return 7; }
sudo() { :; }
systemctl() { :; }
ln() { :; }
mv() { :; }
readlink() { :; }
rm() { :; }
cat() { :; }
cp() { :; }
stat() { echo 0; }
test() { return 0; }
`

// TestHostileHealthPathInert bypasses validation (a hand-made inventory with
// a hostile healthPath) and runs every step of a plan: no value runs as
// code, and the failure branch reports the path verbatim.
func TestHostileHealthPathInert(t *testing.T) {
	n := 0
	for _, v := range shqtest.Values {
		i := inv(t)
		i.Apps[0].HealthPath = "/up" + v.S
		p, err := plan.Deploy(plan.Input{Inventory: i, App: "shop", Release: "v42", Artifact: artifact,
			Strategy: plan.Strategy{HealthTimeout: time.Millisecond, HealthMaxInterval: time.Second}})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range p.Steps {
			if s.Stage != plan.Health {
				continue
			}
			out := shqtest.Run(t, stubs+"( "+s.Command+"\n) 2>&1 || true")
			if want := "health check http://127.0.0.1:"; !strings.Contains(out, want) || !strings.Contains(out, "/up"+v.S+" failed") {
				t.Errorf("%s (%s): failure branch printed %q, want the URL verbatim", s.ID, v.Name, out)
			}
			n++
		}
	}
	t.Logf("%d health steps with hostile paths ran inert", n)
}
