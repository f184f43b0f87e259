package plan_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// fakeSystemd is a directory of stand-ins for systemctl, journalctl and sudo
// on PATH, so the rendered scripts run for real against a unit whose state the
// test sets: State holds `systemctl show` lines, calls are logged.
type fakeSystemd struct {
	dir, bin string
}

const fakeSystemctl = `#!/bin/sh
echo "$*" >> "$FAKE_DIR/calls"
case "$1" in
show)
  [ -e "$FAKE_DIR/nosystemd" ] && { echo "System has not been booted with systemd as init system (PID 1). Can't operate." >&2; exit 1; }
  case " $* " in
  *" --value "*)
    prop=; prev=
    for a in "$@"; do [ "$prev" = -p ] && prop=$a; prev=$a; done
    sed -n "s/^$prop=//p" "$FAKE_DIR/state";;
  *) cat "$FAKE_DIR/state";;
  esac;;
reset-failed)
  [ -e "$FAKE_DIR/no-reset" ] && { echo "sudo: a password is required" >&2; exit 1; }
  rm -f "$FAKE_DIR/limited";;
restart)
  if [ -e "$FAKE_DIR/limited" ]; then
    n=$(cat "$FAKE_DIR/limited")
    if [ "$n" -gt 0 ]; then
      echo $((n-1)) > "$FAKE_DIR/limited"
      echo "Job for $2 failed because start of the service was attempted too often." >&2
      exit 1
    fi
  fi
  [ -e "$FAKE_DIR/restart-error" ] && { cat "$FAKE_DIR/restart-error" >&2; exit 1; };;
status) echo "x $2 - fake status";;
esac
exit 0
`

const fakeJournalctl = `#!/bin/sh
echo "journalctl $*" >> "$FAKE_DIR/calls"
echo "Jan 01 00:00:01 shop-1 belay-canary-shop[42]: panic: database URL not set"
echo "Jan 01 00:00:01 shop-1 systemd[1]: belay-canary@shop.service: Main process exited, code=exited, status=2/INVALIDARGUMENT"
`

const fakeSudo = `#!/bin/sh
[ "$1" = -n ] && shift
exec "$@"
`

func newFakeSystemd(t *testing.T, state string) *fakeSystemd {
	t.Helper()
	for _, tool := range []string{"sh", "sed", "cat"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	f := &fakeSystemd{dir: t.TempDir(), bin: t.TempDir()}
	for name, body := range map[string]string{"systemctl": fakeSystemctl, "journalctl": fakeJournalctl, "sudo": fakeSudo} {
		if err := os.WriteFile(filepath.Join(f.bin, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	f.set(t, state)
	return f
}

// set replaces the unit's state ("ActiveState=... SubState=... NRestarts=...").
func (f *fakeSystemd) set(t *testing.T, state string) {
	t.Helper()
	f.write(t, "state", strings.Join(strings.Fields(state), "\n")+"\n")
}

func (f *fakeSystemd) write(t *testing.T, name, content string) {
	t.Helper()
	// Write then rename: the script may read the file at any moment.
	p := filepath.Join(f.dir, name)
	if err := os.WriteFile(p+".tmp", []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(p+".tmp", p); err != nil {
		t.Fatal(err)
	}
}

func (f *fakeSystemd) calls(t *testing.T) []string {
	t.Helper()
	b, _ := os.ReadFile(filepath.Join(f.dir, "calls"))
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

// cmd runs script with the fakes (and extra, if given) first on PATH.
func (f *fakeSystemd) cmd(script string, extra ...string) *exec.Cmd {
	c := exec.Command("sh", "-c", script)
	path := strings.Join(append(extra, f.bin, os.Getenv("PATH")), string(os.PathListSeparator))
	c.Env = append(os.Environ(), "PATH="+path, "FAKE_DIR="+f.dir)
	return c
}

const running = "ActiveState=active SubState=running NRestarts=0"
