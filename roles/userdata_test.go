package roles

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestScrubUserData runs the last boot step on a scratch root laid out like
// cloud-init's: the plain copies are gone, obj.pkl stays (a reboot needs
// it) but root-only, /var/lib/cloud is 0700, the logs 0640.
func TestScrubUserData(t *testing.T) {
	root := t.TempDir()
	inst := filepath.Join(root, "var/lib/cloud/instances/i-123")
	for _, d := range []string{inst + "/scripts", root + "/var/log", root + "/var/lib/cloud/seed/nocloud"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	gone := []string{"user-data.txt", "user-data.txt.i", "cloud-config.txt", "vendor-data.txt"}
	for _, f := range append(gone, "obj.pkl", "scripts/runcmd") {
		if err := os.WriteFile(filepath.Join(inst, f), []byte("secret"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"var/log/cloud-init.log", "var/log/cloud-init-output.log", "var/lib/cloud/seed/nocloud/user-data"} {
		os.WriteFile(filepath.Join(root, f), []byte("x"), 0o644)
	}
	argv := scrubUserData()
	argv[len(argv)-1] = root
	if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	for _, f := range gone {
		if _, err := os.Stat(filepath.Join(inst, f)); err == nil {
			t.Errorf("%s still there", f)
		}
	}
	mode := func(p string) os.FileMode {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Mode().Perm()
	}
	for p, want := range map[string]os.FileMode{
		root + "/var/lib/cloud":                 0o700,
		inst:                                    0o700,
		inst + "/obj.pkl":                       0o600,
		inst + "/scripts/runcmd":                0o600,
		root + "/var/log/cloud-init.log":        0o640,
		root + "/var/log/cloud-init-output.log": 0o640,
	} {
		if got := mode(p); got != want {
			t.Errorf("%s: mode %o, want %o", strings.TrimPrefix(p, root), got, want)
		}
	}
	// Idempotent (cloud-init may run the step again after a re-provision).
	if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("second run: %v: %s", err, out)
	}
}

// TestScrubIsTheLastStepBeforeTheMarker: every role's user data ends with
// the scrub, then the cloud-init-done marker.
func TestScrubIsTheLastStepBeforeTheMarker(t *testing.T) {
	c := &CloudConfig{}
	finishCommon(&Spec{Stack: "s", Hostname: "h"}, c)
	if n := len(c.Runcmd); n < 2 || strings.Join(c.Runcmd[n-2], " ") != strings.Join(scrubUserData(), " ") {
		t.Fatalf("runcmd %v: want the scrub before the marker", c.Runcmd)
	}
}
