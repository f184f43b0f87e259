package roles

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestBackupRole(t *testing.T) {
	for _, fullEvery := range []string{"weekly", "daily"} {
		t.Run(fullEvery, func(t *testing.T) {
			s := abBackupSpec(t)
			s.Backup.FullEvery = fullEvery
			c, _ := renderParsed(t, s)
			if u := userEntry(c, PgBackRestUser); u == nil || u["shell"] != "/bin/sh" || u["lock_passwd"] != true || u["homedir"] != pgBackRestHome {
				t.Errorf("pgbackrest user = %v", u)
			}
			for _, app := range []string{"web", "api"} {
				u := userEntry(c, ResticUser(app))
				if u == nil || u["shell"] != "/usr/sbin/nologin" || u["homedir"] != "/srv/restic/"+app {
					t.Errorf("%s = %v", ResticUser(app), u)
				}
				if !hasCmd(c, "install", "-d", "-m", "0755", "-o", "root", "-g", "root", "/srv/restic/"+app) ||
					!hasCmd(c, "install", "-d", "-m", "0700", "-o", ResticUser(app), "-g", ResticUser(app), "/srv/restic/"+app+"/repo") {
					t.Errorf("%s: chroot must be root-owned with a repo dir owned by %s", app, ResticUser(app))
				}
				ak := fileAt(t, c, "/srv/restic/"+app+"/.ssh/authorized_keys")
				if ak.Owner != "root:root" || strings.Count(ak.Content, "restrict ssh-ed25519 ") != map[string]int{"web": 2, "api": 1}[app] {
					t.Errorf("%s authorized_keys = %+v", app, ak)
				}
			}
			conf := fileAt(t, c, "/etc/pgbackrest/pgbackrest.conf").Content
			for _, want := range []string{"[global]\nrepo1-path=/var/lib/pgbackrest\n", "repo1-retention-full-type=time\nrepo1-retention-full=14\n", "[belay]\n",
				"pg1-host=10.213.0.10\npg1-host-user=postgres\npg1-path=/var/lib/postgresql/15/main\n", "pg2-host=10.213.0.11\n"} {
				if !strings.Contains(conf, want) {
					t.Errorf("pgbackrest.conf lacks %q", want)
				}
			}
			ak := fileAt(t, c, pgBackRestHome+"/.ssh/authorized_keys").Content
			if n := strings.Count(ak, `restrict,command="`+remoteWrapper+`" ssh-ed25519 `); n != 3 {
				t.Errorf("pgbackrest authorized_keys has %d restricted keys, want 3:\n%s", n, ak)
			}
			kh := fileAt(t, c, pgBackRestHome+"/.ssh/known_hosts").Content
			if kh != "10.213.0.10 "+s.Backup.DBHosts[0].HostKey+"\n10.213.0.11 "+s.Backup.DBHosts[1].HostKey+"\n" {
				t.Errorf("known_hosts = %q", kh)
			}
			if cfg := fileAt(t, c, pgBackRestHome+"/.ssh/config").Content; !strings.Contains(cfg, "StrictHostKeyChecking yes") {
				t.Error("the repository's SSH client does not insist on pinned keys")
			}
			if k := fileAt(t, c, pgBackRestHome+"/.ssh/id_ed25519"); k.Permissions != "0600" || k.Owner != "pgbackrest:pgbackrest" || !k.Defer || k.Content != s.Backup.RepoKey.PrivatePEM {
				t.Errorf("repo key file = %s %s defer=%v", k.Permissions, k.Owner, k.Defer)
			}
			full, diff := fileAt(t, c, "/etc/systemd/system/belay-backup-full.timer").Content, fileAt(t, c, "/etc/systemd/system/belay-backup-diff.timer").Content
			wantFull, wantDiff := map[string][2]string{"weekly": {"Sun *-*-* 01:00:00", "Mon..Sat *-*-* 01:00:00"}, "daily": {"*-*-* 01:00:00", "*-*-* 13:00:00"}}[fullEvery][0], map[string][2]string{"weekly": {"", "Mon..Sat *-*-* 01:00:00"}, "daily": {"", "*-*-* 13:00:00"}}[fullEvery][1]
			if !strings.Contains(full, "OnCalendar="+wantFull+"\n") || !strings.Contains(diff, "OnCalendar="+wantDiff+"\n") {
				t.Errorf("timers: full %q diff %q", full, diff)
			}
			if svc := fileAt(t, c, "/etc/systemd/system/belay-verify-restore.service").Content; !strings.Contains(svc, "ExecStart="+VerifyScript+"\n") || !strings.Contains(svc, "User=pgbackrest\n") {
				t.Errorf("verify service = %q", svc)
			}
			for _, timer := range []string{"belay-backup-full.timer", "belay-backup-diff.timer", "belay-verify-restore.timer", "belay-restic-maintain.timer"} {
				if !hasFile(c, "/etc/systemd/system/"+timer) {
					t.Errorf("%s missing", timer)
				}
			}
			if !hasCmd(c, "systemctl", "start", "--no-block", "belay-pgbackrest-stanza.service") {
				t.Error("stanza creation is not started at boot")
			}
			if !strings.Contains(fileAt(t, c, nftablesConf).Content, "10.213.0.0/25") {
				t.Error("the repo host firewall does not admit the primary site's SSH")
			}
		})
	}
}

