package roles

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/belay-sh/belay/hostcmd"
	"github.com/belay-sh/belay/internal/pgtest"
)

// TestBackupAndVerifyWithPostgres runs the rendered belay-backup and
// belay-verify-restore scripts against a real PostgreSQL 15 and pgBackRest on
// this machine (unix sockets only): the backup stamps the canary and records it
// in the backup's annotations; a row written after the backup must not be in
// the restore (immediate recovery); the verification restores, starts a
// scratch instance, matches the canary and cleans up; a corrupted backup fails.
func TestBackupAndVerifyWithPostgres(t *testing.T) {
	l := newPGRepoLab(t, 0)
	l.start(t)
	dir, as, psql, chown := l.dir, l.as, l.psql, l.chown

	c, _ := renderParsed(t, abBackupSpec(t))
	// The backup script reaches the primary over SSH as postgres; here psql runs locally.
	backupScript := l.script(t, c, hostcmd.BackupScript)
	verify := strings.NewReplacer(
		"/var/lib/belay/verify", dir+"/verify",
		"conf=/etc/pgbackrest/verify.conf", "conf="+dir+"/verify.conf",
		"result="+VerifyResultFile, "result="+dir+"/result.json",
	).Replace(fileAt(t, c, VerifyScript).Content)
	verify = stanzaListAt(t, c, dir).Replace(verify)
	verifyScript := writeTemp(t, dir, "bin/belay-verify-restore", verify, 0o755)
	writeTemp(t, dir, "verify.conf", strings.NewReplacer(
		"repo1-path="+PgBackRestRepo, "repo1-path="+dir+"/repo",
		"/var/log/pgbackrest", dir+"/log",
		"/tmp/pgbackrest-verify", dir+"/lock",
		"/var/lib/belay/verify", dir+"/verify",
	).Replace(fileAt(t, c, "/etc/pgbackrest/verify.conf").Content), 0o644)
	chown()

	// The first backup starts while another pgBackRest command holds the
	// stanza's lock (as the boot-time stanza service can): it waits, then runs.
	out, err := as("(flock " + dir + "/lock/belay-archive.lock sleep 3 &); sleep 0.5; " + backupScript + " full")
	if err != nil {
		t.Fatalf("belay-backup full: %v\n%s", err, out)
	}
	if !strings.Contains(out, "is locked by another pgBackRest command; retrying") {
		t.Errorf("belay-backup did not wait for the held lock (or the lock was not held):\n%s", out)
	}
	// A write after the backup: the restore (to the backup's consistency point) must not have it.
	if out, err := as(psql + ` -d belay -c "INSERT INTO belay_canary (note) VALUES ('after the backup')"`); err != nil {
		t.Fatalf("insert: %v\n%s", err, out)
	}
	info, err := as("pgbackrest --stanza=belay --output=json info")
	if err != nil || !strings.Contains(info, `"belay-canary-rows":"1"`) {
		t.Fatalf("backup annotations: %v\n%s", err, info)
	}

	result := func() map[string]any {
		t.Helper()
		raw, err := os.ReadFile(filepath.Join(dir, "result.json"))
		if err != nil {
			t.Fatal(err)
		}
		var r map[string]any
		if err := json.Unmarshal(raw, &r); err != nil {
			t.Fatalf("result: %v\n%s", err, raw)
		}
		return r
	}
	out, err = as(verifyScript)
	r := result()
	if err != nil || r["ok"] != true || r["canaryRows"] != float64(1) {
		log, _ := os.ReadFile(dir + "/verify/postgres.log")
		t.Fatalf("verification of a good backup: err=%v result=%v\n%s\n%s", err, r, out, log)
	}
	if _, err := os.Stat(dir + "/verify/pgdata"); !os.IsNotExist(err) {
		t.Error("the scratch data directory was left behind")
	}
	t.Logf("good backup: %v", r)

	// Corrupt one data file of the backup: the verification must fail and say so.
	label, _ := r["backupLabel"].(string)
	var victim string
	_ = filepath.Walk(filepath.Join(dir, "repo/backup/belay", label, "pg_data/base"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() && fi.Size() > 4096 && victim == "" {
			victim = p
		}
		return nil
	})
	if victim == "" {
		t.Fatal("no data file found in the backup to corrupt")
	}
	b, err := os.ReadFile(victim)
	if err != nil {
		t.Fatal(err)
	}
	for i := 100; i < 200; i++ {
		b[i] ^= 0xff
	}
	if err := os.WriteFile(victim, b, 0o640); err != nil {
		t.Fatal(err)
	}
	out, err = as(verifyScript)
	r = result()
	if err == nil || r["ok"] != false || !strings.Contains(fmt.Sprint(r["details"]), "failed") {
		t.Fatalf("verification of a corrupted backup: err=%v result=%v\n%s", err, r, out)
	}
	t.Logf("corrupted backup: %v", r)
}

