package release_test

import (
	"archive/tar"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/belay-sh/belay/deploy/release"
	"github.com/belay-sh/belay/hostrelease"
	"github.com/belay-sh/belay/internal/shq/shqtest"
)

// TestHostileValuesInert puts every hostile value into the app name (so into
// every path) and the release id of the receive, unpack and skip commands and
// runs them with a real sh and GNU tar: no value runs as code, and the
// release lands at exactly the path the layout names. The entrances refuse
// such names (inventory.Validate, hostrelease.ValidateID); this proves the
// commands do not depend on it.
func TestHostileValuesInert(t *testing.T) {
	p := writeTar(t, true, start, ent{name: "public/index.html", typ: tar.TypeReg, body: "<h1>"})
	a, err := release.Inspect(p)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(p)
	n := 0
	for _, v := range shqtest.Values {
		// A '/' in an id is a different path (refused at the entrance), not
		// an injection: the id keeps the value without its slashes.
		id := "v" + strings.ReplaceAll(v.S, "/", "")
		l := hostrelease.Layout{App: "shop" + v.S, Base: t.TempDir()}
		for _, c := range []struct {
			name, cmd string
			stdin     []byte
		}{
			{"receive", l.ReceiveCommand(id, a.SHA256), data},
			{"unpack", l.UnpackCommand(id, a), nil},
			{"unpacked", l.Unpacked(id, a.SHA256), nil},
			{"unpack again", l.UnpackCommand(id, a), nil},
		} {
			if _, stderr, err := shqtest.RunInput(t, c.cmd, c.stdin); err != nil {
				t.Errorf("%s (%s): %v: %s", c.name, v.Name, err, stderr)
			}
			n++
		}
		if fi, err := os.Stat(filepath.Join(l.Release(id), "start")); err != nil || fi.Mode()&0o111 == 0 {
			t.Errorf("%s: start not at %q: %v", v.Name, l.Release(id), err)
		}
		// A wrong checksum is refused and reported with the value verbatim.
		bad := strings.Repeat("0", 64)
		if _, stderr, err := shqtest.RunInput(t, l.ReceiveCommand(id+"x", bad), data); err == nil || !strings.Contains(stderr, "expected "+bad) {
			t.Errorf("%s: wrong checksum: %v %q", v.Name, err, stderr)
		}
	}
	t.Logf("%d release commands with hostile app names and ids ran inert", n)
}
