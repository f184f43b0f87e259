package lab

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A cgroup that is busy for a moment (its last process not yet reaped) must
// still be removed: the rmdir is retried until it succeeds. A plain directory
// stands in for the hierarchy; a file inside makes rmdir fail until removed.
func TestRemoveCgroupsRetriesWhileBusy(t *testing.T) {
	root := t.TempDir()
	machine := filepath.Join(root, "belay-lab", "db-2", "supervisor")
	if err := os.MkdirAll(machine, 0o755); err != nil {
		t.Fatal(err)
	}
	busy := filepath.Join(machine, "busy")
	if err := os.WriteFile(busy, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(300*time.Millisecond, func() { os.Remove(busy) })
	removeCgroupsWithin([]string{root}, 5*time.Second, func(r string) string { return filepath.Join(r, "belay-lab", "db-2") })
	if _, err := os.Stat(filepath.Join(root, "belay-lab")); !os.IsNotExist(err) {
		t.Fatalf("belay-lab still present after the busy cgroup freed up: %v", err)
	}
}

// A cgroup that stays busy is left (never forced) once the wait has passed.
func TestRemoveCgroupsGivesUpOnALiveOne(t *testing.T) {
	root := t.TempDir()
	machine := filepath.Join(root, "belay-lab", "shop-1")
	if err := os.MkdirAll(machine, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(machine, "busy"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	removeCgroupsWithin([]string{root}, 300*time.Millisecond, func(r string) string { return filepath.Join(r, "belay-lab") })
	if _, err := os.Stat(machine); err != nil {
		t.Fatalf("a busy cgroup must be left for Leftovers to report: %v", err)
	}
}
