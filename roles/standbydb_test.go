package roles

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"

	"github.com/belay-sh/belay/inventory"
)

// standbyDBSpec is db-standby on the standby site (Hetzner-style, pinned address).
func standbyDBSpec(t testing.TB) *Spec {
	t.Helper()
	s := abBase(t, "db-standby", inventory.Standby, "10.213.0.140", inventory.RoleStandbyDB)
	s.StandbyDB = &StandbyDB{
		PostgresVersion: 15,
		Name:            "shop",
		Port:            5432,
		Stanza:          "belay",
		RepoHost:        "10.213.0.138",
		RepoHostKey:     abKey(t, "host-backup").Public,
		ClientKey:       abKey(t, "pgbackrest-db-standby"),
		AllowFrom:       []string{"10.213.0.150"},
		AppPassword:     tAppPW,
	}
	return s
}

func TestStandbyDBRole(t *testing.T) {
	cases := []struct {
		name   string
		spec   func(testing.TB) *Spec
		script []string
	}{
		{"pinned address", standbyDBSpec, []string{"addr=10.213.0.140\n"}},
		{"address from the interface", func(t testing.TB) *Spec {
			s := standbyDBSpec(t)
			s.Net.PrivateAddress = ""
			s.Net.PrivateInterface = "eth1"
			s.StandbyDB.AllowFrom = []string{"10.213.0.128/25"}
			return s
		}, []string{"ip -4 -o addr show dev eth1 scope global"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.spec(t)
			c, raw := renderParsed(t, s)
			for path, want := range map[string]string{
				belayPGConf:                       "root:root 0644",
				standbyHBA:                        "root:root 0644",
				"/etc/pgbackrest/pgbackrest.conf": "root:postgres 0640",
				StandbyRestoreScript:              "root:root 0755",
				"/etc/systemd/system/" + StandbyRestoreUnit: "root:root 0644",
				"/etc/systemd/system/" + StandbyDBUnit:      "root:root 0644",
				pgHome + "/.ssh/id_ed25519":                 "postgres:postgres 0600",
				pgHome + "/.ssh/known_hosts":                "root:root 0644",
			} {
				f := fileAt(t, c, path)
				if got := f.Owner + " " + f.Permissions; got != want {
					t.Errorf("%s: owner/mode %q, want %q", path, got, want)
				}
			}
			for _, p := range []string{pgHome + "/.ssh/authorized_keys", pgHome + "/.pgpass", pgUnitPath} {
				if hasFile(c, p) {
					t.Errorf("%s rendered on the standby DB", p)
				}
			}
			if strings.Contains(string(raw), tAppPW) {
				t.Error("the app password is in the standby's user data (its role arrives with the backup)")
			}
			if kh := fileAt(t, c, pgHome+"/.ssh/known_hosts").Content; kh != "10.213.0.138 "+abKey(t, "host-backup").Public+"\n" {
				t.Errorf("known_hosts pins %q", kh)
			}
			for _, argv := range [][]string{
				{"systemctl", "enable", StandbyRestoreUnit, StandbyDBUnit},
				{"systemctl", "start", "--no-block", StandbyRestoreUnit},
				{"install", "-d", "-m", "0700", "-o", "postgres", "-g", "postgres", pgHome + "/.ssh"},
			} {
				if !hasCmd(c, argv...) {
					t.Errorf("runcmd lacks %q", argv)
				}
			}
			script := fileAt(t, c, StandbyRestoreScript).Content
			for _, frag := range append(tc.script, "pgbackrest --stanza=\"$stanza\" --type=standby --delta", `printf "listen_addresses = '%s,127.0.0.1'\n" "$addr"`) {
				if !strings.Contains(script, frag) {
					t.Errorf("restore script lacks %q", frag)
				}
			}
			// Boot must not wait for the first backup (the machine would stay "starting").
			if ru := fileAt(t, c, "/etc/systemd/system/"+StandbyRestoreUnit).Content; !strings.Contains(ru, "Type=exec") || strings.Contains(ru, "Type=oneshot") {
				t.Errorf("%s must be Type=exec so boot completes while it waits:\n%s", StandbyRestoreUnit, ru)
			}
			unit := fileAt(t, c, "/etc/systemd/system/"+StandbyDBUnit).Content
			for _, frag := range []string{"ConditionPathExists=" + standbyRestoredMarker, "User=postgres", "Type=notify", "ExecStart=/usr/lib/postgresql/15/bin/postgres -D /var/lib/postgresql/15/main"} {
				if !strings.Contains(unit, frag) {
					t.Errorf("%s lacks %q", StandbyDBUnit, frag)
				}
			}
			if p := fileAt(t, c, "/etc/pgbackrest/pgbackrest.conf").Content; !strings.Contains(p, "repo1-host=10.213.0.138\n") || !strings.Contains(p, "[belay]\npg1-path=/var/lib/postgresql/15/main\n") {
				t.Errorf("pgbackrest.conf:\n%s", p)
			}
			nft := fileAt(t, c, nftablesConf).Content
			if line := ruleLine(nft, `comment "postgresql standby"`); !strings.Contains(line, "tcp dport 5432") || !strings.Contains(line, `iifname "`+s.Net.PrivateInterface+`"`) {
				t.Errorf("nftables rule for the standby: %q", line)
			}
		})
	}
}

