package roles

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// update rewrites the golden files: go test ./roles -run Golden -update
var update = flag.Bool("update", false, "rewrite roles/testdata/*.golden from the current renderer")

// checkGolden compares got with testdata/<name>.golden (or rewrites it with -update).
func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatalf("update %s: %v", path, err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s (run with -update to create it): %v", path, err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the rendered output; review the change and rerun with -update\n%s", path, firstDiff(want, got))
	}
}

// firstDiff shows the first differing line, enough to find the change.
func firstDiff(want, got []byte) string {
	w, g := bytes.Split(want, []byte("\n")), bytes.Split(got, []byte("\n"))
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl []byte
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if !bytes.Equal(wl, gl) {
			return "line " + strconv.Itoa(i+1) + ":\n  golden:   " + string(wl) + "\n  rendered: " + string(gl)
		}
	}
	return "(same lines, different bytes)"
}