// pgRepoLab is a real PostgreSQL 15 cluster (unix socket only) archiving to a
// local pgBackRest repository of stanza belay, both under t.TempDir, with
// everything run as the postgres user: the rendered backup scripts run against
// it with their SSH hop replaced by a local psql.
type pgRepoLab struct {
	dir  string
	port int
	// psql is the local command line that stands in for the scripts' `ssh postgres@host psql …`.
	psql string
	// as runs a shell script as postgres with the lab's pgBackRest config.
	as    func(script string) (string, error)
	chown func()
}

// newPGRepoLab creates the cluster (not started); offset separates the ports
// of labs in one test binary.
func newPGRepoLab(t *testing.T, offset int) *pgRepoLab {
	t.Helper()
	pgUser := pgtest.Require(t)
	pgbin := pgtest.Bin
	tool(t, "pgbackrest")
	tool(t, "python3")
	runuser := tool(t, "runuser")

	dir := t.TempDir()
	// PostgreSQL refuses to run as root: the test directory goes to postgres.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"repo", "log", "lock", "sock", "verify", "bin"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	port := 45000 + (os.Getpid()+offset)%5000
	conf := writeTemp(t, dir, "pgbackrest.conf", fmt.Sprintf(`[global]
repo1-path=%[1]s/repo
repo1-retention-full=2
log-path=%[1]s/log
lock-path=%[1]s/lock
start-fast=y
log-level-console=warn

[belay]
pg1-path=%[1]s/src
pg1-port=%[2]d
pg1-socket-path=%[1]s/sock
`, dir, port), 0o644)
	chown := func() {
		t.Helper()
		if out, err := exec.Command("chown", "-R", pgUser.Uid+":"+pgUser.Gid, dir).CombinedOutput(); err != nil {
			t.Fatalf("chown: %v\n%s", err, out)
		}
	}
	as := func(script string) (string, error) {
		cmd := exec.Command(runuser, "-u", "postgres", "--", "sh", "-c", script)
		cmd.Env = []string{"PATH=" + pgbin + ":/usr/bin:/bin", "PGBACKREST_CONFIG=" + conf, "HOME=" + dir, "LANG=C"}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	chown()
	psql := fmt.Sprintf("psql -X -q -t -A -v ON_ERROR_STOP=1 -h %s/sock -p %d", dir, port)
	srcConf := fmt.Sprintf("port = %d\nlisten_addresses = ''\nunix_socket_directories = '%s/sock'\narchive_mode = on\narchive_command = 'pgbackrest --stanza=belay archive-push %%p'\n", port, dir)
	writeTemp(t, dir, "src.conf", srcConf, 0o644)
	chown()
	if out, err := as(fmt.Sprintf("initdb -D %[1]s/src -U postgres --auth=trust >/dev/null && cat %[1]s/src.conf >> %[1]s/src/postgresql.conf", dir)); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	t.Cleanup(func() { _, _ = as("pg_ctl -D " + dir + "/src -m immediate -w stop") })
	return &pgRepoLab{dir: dir, port: port, psql: psql, as: as, chown: chown}

}

// start starts the cluster and waits until it accepts connections.
func (l *pgRepoLab) start(t *testing.T) {
	t.Helper()
	if out, err := l.as(fmt.Sprintf("pg_ctl -D %[1]s/src -l %[1]s/log/src.log -w start >/dev/null", l.dir)); err != nil {
		t.Fatalf("start source cluster: %v\n%s", err, out)
	}
}

// script renders the repository host's file path with its SSH hop to the data
// nodes replaced by the local psql, written executable into the lab's bin/.
func (l *pgRepoLab) script(t *testing.T, c *CloudConfig, path string, replace ...string) string {
	t.Helper()
	orig := fileAt(t, c, path).Content
	text := strings.ReplaceAll(orig, `ssh postgres@"$host" psql -X -q -t -A -v ON_ERROR_STOP=1`, l.psql)
	if text == orig {
		t.Fatalf("%s no longer runs psql over ssh as this test expects", path)
	}
	text = strings.NewReplacer(replace...).Replace(text)
	text = stanzaListAt(t, c, l.dir).Replace(text)
	p := writeTemp(t, l.dir, "bin/"+filepath.Base(path), text, 0o755)
	l.chown()
	return p
}

// stanzaListAt writes the rendered PgBackRestStanzasFile into dir and
// returns the replacement that points a rendered script at it.
func stanzaListAt(t *testing.T, c *CloudConfig, dir string) *strings.Replacer {
	t.Helper()
	p := writeTemp(t, dir, "pgbackrest-stanzas", fileAt(t, c, PgBackRestStanzasFile).Content, 0o644)
	return strings.NewReplacer("list="+PgBackRestStanzasFile+"\n", "list="+p+"\n")
}