func TestStandbyDBConf(t *testing.T) {
	c, _ := renderParsed(t, standbyDBSpec(t))
	set := confSettings(t, fileAt(t, c, belayPGConf).Content)
	for k, v := range map[string]string{
		"hot_standby":               "on",
		"primary_conninfo":          "''",
		"synchronous_standby_names": "''",
		"listen_addresses":          "'localhost'",
		"include_if_exists":         "'" + listenConf + "'",
		"hba_file":                  "'" + standbyHBA + "'",
		"archive_command":           "'pgbackrest --stanza=belay archive-push %p'",
	} {
		if set[k] != v {
			t.Errorf("%s = %q, want %q", k, set[k], v)
		}
	}
	hba := fileAt(t, c, standbyHBA).Content
	for _, l := range strings.Split(hba, "\n") {
		f := strings.Fields(l)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if strings.Contains(l, "0.0.0.0/0") || strings.Contains(l, "::/0") || strings.Contains(l, "trust") {
			t.Errorf("standby hba line too wide: %q", l)
		}
		if f[0] == "hostssl" && (f[1] != "shop" || f[2] != "app" || f[3] != "10.213.0.150/32" || f[4] != "scram-sha-256") {
			t.Errorf("standby hba app line %q", l)
		}
	}
	if !strings.Contains(hba, "hostssl shop app 10.213.0.150/32 scram-sha-256\n") {
		t.Errorf("standby hba lacks the app line:\n%s", hba)
	}
}

