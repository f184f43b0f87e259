package labtest

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// fakeT records a Fatalf instead of stopping the test.
type fakeT struct {
	testing.TB
	failed string
}

func (f *fakeT) Helper() {}
func (f *fakeT) Fatalf(format string, a ...any) {
	f.failed = format
	panic(f)
}

func TestEventually(t *testing.T) {
	n := 0
	took := Eventually(t, time.Minute, time.Millisecond, "third call", func() error {
		if n++; n < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if n != 3 || took <= 0 {
		t.Errorf("calls %d, took %s: want 3 calls", n, took)
	}
	ft := &fakeT{TB: t}
	func() {
		defer func() { recover() }()
		Eventually(ft, 5*time.Millisecond, time.Millisecond, "never", func() error { return errors.New("still no") })
	}()
	if !strings.Contains(ft.failed, "not within") {
		t.Errorf("a condition that never holds did not fail the test (got %q)", ft.failed)
	}
}

func TestBuildReportsTheCompilerError(t *testing.T) {
	if _, err := Build(t.TempDir(), "x", "github.com/belay-sh/belay/no/such/package", ""); err == nil || !strings.Contains(err.Error(), "go build") {
		t.Errorf("Build of a missing package: %v, want the go build error", err)
	}
}
