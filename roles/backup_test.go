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
			// restic: nothing per app in user data but one line of the apps
			// list (Hetzner's 32 KiB); no authorized_keys, the CA certifies.
			for _, app := range []string{"web", "api"} {
				if u := userEntry(c, ResticUser(app)); u != nil {
					t.Errorf("%s is a cloud-init user, expected belay-restic-maintain to create it", ResticUser(app))
				}
				for _, f := range c.WriteFiles {
					if strings.Contains(f.Path, app) {
						t.Errorf("per-app file %s in the backup host's user data", f.Path)
					}
				}
			}
			if l := fileAt(t, c, ResticAppsFile); l.Content != "web restic-web\napi restic-api\n" || l.Owner != "root:root" {
				t.Errorf("%s = %+v", ResticAppsFile, l)
			}
			if ca := fileAt(t, c, ResticCAFile); ca.Content != s.Backup.ResticCA+"\n" || ca.Permissions != "0644" {
				t.Errorf("%s = %+v", ResticCAFile, ca)
			}
			if pw := fileAt(t, c, ResticPassFile); pw.Content != s.Backup.ResticPassword+"\n" || pw.Owner != "root:root" || pw.Permissions != "0600" {
				t.Errorf("%s = %s %s, expected root-only", ResticPassFile, pw.Owner, pw.Permissions)
			}
			if !hasCmd(c, "install", "-d", "-m", "0755", "-o", "root", "-g", "root", resticRoot) {
				t.Error("the chroots' parent must be root-owned")
			}
			conf := fileAt(t, c, "/etc/pgbackrest/pgbackrest.conf").Content
			for _, want := range []string{"[global]\nrepo1-path=/var/lib/pgbackrest\n", "repo1-retention-full-type=time\nrepo1-retention-full=14\n", "[belay]\n",
				"pg1-host=10.213.0.10\npg1-host-user=postgres\npg1-path=/var/lib/postgresql/15/main\n", "pg2-host=10.213.0.11\n"} {
				if !strings.Contains(conf, want) {
					t.Errorf("pgbackrest.conf lacks %q", want)
				}
			}
			ak := fileAt(t, c, pgBackRestHome+"/.ssh/authorized_keys").Content
			if n := strings.Count(ak, `restrict,command="`+remoteWrapper+` belay" ssh-ed25519 `); n != 3 {
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
		// stanza is the key's (authorized_keys command argument): "" = belay, "-" = none.
		stanza string
	}{
		{"real pgbackrest info", real, true, ""},
		{"a cell's key, its own stanza", strings.Replace(real, "--stanza=belay", "--stanza=shop_c2", 1), true, "shop_c2"},
		{"a cell's key, the stack's stanza", real, false, "shop_c2"},
		{"the stack's key, a cell's stanza", strings.Replace(real, "--stanza=belay", "--stanza=shop_c2", 1), false, ""},
		{"a cell's key, a stanza it prefixes", strings.Replace(real, "--stanza=belay", "--stanza=shop_c2x", 1), false, "shop_c2"},
		{"no stanza bound to the key", real, false, "-"},
		{"a stanza argument with a pattern", real, false, "*"},
		{"archive-push (pg options ride along)", "/usr/bin/pgbackrest --exec-id=1234-ab12cd34 --log-level-console=off --log-level-file=off --log-level-stderr=error --pg1-path=/var/lib/postgresql/15/main --process=0 --remote-type=repo --repo=1 --stanza=belay archive-push:remote", true, ""},
		{"archive-get from the standby", "pgbackrest --exec-id=99-ff --log-level-console=off --log-level-file=off --log-level-stderr=error --process=0 --remote-type=repo --repo=1 --stanza=belay archive-get:remote", true, ""},
		{"interactive login", "", false, ""},
		{"shell", "sh -c id", false, ""},
		{"metacharacters", "pgbackrest --stanza=belay info:remote; rm -rf /", false, ""},
		{"quotes", `pgbackrest --remote-type=repo --stanza=belay "x" info:remote`, false, ""},
		{"other stanza", strings.Replace(real, "--stanza=belay", "--stanza=other", 1), false, ""},
		{"pg remote", strings.Replace(real, "--remote-type=repo", "--remote-type=pg", 1), false, ""},
		{"no remote type", strings.Replace(real, " --remote-type=repo", "", 1), false, ""},
		{"other repo path", strings.Replace(real, "--process=0", "--process=0 --repo1-path=/etc", 1), false, ""},
		{"other config", strings.Replace(real, "--process=0", "--process=0 --config=/tmp/x.conf", 1), false, ""},
		{"onward host", strings.Replace(real, "--process=0", "--process=0 --repo1-host=evil", 1), false, ""},
		{"not a remote command", strings.TrimSuffix(real, ":remote"), false, ""},
		{"local expire", "pgbackrest --remote-type=repo --stanza=belay expire", false, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			stanza := "belay"
			if tc.stanza != "" {
				stanza = tc.stanza
			}
			cmd := exec.Command(wrapper, stanza)
			if stanza == "-" {
				cmd = exec.Command(wrapper)
			}
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
			script = stanzaListAt(t, c, dir).Replace(script)
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

// TestResticMaintain runs the maintenance script with the real restic against
// local repositories, the account tools replaced by stubs that log their
// arguments: it creates the missing user (api), adds the legacy one (web, a
// cloud-init user of older releases) to the group, takes a user no longer
// listed out of it, creates both repositories with the one password, and is
// idempotent.
func TestResticMaintain(t *testing.T) {
	restic := tool(t, "restic")
	s := abBackupSpec(t)
	c, _ := renderParsed(t, s)
	dir := t.TempDir()
	log := filepath.Join(dir, "calls")
	stub := func(name, body string) {
		writeTemp(t, dir, "bin/"+name, "#!/bin/sh\necho \""+name+" $*\" >> "+log+"\n"+body+"\n", 0o755)
	}
	stub("getent", `echo "belay-restic:x:999:restic-web,restic-old"`)
	stub("groupadd", "")
	stub("gpasswd", "")
	stub("useradd", "")
	stub("usermod", "")
	stub("id", `[ "$2" = restic-web ]`)
	stub("install", `for a; do last=$a; done; mkdir -p "$last"`)
	// runuser -u <user> -- restic ...: the password must arrive in the environment.
	stub("runuser", `[ -n "${RESTIC_PASSWORD:-}" ] || exit 9; shift 3; exec "$@"`)
	writeTemp(t, dir, "etc/restic-apps", fileAt(t, c, ResticAppsFile).Content, 0o644)
	pass := writeTemp(t, dir, "etc/restic.pass", fileAt(t, c, ResticPassFile).Content, 0o600)
	// What an older release left: per-app keys and password file.
	legacy := []string{writeTemp(t, dir, "srv/web/.ssh/authorized_keys", "restrict ssh-ed25519 AAAA\n", 0o644), writeTemp(t, dir, "etc/restic-web.pass", "x\n", 0o640)}
	script := strings.NewReplacer(
		resticRoot+"/", dir+"/srv/",
		"/etc/belay/", dir+"/etc/",
	).Replace(fileAt(t, c, ResticMaintainScript).Content)
	if strings.Contains(script, "/etc/belay") || strings.Contains(script, resticRoot) {
		t.Fatalf("the test would touch the machine's files:\n%s", script)
	}
	p := writeTemp(t, dir, "maintain", script, 0o755)
	for run := 1; run <= 2; run++ {
		cmd := exec.Command(p)
		cmd.Env = []string{"PATH=" + dir + "/bin:/usr/bin:/bin", "HOME=" + dir}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("run %d: %v\n%s", run, err, out)
		}
	}
	for _, f := range legacy {
		if _, err := os.Stat(f); !os.IsNotExist(err) {
			t.Errorf("legacy %s not removed: %v", f, err)
		}
	}
	calls, _ := os.ReadFile(log)
	for _, want := range []string{
		"useradd --system --user-group --no-create-home --home-dir " + dir + "/srv/api --shell /usr/sbin/nologin --comment restic repository of api restic-api\n",
		"usermod -a -G belay-restic restic-web\n", "usermod -a -G belay-restic restic-api\n",
		"gpasswd -d restic-old belay-restic\n",
		"install -d -m 0700 -o restic-api -g restic-api " + dir + "/srv/api/repo\n",
	} {
		if !strings.Contains(string(calls), want) {
			t.Errorf("calls lack %q:\n%s", want, calls)
		}
	}
	for _, bad := range []string{"restic-web\n" + "useradd", "useradd --system --user-group --no-create-home --home-dir " + dir + "/srv/web", "gpasswd -d restic-web", "gpasswd -d restic-api", s.Backup.ResticPassword} {
		if strings.Contains(string(calls), bad) {
			t.Errorf("calls contain %q:\n%s", bad, calls)
		}
	}
	for _, app := range []string{"web", "api"} {
		cmd := exec.Command(restic, "--no-cache", "-r", dir+"/srv/"+app+"/repo", "--password-file", pass, "snapshots")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s repository not usable: %v\n%s", app, err, out)
		}
	}
}

func TestBackupGolden(t *testing.T) {
	checkGolden(t, "backup-repo", mustRender(t, abBackupSpec(t)))
}
