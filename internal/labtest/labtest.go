// Package labtest holds what the lab tests (`-tags lab`, real machines) of
// several packages share: building this checkout's binaries, running the
// belay binary with its output in the test log, and waiting for a condition.
// Only test files import it.
package labtest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// BelayPackage is the belay command's import path.
const BelayPackage = "github.com/belay-sh/belay/cmd/belay"

// Build compiles pkg into dir/name with ldflags (may be empty) and returns
// its path; env entries are added to the build's environment (e.g.
// CGO_ENABLED=0). It takes no testing.T so a TestMain can use it.
func Build(dir, name, pkg, ldflags string, env ...string) (string, error) {
	out := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-o", out, "-ldflags", ldflags, pkg)
	cmd.Env = append(os.Environ(), env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return out, nil
}

// BuildBelay builds this checkout's belay into the test's temporary directory.
func BuildBelay(t testing.TB) string {
	t.Helper()
	bin, err := Build(t.TempDir(), "belay", BelayPackage, "")
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// Result is one run of the belay binary.
type Result struct {
	Stdout, Stderr string
	Err            error
}

// Belay runs bin with args, bounded by timeout, and logs the command line
// with what it printed (stderr first: belay's progress).
func Belay(t testing.TB, bin string, timeout time.Duration, args ...string) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	t.Logf("belay %s\n%s%s", strings.Join(args, " "), e.String(), o.String())
	return Result{Stdout: o.String(), Stderr: e.String(), Err: err}
}

// Eventually calls f every interval until it returns nil, and fails the test
// with f's last error once timeout has passed. It returns how long it took.
func Eventually(t testing.TB, timeout, interval time.Duration, what string, f func() error) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		err := f()
		if err == nil {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("%s: not within %s: %v", what, timeout, err)
		}
		time.Sleep(interval)
	}
}
