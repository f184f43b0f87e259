package lab

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

func TestReservation(t *testing.T) {
	p := Paths{State: t.TempDir()}
	release, err := Reserve(p, "test")
	if err != nil {
		t.Fatal(err)
	}
	if pid, who := reservedBy(p); pid != os.Getpid() || who != "test" {
		t.Errorf("reservedBy = %d %q", pid, who)
	}
	if _, _, other := reservedByOther(p); other {
		t.Error("this process's own reservation blocks it")
	}
	release()
	if pid, _ := reservedBy(p); pid != 0 {
		t.Errorf("released reservation still names pid %d", pid)
	}

	// Another live process's reservation blocks; once it is gone it does not.
	sleeper := exec.Command("sleep", "30")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sleeper.Process.Kill() })
	if err := os.WriteFile(p.reservation(), []byte(fmt.Sprintf("%d\nother run\n", sleeper.Process.Pid)), 0o600); err != nil {
		t.Fatal(err)
	}
	if pid, who, other := reservedByOther(p); !other || pid != sleeper.Process.Pid || who != "other run" {
		t.Errorf("reservedByOther = %d %q %v", pid, who, other)
	}
	_ = sleeper.Process.Kill()
	_ = sleeper.Wait()
	if _, _, other := reservedByOther(p); other {
		t.Error("a dead process's reservation still blocks")
	}
	release, err = Reserve(p, "again")
	if err != nil {
		t.Fatalf("stale reservation not replaced: %v", err)
	}
	release()
}
