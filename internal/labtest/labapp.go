package labtest

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// LabAppPackage is the lab app's import path (deploy/testdata/labapp).
const LabAppPackage = "github.com/belay-sh/belay/deploy/testdata/labapp"

// LabAppTarball builds a release of the lab app with build id id: a tar
// holding start (the static binary) and belay-move, a symlink to it (the
// shop move hook; deploy/release allows a symlink that resolves inside the
// release). With DATABASE_URL set, as on a cell, the app keeps each shop's
// data in the cell's database and serves it at /data.
func LabAppTarball(t testing.TB, id string) string {
	t.Helper()
	dir := t.TempDir()
	path, err := Build(dir, "labapp", LabAppPackage, "-X main.buildID="+id, "CGO_ENABLED=0")
	if err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	now := time.Now()
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "start", Mode: 0o755, Size: int64(len(bin)), ModTime: now}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(bin); err != nil {
		t.Fatal(err)
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "belay-move", Linkname: "start", Mode: 0o777, ModTime: now}); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "labapp-"+id+".tar")
	if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