// TestStandbyRestoreLogic runs the rendered restore script with stand-ins for
// pgbackrest (no backup on the first checks, then one), runuser, pg_ctl and
// sleep: it waits, restores as a standby in delta mode, cleans what came from
// the primary site, writes listen.conf, and on a second run keeps PGDATA.
func TestStandbyRestoreLogic(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the script refuses to run as non-root")
	}
	if _, err := user.Lookup("postgres"); err != nil {
		t.Skip("no postgres user (installed by postgresql-common)")
	}
	c, _ := renderParsed(t, standbyDBSpec(t))
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	pgdata := filepath.Join(dir, "pgdata")
	calls := filepath.Join(dir, "calls")
	writeTemp(t, bin, "runuser", "#!/bin/sh\nshift 3\nexec \"$@\"\n", 0o755)
	writeTemp(t, bin, "sleep", "#!/bin/sh\necho \"sleep $*\" >>"+calls+"\n", 0o755)
	writeTemp(t, bin, "pg_ctl", "#!/bin/sh\nexit 3\n", 0o755)
	writeTemp(t, bin, "systemctl", "#!/bin/sh\necho \"systemctl $*\" >>"+calls+"\n", 0o755)
	writeTemp(t, bin, "pgbackrest", `#!/bin/sh
echo "pgbackrest $*" >>`+calls+`
case "$*" in
*" info")
    n=$(grep -c 'pgbackrest.* info$' `+calls+`)
    if [ "$n" -ge 3 ]; then echo '[{"backup":[{"label":"20260101-010000F"}],"name":"belay"}]'; else echo '[{"backup":[],"name":"belay"}]'; fi ;;
*" restore")
    mkdir -p `+pgdata+`
    echo 15 >`+pgdata+`/PG_VERSION
    : >`+pgdata+`/standby.signal
    printf "include 'postgresql-auto-failover-standby.conf'\nmax_connections = 100\n" >`+pgdata+`/postgresql.conf
    echo "primary_conninfo = 'host=10.213.0.10'" >`+pgdata+`/postgresql-auto-failover-standby.conf
    printf "synchronous_standby_names = 'ANY 1 (pgautofailover_standby_2)'\nrestore_command = 'pgbackrest --stanza=belay archive-get %%f \"%%p\"'\n  primary_conninfo = 'x'\n" >`+pgdata+`/postgresql.auto.conf ;;
esac
`, 0o755)
	marker := filepath.Join(dir, "restored")
	listen := filepath.Join(dir, "listen.conf")
	script := writeTemp(t, dir, "restore", strings.NewReplacer(
		"PATH=/usr/lib/postgresql/15/bin:", "PATH="+bin+":",
		"pgdata="+PGDataPath(15)+"\n", "pgdata="+pgdata+"\n",
		"marker="+belayStateDir+"/standby-restored\n", "marker="+marker+"\n",
		listenConf, listen,
		"/etc/postgresql/15/main", filepath.Join(dir, "no-debian-cluster"),
	).Replace(fileAt(t, c, StandbyRestoreScript).Content), 0o755)
	run := func(args ...string) (string, error) {
		out, err := exec.Command(script, args...).CombinedOutput()
		return string(out), err
	}

	if out, err := run(); err != nil {
		t.Fatalf("first run: %v\n%s", err, out)
	}
	got := readFile(t, calls)
	if n := strings.Count(got, "sleep "); n != 2 {
		t.Errorf("slept %d times before the first backup appeared, want 2:\n%s", n, got)
	}
	if strings.Count(got, "sleep 5\n") != 2 {
		t.Errorf("the wait for the first backup is not short polls of 5 s:\n%s", got)
	}
	if !strings.Contains(got, "pgbackrest --stanza=belay --type=standby --delta --log-level-console=info restore\n") {
		t.Errorf("no standby delta restore:\n%s", got)
	}
	if !strings.HasSuffix(got, "systemctl start --no-block "+StandbyDBUnit+"\n") {
		t.Errorf("the restored standby's PostgreSQL is not started last:\n%s", got)
	}
	auto := readFile(t, filepath.Join(pgdata, "postgresql.auto.conf"))
	if strings.Contains(auto, "synchronous_standby_names") || strings.Contains(auto, "primary_conninfo") || !strings.Contains(auto, "restore_command") {
		t.Errorf("postgresql.auto.conf after the restore:\n%s", auto)
	}
	if s := readFile(t, filepath.Join(pgdata, "postgresql-auto-failover-standby.conf")); s != "" {
		t.Errorf("pg_auto_failover's standby file still points across sites: %q", s)
	}
	if conf := readFile(t, filepath.Join(pgdata, "postgresql.conf")); !strings.HasSuffix(conf, "include_if_exists = '"+belayPGConf+"'\n") {
		t.Errorf("postgresql.conf does not include belay's fragment last:\n%s", conf)
	}
	if l := readFile(t, listen); l != "listen_addresses = '10.213.0.140,127.0.0.1'\n" {
		t.Errorf("listen.conf = %q", l)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Errorf("no restore marker: %v", err)
	}

	// A reboot: PGDATA is kept, replay continues.
	before := readFile(t, calls)
	if out, err := run(); err != nil || !strings.Contains(out, "replay continues") {
		t.Errorf("second run: %v\n%s", err, out)
	}
	if after := readFile(t, calls); after != before+"systemctl start --no-block "+StandbyDBUnit+"\n" {
		t.Errorf("second run should only start PostgreSQL again, calls:\n%s", after)
	}
	// --resync restores again (delta); an unknown argument is refused.
	if out, err := run("--resync"); err != nil || strings.Count(readFile(t, calls), "restore\n") != 2 {
		t.Errorf("--resync: %v\n%s\n%s", err, out, readFile(t, calls))
	}
	if out, err := run("--force"); err == nil || !strings.Contains(out, "unknown argument") {
		t.Errorf("unknown argument accepted: %v\n%s", err, out)
	}
	// PostgreSQL running: no restore underneath it.
	writeTemp(t, bin, "pg_ctl", "#!/bin/sh\nexit 0\n", 0o755)
	writeTemp(t, pgdata, "postmaster.pid", "1\n", 0o600)
	if out, err := run("--resync"); err == nil || !strings.Contains(out, "is running") {
		t.Errorf("--resync with PostgreSQL running: %v\n%s", err, out)
	}
}

