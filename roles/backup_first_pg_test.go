package roles

import (
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/belay-sh/belay/internal/shq"

	"github.com/belay-sh/belay/hostcmd"
)

// TestFirstBackupWithPostgres runs the rendered belay-backup-first against a
// real PostgreSQL 15 and pgBackRest: started while PostgreSQL is down, it
// waits with short checks, and takes the first full backup (canary stamped)
// within seconds of the primary accepting writes; a second run sees the full
// backup and does nothing.
func TestFirstBackupWithPostgres(t *testing.T) {
	l := newPGRepoLab(t, 7)
	c, _ := renderParsed(t, abBackupSpec(t))
	backup := l.script(t, c, hostcmd.BackupScript)
	first := l.script(t, c, firstBackupScript, hostcmd.BackupScript+" full", backup+" full")

	type result struct {
		out string
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := l.as(first)
		done <- result{out, err}
	}()
	// Let it find no primary at least once.
	time.Sleep(3 * time.Second)
	l.start(t)
	up := time.Now()
	var r result
	select {
	case r = <-done:
	case <-time.After(3 * time.Minute):
		t.Fatal("belay-backup-first did not finish within 3 minutes of the primary starting")
	}
	took := time.Since(up)
	if r.err != nil {
		t.Fatalf("belay-backup-first: %v\n%s", r.err, r.out)
	}
	if !strings.Contains(r.out, "no data node accepts writes yet; next check in 2s") {
		t.Errorf("it did not wait for the primary with a 2 s first check:\n%s", r.out)
	}
	if !strings.Contains(r.out, "taking the first full backup") || !strings.Contains(r.out, "first full backup of belay taken") {
		t.Errorf("no first full backup reported:\n%s", r.out)
	}
	// What bounds the delay after the primary starts is the check interval:
	// it must back off to at most 15 s, never more. The time itself is
	// logged, not asserted (timings are not pass/fail: on a loaded box it
	// took 2m22s; the lab's target of 2 minutes is measured by the day-0
	// lab test).
	for _, m := range regexp.MustCompile(`next check in (\d+)s`).FindAllStringSubmatch(r.out, -1) {
		if n, _ := strconv.Atoi(m[1]); n > firstBackupMaxDelay {
			t.Errorf("a check interval of %ss, want at most %d s:\n%s", m[1], firstBackupMaxDelay, r.out)
		}
	}
	t.Logf("first full backup finished %s after the primary started:\n%s", took.Round(100*time.Millisecond), r.out)
	info, err := l.as("pgbackrest --stanza=belay --output=json info")
	if err != nil || strings.Count(info, `"type":"full"`) != 1 || !strings.Contains(info, `"belay-canary-rows":"1"`) {
		t.Fatalf("repository after the first backup: %v\n%s", err, info)
	}

	// Idempotent: a second run (a reboot) finds the full backup and ends at once.
	start := time.Now()
	out, err := l.as(first)
	if err != nil || !strings.Contains(out, "holds a full backup of belay: nothing to do") {
		t.Errorf("second run: %v after %s\n%s", err, time.Since(start), out)
	}
	info, _ = l.as("pgbackrest --stanza=belay --output=json info")
	if n := strings.Count(info, `"type":"full"`); n != 1 {
		t.Errorf("%d full backups after the second run, want 1", n)
	}
	// The standby query `belay backup status` runs parses on a real server (a
	// primary here: no replay yet).
	out, err = l.as(l.psql + " -d postgres -c " + shq.Quote(hostcmd.StandbyReplaySQL))
	if f := strings.Fields(out); err != nil || len(f) != 4 || f[0] != "f" || f[1] != "none" || f[2] != "none" || f[3] != "16777216" {
		t.Errorf("%s: %v %q", hostcmd.StandbyReplaySQL, err, out)
	}
	if _, err := exec.LookPath("shellcheck"); err == nil {
		shellcheck(t, first)
	}
}
