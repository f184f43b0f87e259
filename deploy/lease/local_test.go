package lease_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/belay-sh/belay/deploy/lease"
)

// TestLocalLockProvesDeath: a holder is gone only if its lock file is on this
// machine and nobody holds it; hostname and PID play no part.
func TestLocalLockProvesDeath(t *testing.T) {
	dir := t.TempDir()
	ll := &lease.LocalLock{Dir: dir}
	const alive, dead, foreign = "1111111111111111", "2222222222222222", "3333333333333333"

	release, err := ll.Hold(alive)
	if err != nil {
		t.Fatal(err)
	}
	if ll.Gone(alive) {
		t.Error("a holder that holds its lock (this process) was judged gone")
	}

	// A holder process that is killed: the kernel drops its flock.
	f := filepath.Join(dir, "lease-"+dead+".lock")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	p := exec.Command("flock", "-o", f, "sleep", "30") // -o: only flock itself holds the lock
	if err := p.Start(); err != nil {
		t.Skipf("flock(1): %v", err)
	}
	for i := 0; i < 100 && ll.Gone(dead); i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if ll.Gone(dead) {
		t.Fatal("a running holder process was judged gone")
	}
	p.Process.Kill()
	p.Wait()
	if !ll.Gone(dead) {
		t.Error("a killed holder is not judged gone")
	}
	ll.Forget(dead)
	if _, err := os.Stat(f); !os.IsNotExist(err) {
		t.Error("Forget left the dead holder's file")
	}

	if ll.Gone(foreign) {
		t.Error("a holder with no lock file here (another machine or container) was judged gone")
	}
	for _, bad := range []string{"../../etc/passwd", "", "ABCDEF0123456789", "tok-a"} {
		if ll.Gone(bad) {
			t.Errorf("token %q judged gone", bad)
		}
		if _, err := ll.Hold(bad); err == nil {
			t.Errorf("Hold(%q) accepted a token that is not hex", bad)
		}
	}
	release()
	if _, err := os.Stat(filepath.Join(dir, "lease-"+alive+".lock")); !os.IsNotExist(err) {
		t.Error("release left the lock file behind")
	}
}
