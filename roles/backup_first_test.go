package roles

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/belay-sh/belay/hostcmd"
)

// TestFirstBackupLogic runs belay-backup-first against stand-ins for ssh,
// pgbackrest, sleep and belay-backup, to pin its decisions: skip when a full
// exists, wait with a back-off that starts at 2 s and stops growing at 15 s
// until a data node is read-write, the stanza exists and archiving works, back
// up exactly once, and give up (exit 1) at its bound.
func TestFirstBackupLogic(t *testing.T) {
	c, _ := renderParsed(t, abBackupSpec(t))
	text := fileAt(t, c, firstBackupScript).Content
	cases := []struct {
		name string
		// writableFrom is the attempt from which ssh answers "f" (0 = never);
		// checkOKFrom the attempt from which pgbackrest check passes.
		writableFrom, checkOKFrom int
		hasFull                   bool
		wait                      string
		ok                        bool
		sleeps                    string
		backups                   int
		out                       string
	}{
		{name: "full exists", hasFull: true, ok: true, out: "nothing to do"},
		{name: "waits then backs up", writableFrom: 3, checkOKFrom: 5, ok: true, sleeps: "2 4 8 15 ", backups: 1, out: "WAL archiving does not work yet"},
		{name: "primary at once", writableFrom: 1, checkOKFrom: 1, ok: true, backups: 1, out: "taking the first full backup"},
		{name: "gives up", wait: "10", ok: false, sleeps: "2 4 8 ", out: "giving up after"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			bin := filepath.Join(dir, "bin")
			calls := filepath.Join(dir, "calls")
			full := "[]"
			if tc.hasFull {
				full = `[{"label":"20260101-010000F","type":"full"}]`
			}
			// The attempt number is the count of info calls so far (one at the top of each attempt).
			attempt := "n=$(grep -c ' info$' " + calls + ")\n"
			writeTemp(t, bin, "ssh", "#!/bin/sh\ncat >/dev/null\necho ssh >>"+calls+"\n"+attempt+
				"if [ "+strconv.Itoa(tc.writableFrom)+" -gt 0 ] && [ \"$n\" -ge "+strconv.Itoa(tc.writableFrom)+" ]; then echo f; else echo t; fi\n", 0o755)
			writeTemp(t, bin, "pgbackrest", `#!/bin/sh
echo "pgbackrest $*" >>`+calls+`
`+attempt+`case "$*" in
*" info") echo '[{"name":"belay","backup":`+full+`}]' ;;
*" check")
    [ "$n" -ge `+strconv.Itoa(tc.checkOKFrom)+` ] || { echo "ERROR: [082]: WAL segment was not archived before the 60000ms timeout" >&2; exit 82; } ;;
esac
`, 0o755)
			writeTemp(t, bin, "sleep", "#!/bin/sh\nprintf '%s ' \"$1\" >>"+dir+"/sleeps\n", 0o755)
			fake := writeTemp(t, bin, "belay-backup", "#!/bin/sh\necho \"belay-backup $*\" >>"+calls+"\n", 0o755)
			r := strings.NewReplacer(hostcmd.BackupScript+" full", fake+" full")
			if tc.wait != "" {
				r = strings.NewReplacer(hostcmd.BackupScript+" full", fake+" full", "\nwait=7200\n", "\nwait="+tc.wait+"\n")
			}
			p := writeTemp(t, dir, "belay-backup-first", stanzaListAt(t, c, dir).Replace(r.Replace(text)), 0o755)
			cmd := exec.Command(p)
			cmd.Env = []string{"PATH=" + bin + ":/usr/bin:/bin"}
			out, err := cmd.CombinedOutput()
			if (err == nil) != tc.ok {
				t.Errorf("exit error = %v, want ok=%v\n%s", err, tc.ok, out)
			}
			if !strings.Contains(string(out), tc.out) {
				t.Errorf("output lacks %q:\n%s", tc.out, out)
			}
			got := readOr(dir + "/calls")
			if n := strings.Count(got, "belay-backup full"); n != tc.backups {
				t.Errorf("%d backups, want %d; calls:\n%s", n, tc.backups, got)
			}
			if tc.hasFull && strings.Contains(got, "ssh") {
				t.Errorf("contacted the data nodes although a full backup exists:\n%s", got)
			}
			if s := readOr(dir + "/sleeps"); s != tc.sleeps {
				t.Errorf("sleeps %q, want %q", s, tc.sleeps)
			}
		})
	}
	if !strings.Contains(text, "\nwait=7200\n") {
		t.Error("the wait bound is no longer 2 h (update this test's replacement)")
	}
}

// readOr reads a file the script may not have created ("" then).
func readOr(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}