// TestStandbyConfWithPostgres loads the rendered standby fragment into a real
// PostgreSQL 15 (unix socket and loopback only): it parses, the listen file
// wins over 'localhost', hba_file is belay's and its rules load without error.
func TestStandbyConfWithPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skips the PostgreSQL check")
	}
	pgbin := "/usr/lib/postgresql/15/bin"
	runuser := tool(t, "runuser")
	tool(t, "openssl") // the restored cluster has pg_autoctl's certificate; hostssl rules need SSL on
	if _, err := os.Stat(pgbin + "/initdb"); err != nil {
		t.Skipf("PostgreSQL 15 is not installed (%s/initdb)", pgbin)
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to run PostgreSQL as the postgres user")
	}
	pgUser, err := user.Lookup("postgres")
	if err != nil {
		t.Skip("no postgres user")
	}
	c, _ := renderParsed(t, standbyDBSpec(t))
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	pgdata := filepath.Join(dir, "pgdata")
	sock := filepath.Join(dir, "sock")
	hba := writeTemp(t, dir, "pg_hba.conf", fileAt(t, c, standbyHBA).Content, 0o644)
	listen := writeTemp(t, dir, "listen.conf", "listen_addresses = '127.0.0.1'\n", 0o644)
	rendered := fileAt(t, c, belayPGConf).Content
	if !strings.Contains(rendered, "port = 5432") {
		t.Fatal("the standby fragment no longer sets port = 5432 as this test expects")
	}
	conf := func(port int) string {
		return strings.NewReplacer(standbyHBA, hba, listenConf, listen, "archive_mode = on", "archive_mode = off", "port = 5432", fmt.Sprintf("port = %d", port)).Replace(rendered) +
			fmt.Sprintf("unix_socket_directories = '%s'\n", sock)
	}
	confPath := writeTemp(t, dir, "belay.conf", conf(5432), 0o644)
	if err := os.MkdirAll(sock, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("chown", "-R", pgUser.Uid+":"+pgUser.Gid, dir).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v\n%s", err, out)
	}
	as := func(script string) (string, error) {
		cmd := exec.Command(runuser, "-u", "postgres", "--", "sh", "-c", script)
		cmd.Env = []string{"PATH=" + pgbin + ":/usr/bin:/bin", "HOME=" + dir, "LANG=C"}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := as(fmt.Sprintf("initdb -D %[1]s -U postgres >/dev/null && openssl req -new -x509 -days 1 -nodes -subj /CN=db-standby -keyout %[1]s/server.key -out %[1]s/server.crt 2>/dev/null && echo \"ssl = on\" >> %[1]s/postgresql.conf && echo \"include_if_exists = '%[2]s'\" >> %[1]s/postgresql.conf", pgdata, confPath)); err != nil {
		t.Fatalf("initdb with the standby fragment: %v\n%s", err, out)
	}
	port := startPostgresOnFreePort(t, dir+"/pg.log", func(port int) (string, error) {
		if err := os.WriteFile(confPath, []byte(conf(port)), 0o644); err != nil {
			return "", err
		}
		return as(fmt.Sprintf("pg_ctl -D %s -l %s/pg.log -w start >/dev/null", pgdata, dir))
	})
	t.Cleanup(func() { _, _ = as("pg_ctl -D " + pgdata + " -m immediate -w stop") })
	q := fmt.Sprintf("psql -X -q -t -A -v ON_ERROR_STOP=1 -h %s -p %d -d postgres -c", sock, port)
	out, err := as(q + ` "SELECT current_setting('listen_addresses') || ' ' || current_setting('hba_file') || ' ' || current_setting('hot_standby') || ' ' || (SELECT count(*) FROM pg_hba_file_rules WHERE error IS NOT NULL)"`)
	if want := "127.0.0.1 " + hba + " on 0\n"; err != nil || out != want {
		t.Errorf("settings: %q (%v), want %q", out, err, want)
	}
}