// TestPgBackRestConfigParses loads both rendered configs with the real
// pgBackRest, so an unknown or misspelt option fails here and not at 01:00.
func TestPgBackRestConfigParses(t *testing.T) {
	pgbackrest := tool(t, "pgbackrest")
	c, _ := renderParsed(t, abBackupSpec(t))
	for _, path := range []string{"/etc/pgbackrest/pgbackrest.conf", "/etc/pgbackrest/verify.conf"} {
		t.Run(filepath.Base(path), func(t *testing.T) {
			dir := t.TempDir()
			conf := strings.NewReplacer(PgBackRestRepo+"\n", dir+"/repo\n", "/var/log/pgbackrest", dir, "/tmp/pgbackrest-verify", dir).Replace(fileAt(t, c, path).Content)
			f := writeTemp(t, dir, "pgbackrest.conf", conf, 0o644)
			cmd := exec.Command(pgbackrest, "--config="+f, "--stanza=belay", "--lock-path="+dir, "--log-level-file=off", "--output=json", "info")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("pgbackrest info with the rendered config: %v\n%s", err, out)
			}
			var info []map[string]any
			if err := json.Unmarshal(out, &info); err != nil || len(info) != 1 || info[0]["name"] != "belay" {
				t.Fatalf("pgbackrest info output = %s (%v)", out, err)
			}
		})
	}
}

// TestPgBackRestRemoteWrapper feeds the forced-command wrapper the exact
// command line real pgBackRest sends over SSH (captured with a fake ssh), plus
// commands it must refuse.
func TestPgBackRestRemoteWrapper(t *testing.T) {
	c, _ := renderParsed(t, abBackupSpec(t))
	dir := t.TempDir()
	stub := writeTemp(t, dir, "pgbackrest-stub", "#!/bin/sh\nprintf '%s\\n' \"$@\"\n", 0o755)
	wrapper := writeTemp(t, dir, "wrapper", strings.ReplaceAll(fileAt(t, c, remoteWrapper).Content, "exec /usr/bin/pgbackrest", "exec "+stub), 0o755)

	real := capturedRemoteCommand(t)
	cases := []struct {
		name, cmd string
		ok        bool
	}{
		{"real pgbackrest info", real, true},
		{"archive-push (pg options ride along)", "/usr/bin/pgbackrest --exec-id=1234-ab12cd34 --log-level-console=off --log-level-file=off --log-level-stderr=error --pg1-path=/var/lib/postgresql/15/main --process=0 --remote-type=repo --repo=1 --stanza=belay archive-push:remote", true},
		{"archive-get from the standby", "pgbackrest --exec-id=99-ff --log-level-console=off --log-level-file=off --log-level-stderr=error --process=0 --remote-type=repo --repo=1 --stanza=belay archive-get:remote", true},
		{"interactive login", "", false},
		{"shell", "sh -c id", false},
		{"metacharacters", "pgbackrest --stanza=belay info:remote; rm -rf /", false},
		{"quotes", `pgbackrest --remote-type=repo --stanza=belay "x" info:remote`, false},
		{"other stanza", strings.Replace(real, "--stanza=belay", "--stanza=other", 1), false},
		{"pg remote", strings.Replace(real, "--remote-type=repo", "--remote-type=pg", 1), false},
		{"no remote type", strings.Replace(real, " --remote-type=repo", "", 1), false},
		{"other repo path", strings.Replace(real, "--process=0", "--process=0 --repo1-path=/etc", 1), false},
		{"other config", strings.Replace(real, "--process=0", "--process=0 --config=/tmp/x.conf", 1), false},
		{"onward host", strings.Replace(real, "--process=0", "--process=0 --repo1-host=evil", 1), false},
		{"not a remote command", strings.TrimSuffix(real, ":remote"), false},
		{"local expire", "pgbackrest --remote-type=repo --stanza=belay expire", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(wrapper)
			cmd.Env = []string{"PATH=/usr/bin:/bin", "SSH_ORIGINAL_COMMAND=" + tc.cmd, "SSH_CLIENT=192.0.2.1 5555 22"}
			out, err := cmd.CombinedOutput()
			if tc.ok {
				if err != nil {
					t.Fatalf("refused %q: %v\n%s", tc.cmd, err, out)
				}
				if want := strings.Join(strings.Fields(tc.cmd)[1:], "\n") + "\n"; string(out) != want {
					t.Errorf("pgbackrest got args\n%s\nwant\n%s", out, want)
				}
				return
			}
			if err == nil || !strings.Contains(string(out), "refused") {
				t.Errorf("accepted %q (err %v):\n%s", tc.cmd, err, out)
			}
		})
	}
}

