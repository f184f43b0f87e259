package drill

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/belay-sh/belay/internal/shq/shqtest"
)

// TestLargestFileHostileDir runs the corrupt drill's file search with every
// hostile value in the directory name (it comes from the stanza and the
// backup label pgBackRest reports): no value runs as code, and the file
// inside that exact directory is the one found.
func TestLargestFileHostileDir(t *testing.T) {
	for _, v := range shqtest.Values {
		if strings.Contains(v.S, "/") {
			continue // a different path, not an injection
		}
		base := t.TempDir()
		dir := filepath.Join(base, "d"+v.S)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(dir, "big")
		if err := os.WriteFile(f, make([]byte, 4096), 0o644); err != nil {
			t.Fatal(err)
		}
		out := shqtest.Run(t, largestFileCmd(dir))
		if size, path, ok := parseLargestFile([]byte(out)); !ok || size != "4096" || path != f {
			t.Errorf("%s: got %q, want 4096 %q", v.Name, out, f)
		}
	}
}