func TestStandbyDBValidation(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(s *Spec)
		want   string
	}{
		{"version", func(s *Spec) { s.StandbyDB.PostgresVersion = 0 }, "Spec.StandbyDB.PostgresVersion"},
		{"name", func(s *Spec) { s.StandbyDB.Name = "Shop DB" }, "Spec.StandbyDB.Name"},
		{"app user", func(s *Spec) { s.StandbyDB.AppUser = "postgres" }, "Spec.StandbyDB.AppUser"},
		{"port", func(s *Spec) { s.StandbyDB.Port = 70000 }, "Spec.StandbyDB.Port"},
		{"stanza", func(s *Spec) { s.StandbyDB.Stanza = "" }, "Spec.StandbyDB.Stanza"},
		{"repo host", func(s *Spec) { s.StandbyDB.RepoHost = "" }, "Spec.StandbyDB.RepoHost"},
		{"repo host key", func(s *Spec) { s.StandbyDB.RepoHostKey = "x" }, "Spec.StandbyDB.RepoHostKey"},
		{"client key", func(s *Spec) { s.StandbyDB.ClientKey.PrivatePEM = "" }, "Spec.StandbyDB.ClientKey"},
		{"allow everything", func(s *Spec) { s.StandbyDB.AllowFrom = []string{"0.0.0.0/0"} }, "Spec.StandbyDB.AllowFrom[0]"},
		{"allow public", func(s *Spec) { s.StandbyDB.AllowFrom = []string{"198.51.100.4"} }, "Spec.StandbyDB.AllowFrom[0]"},
		{"no allow", func(s *Spec) { s.StandbyDB.AllowFrom = nil }, "Spec.StandbyDB.AllowFrom"},
		{"password", func(s *Spec) { s.StandbyDB.AppPassword = "" }, "Spec.StandbyDB.AppPassword"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := standbyDBSpec(t)
			tc.mutate(s)
			if _, err := Render(s); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Render: %v, want an error naming %s", err, tc.want)
			}
		})
	}
}

func TestStandbyDBScripts(t *testing.T) {
	c, _ := renderParsed(t, standbyDBSpec(t))
	p := writeTemp(t, t.TempDir(), "restore", fileAt(t, c, StandbyRestoreScript).Content, 0o755)
	if out, err := exec.Command("sh", "-n", p).CombinedOutput(); err != nil {
		t.Errorf("sh -n: %v\n%s", err, out)
	}
	shellcheck(t, p)
}

func TestStandbyDBGolden(t *testing.T) {
	checkGolden(t, "standby-db", mustRender(t, standbyDBSpec(t)))
}