// capturedRemoteCommand runs the real pgBackRest as a client of a repo host,
// with a fake ssh that records the remote command it would run there.
func capturedRemoteCommand(t *testing.T) string {
	t.Helper()
	pgbackrest := tool(t, "pgbackrest")
	dir := t.TempDir()
	record := filepath.Join(dir, "ssh-args")
	fake := writeTemp(t, dir, "fake-ssh", "#!/bin/sh\nprintf '%s\\n' \"$@\" > "+record+"\nexit 255\n", 0o755)
	conf := writeTemp(t, dir, "client.conf", "[global]\nrepo1-host=repo.test\nrepo1-host-user=pgbackrest\n", 0o644)
	cmd := exec.Command(pgbackrest, "--config="+conf, "--stanza=belay", "--cmd-ssh="+fake, "--log-path="+dir, "--lock-path="+dir, "--log-level-console=off", "info")
	_ = cmd.Run() // fails by design: the fake ssh exits 255
	raw, err := os.ReadFile(record)
	if err != nil {
		t.Fatalf("pgbackrest did not call ssh: %v", err)
	}
	args := strings.Split(strings.TrimSpace(string(raw)), "\n")
	if len(args) < 2 || args[len(args)-2] != "pgbackrest@repo.test" {
		t.Fatalf("unexpected ssh arguments %q", args)
	}
	return args[len(args)-1]
}

// TestBackupScripts checks every rendered script parses (and passes
// shellcheck where installed).
func TestBackupScripts(t *testing.T) {
	c, _ := renderParsed(t, abBackupSpec(t))
	n := 0
	for _, f := range c.WriteFiles {
		if !strings.HasPrefix(f.Path, "/usr/local/bin/") {
			continue
		}
		n++
		p := writeTemp(t, t.TempDir(), filepath.Base(f.Path), f.Content, 0o755)
		if out, err := exec.Command("sh", "-n", p).CombinedOutput(); err != nil {
			t.Errorf("%s: sh -n: %v\n%s", f.Path, err, out)
		}
		shellcheck(t, p)
	}
	if n < 4 {
		t.Errorf("only %d scripts rendered", n)
	}
}

// TestVerifyRestoreLogic runs belay-verify-restore against stand-ins for
// pgbackrest, pg_ctl and psql, to check its decisions and the result file.
// (The lab restores for real; this pins the script's logic.)
func TestVerifyRestoreLogic(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 is not installed; the script writes its JSON with it")
	}
	c, _ := renderParsed(t, abBackupSpec(t))
	cases := []struct {
		name       string
		annotation string
		canary     string
		restoreOK  bool
		ok         bool
		details    string
	}{
		{"match", `{"belay-canary-rows":"7","belay-canary-md5":"abc"}`, "7 abc", true, true, "canary 7 rows match"},
		{"mismatch", `{"belay-canary-rows":"7","belay-canary-md5":"abc"}`, "6 def", true, false, "canary mismatch: backup recorded 7 rows md5 abc, restore has 6 rows md5 def"},
		{"no canary recorded", `null`, "7 abc", true, false, "recorded no canary"},
		{"restore fails", `{"belay-canary-rows":"7","belay-canary-md5":"abc"}`, "7 abc", false, false, "restore of 20260101-010000F failed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			bin := filepath.Join(dir, "bin")
			restoreExit := "0"
			if !tc.restoreOK {
				restoreExit = "1"
			}
			writeTemp(t, bin, "pgbackrest", `#!/bin/sh
case "$*" in
*" info") echo '[{"name":"belay","backup":[{"label":"20260101-010000F","annotation":`+tc.annotation+`}]}]' ;;
*" restore") echo "ERROR: disk full" >&2; mkdir -p "`+dir+`/verify/pgdata"; exit `+restoreExit+` ;;
*) exit 3 ;;
esac
`, 0o755)
			writeTemp(t, bin, "pg_ctl", "#!/bin/sh\ncase \"$*\" in *start*) touch "+dir+"/verify/pgdata/postmaster.pid ;; *stop*) rm -f "+dir+"/verify/pgdata/postmaster.pid; echo stopped >> "+dir+"/stops ;; esac\n", 0o755)
			writeTemp(t, bin, "psql", `#!/bin/sh
case "$*" in
*pg_is_in_recovery*) echo f ;;
*pg_database*) echo 3 ;;
*belay_canary*) echo "`+tc.canary+`" ;;
esac
`, 0o755)
			script := strings.NewReplacer(
				"pgbin=/usr/lib/postgresql/15/bin", "pgbin="+bin,
				"scratch=/var/lib/belay/verify", "scratch="+dir+"/verify",
				"result="+VerifyResultFile, "result="+dir+"/result.json",
			).Replace(fileAt(t, c, VerifyScript).Content)
			p := writeTemp(t, dir, "belay-verify-restore", script, 0o755)
			cmd := exec.Command(p)
			cmd.Env = []string{"PATH=" + bin + ":/usr/bin:/bin"}
			out, err := cmd.CombinedOutput()
			if (err == nil) != tc.ok {
				t.Errorf("exit error = %v, want ok=%v\n%s", err, tc.ok, out)
			}
			raw, rerr := os.ReadFile(filepath.Join(dir, "result.json"))
			if rerr != nil {
				t.Fatalf("no result file: %v\n%s", rerr, out)
			}
			var res struct {
				Time        string `json:"time"`
				BackupLabel string `json:"backupLabel"`
				OK          bool   `json:"ok"`
				Details     string `json:"details"`
			}
			if err := json.Unmarshal(raw, &res); err != nil {
				t.Fatalf("result is not JSON: %v\n%s", err, raw)
			}
			if res.OK != tc.ok || res.BackupLabel != "20260101-010000F" || res.Time == "" || !strings.Contains(res.Details, tc.details) {
				t.Errorf("result = %+v, want ok=%v details containing %q", res, tc.ok, tc.details)
			}
			if _, err := os.Stat(filepath.Join(dir, "verify", "pgdata")); !os.IsNotExist(err) {
				t.Error("scratch data directory left behind")
			}
			if tc.restoreOK {
				if stops, _ := os.ReadFile(filepath.Join(dir, "stops")); len(stops) == 0 {
					t.Error("scratch instance was not stopped")
				}
			}
		})
	}
}

// TestResticMaintain runs the retention script with the real restic against
// local repositories: it must create them, and be idempotent.
func TestResticMaintain(t *testing.T) {
	restic := tool(t, "restic")
	s := abBackupSpec(t)
	c, _ := renderParsed(t, s)
	dir := t.TempDir()
	for _, app := range []string{"web", "api"} {
		writeTemp(t, dir, "pass/restic-"+app+".pass", s.Backup.ResticPassword+"\n", 0o600)
	}
	script := strings.NewReplacer(
		`runuser -u "$user" -- restic`, restic,
		resticRoot+"/", dir+"/srv/",
		"/etc/belay/restic-", dir+"/pass/restic-",
	).Replace(fileAt(t, c, "/usr/local/bin/belay-restic-maintain").Content)
	p := writeTemp(t, dir, "maintain", script, 0o755)
	for run := 1; run <= 2; run++ {
		cmd := exec.Command(p)
		cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + dir}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("run %d: %v\n%s", run, err, out)
		}
	}
	for _, app := range []string{"web", "api"} {
		cmd := exec.Command(restic, "--no-cache", "-r", dir+"/srv/"+app+"/repo", "--password-file", dir+"/pass/restic-"+app+".pass", "snapshots")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s repository not usable: %v\n%s", app, err, out)
		}
	}
}

func TestBackupGolden(t *testing.T) {
	checkGolden(t, "backup-repo", mustRender(t, abBackupSpec(t)))
}
