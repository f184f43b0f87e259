package roles

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/router"
)

// Test passwords: long enough for validation, recognisable when they leak.
const (
	tAppPW     = "app-password-0123456789abcdef"
	tReplPW    = "repl-password-0123456789abcdef"
	tMonitorPW = "monitor-password-0123456789abc"
)

// dbSpec is db-1 (or db-2) of a Hetzner-style primary site with pinned addresses.
func dbSpec(t testing.TB, host, addr string) *Spec {
	t.Helper()
	s := abBase(t, host, inventory.Primary, addr, inventory.RoleDB)
	peer := "10.213.0.11"
	if addr == peer {
		peer = "10.213.0.10"
	}
	s.DB = &DB{
		PostgresVersion:     15,
		Name:                "shop",
		Port:                5432,
		MonitorAddress:      "10.213.0.12",
		AllowFrom:           []string{"10.213.0.20", "10.213.0.21", peer, "10.213.0.12"},
		Synchronous:         true,
		AppPassword:         tAppPW,
		ReplicationPassword: tReplPW,
		MonitorPassword:     tMonitorPW,
		Backup: &BackupClient{
			RepoHost:    "10.213.0.138",
			RepoHostKey: abKey(t, "host-backup").Public,
			Stanza:      "belay",
			ClientKey:   abKey(t, "pgbackrest-"+host),
			RepoKey:     abKey(t, "pgbackrest-repo").Public,
		},
	}
	return s
}

// monitorSpec is db-monitor.
func monitorSpec(t testing.TB) *Spec {
	t.Helper()
	s := abBase(t, "db-monitor", inventory.Primary, "10.213.0.12", inventory.RoleDBMonitor)
	s.DB = &DB{
		Monitor:             true,
		PostgresVersion:     15,
		Name:                "shop",
		Port:                5432,
		MonitorAddress:      "10.213.0.12",
		AllowFrom:           []string{"10.213.0.10", "10.213.0.11"},
		Synchronous:         true,
		AppPassword:         tAppPW,
		ReplicationPassword: tReplPW,
		MonitorPassword:     tMonitorPW,
	}
	return s
}

// dbDOSpec is a DigitalOcean-style data node: no planned address, the site CIDR allowed.
func dbDOSpec(t testing.TB) *Spec {
	t.Helper()
	s := dbSpec(t, "db-2", "10.213.0.11")
	s.Net.PrivateAddress = ""
	s.Net.PrivateInterface = "eth1"
	s.DB.AllowFrom = []string{"10.213.0.0/25"}
	s.DB.Synchronous = false
	s.DB.AppUser = "shop_owner"
	s.DB.ArchiveTimeout = 60
	return s
}

func TestDBRoles(t *testing.T) {
	cases := []struct {
		name    string
		spec    func(testing.TB) *Spec
		files   map[string]string // path -> "owner mode"
		absent  []string
		script  []string // fragments the setup script must hold
		noSetup []string // fragments it must not hold
	}{
		{
			name: "data node, synchronous",
			spec: func(t testing.TB) *Spec { return dbSpec(t, "db-1", "10.213.0.10") },
			files: map[string]string{
				belayPGConf:                       "root:root 0644",
				hbaBlock:                          "root:root 0644",
				bootstrapSQL:                      "postgres:postgres 0600",
				DBSetupScript:                     "root:root 0755",
				pgUnitPath:                        "root:root 0644",
				pgHome + "/.pgpass":               "postgres:postgres 0600",
				"/etc/pgbackrest/pgbackrest.conf": "root:postgres 0640",
				dbRemoteWrapper:                   "root:root 0755",
				pgHome + "/.ssh/authorized_keys":  "root:root 0644",
				pgHome + "/.ssh/id_ed25519":       "postgres:postgres 0600",
				pgHome + "/.ssh/known_hosts":      "root:root 0644",
				pgHome + "/.ssh/config":           "root:root 0644",
			},
			script: []string{
				"addr=10.213.0.10\n",
				"pg_autoctl create postgres --pgdata /var/lib/postgresql/15/main --pgctl /usr/lib/postgresql/15/bin/pg_ctl --pgport 5432 --hostname \"$addr\" --ssl-self-signed --ssl-mode require --auth scram-sha-256 --listen \"$addr,127.0.0.1\" --name db-1 --monitor 'postgres://autoctl_node@10.213.0.12:5432/pg_auto_failover?sslmode=require' --replication-quorum true --candidate-priority 50",
				"pg_autoctl config set --pgdata \"$pgdata\" timeout.network_partition_timeout 1\n",
				"pg_autoctl config set --pgdata \"$pgdata\" postgresql.listen_addresses \"$addr,127.0.0.1\"\n",
				"install -d -o postgres -g postgres -m 0750 /var/spool/pgbackrest",
				"systemctl enable --now pgautofailover.service",
			},
			noSetup: []string{"--skip-pg-hba", tAppPW, tReplPW, tMonitorPW},
		},
		{
			name: "data node on DigitalOcean, asynchronous",
			spec: dbDOSpec,
			files: map[string]string{
				pgHome + "/.pgpass": "postgres:postgres 0600",
				DBSetupScript:       "root:root 0755",
			},
			script: []string{
				"ip -4 -o addr show dev eth1 scope global",
				"--replication-quorum false",
				"--name db-2",
			},
			noSetup: []string{"addr=10.213.0.11"},
		},
		{
			name: "monitor",
			spec: monitorSpec,
			files: map[string]string{
				belayPGConf:   "root:root 0644",
				hbaBlock:      "root:root 0644",
				bootstrapSQL:  "postgres:postgres 0600",
				DBSetupScript: "root:root 0755",
				pgUnitPath:    "root:root 0644",
			},
			absent: []string{pgHome + "/.pgpass", "/etc/pgbackrest/pgbackrest.conf", pgHome + "/.ssh/authorized_keys", pgHome + "/.ssh/id_ed25519"},
			script: []string{
				"pg_autoctl create monitor --pgdata /var/lib/postgresql/15/main --pgctl /usr/lib/postgresql/15/bin/pg_ctl --pgport 5432 --hostname \"$addr\" --ssl-self-signed --ssl-mode require --skip-pg-hba; do",
				"pg_autoctl config set --pgdata \"$pgdata\" postgresql.listen_addresses \"$addr,127.0.0.1\"\n",
				`echo "belay postgres autoctl_node"`,
			},
			noSetup: []string{"timeout.network_partition_timeout", "--listen", "--auth", tMonitorPW},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.spec(t)
			c, raw := renderParsed(t, s)
			for path, want := range tc.files {
				f := fileAt(t, c, path)
				if got := f.Owner + " " + f.Permissions; got != want {
					t.Errorf("%s: owner/mode %q, want %q", path, got, want)
				}
				if !strings.HasPrefix(f.Owner, "root:") && !f.Defer {
					t.Errorf("%s: owned by %s but not deferred (the user may not exist when write_files runs)", path, f.Owner)
				}
			}
			for _, path := range tc.absent {
				if hasFile(c, path) {
					t.Errorf("%s rendered on %s", path, s.Hostname)
				}
			}
			setup := fileAt(t, c, DBSetupScript).Content
			for _, frag := range tc.script {
				if !strings.Contains(setup, frag) {
					t.Errorf("setup script lacks %q", frag)
				}
			}
			for _, frag := range tc.noSetup {
				if strings.Contains(setup, frag) {
					t.Errorf("setup script holds %q", frag)
				}
			}
			if !hasCmd(c, DBSetupScript) {
				t.Errorf("runcmd does not run %s", DBSetupScript)
			}
			// Secrets: the clear-text passwords appear only in .pgpass, never in
			// SQL (a verifier instead), scripts, units or config.
			for _, f := range c.WriteFiles {
				for _, pw := range []string{tAppPW, tReplPW, tMonitorPW} {
					if strings.Contains(f.Content, pw) && f.Path != pgHome+"/.pgpass" {
						t.Errorf("%s holds a clear-text password", f.Path)
					}
				}
			}
			if n := strings.Count(string(raw), tAppPW); n != 0 {
				t.Errorf("the app password appears %d times in the user data (the data node needs only its verifier)", n)
			}
			unit := fileAt(t, c, pgUnitPath).Content
			for _, frag := range []string{"User=postgres", "ExecStart=/usr/bin/pg_autoctl run", "Environment=PGDATA=/var/lib/postgresql/15/main", "ExecStartPre=" + DBSetupScript + " config", "Restart=always", "KillMode=mixed"} {
				if !strings.Contains(unit, frag) {
					t.Errorf("%s lacks %q", PGAutoFailoverUnit, frag)
				}
			}
			// The firewall (common part) opens PostgreSQL's port on the private interface to AllowFrom only.
			nft := fileAt(t, c, nftablesConf).Content
			line := ruleLine(nft, `comment "postgresql"`)
			if !strings.Contains(line, `iifname "`+s.Net.PrivateInterface+`"`) || !strings.Contains(line, "tcp dport 5432") {
				t.Errorf("nftables rule for PostgreSQL: %q", line)
			}
			for _, a := range s.DB.AllowFrom {
				if !strings.Contains(line, strings.TrimSuffix(a, "/32")) {
					t.Errorf("nftables rule lacks source %s: %q", a, line)
				}
			}
		})
	}
}

// confSettings parses a postgresql.conf fragment into name -> raw value.
func confSettings(t *testing.T, conf string) map[string]string {
	t.Helper()
	out := map[string]string{}
	re := regexp.MustCompile(`^([a-z_.]+)\s*=\s*(.*)$`)
	for _, l := range strings.Split(conf, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		m := re.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("not a setting line: %q", l)
		}
		if _, dup := out[m[1]]; dup {
			t.Errorf("%s set twice", m[1])
		}
		out[m[1]] = m[2]
	}
	return out
}

func TestDBPostgresConf(t *testing.T) {
	cases := []struct {
		name string
		spec func(testing.TB) *Spec
		want map[string]string
	}{
		{"data node", func(t testing.TB) *Spec { return dbSpec(t, "db-1", "10.213.0.10") }, map[string]string{
			"archive_mode":        "on",
			"archive_command":     "'pgbackrest --stanza=belay archive-push %p'",
			"archive_timeout":     "'30s'",
			"password_encryption": "'scram-sha-256'",
			"wal_sender_timeout":  "'4s'",
		}},
		{"data node, archive timeout from the spec", dbDOSpec, map[string]string{"archive_timeout": "'60s'"}},
		{"monitor", monitorSpec, map[string]string{
			"pgautofailover.health_check_period":               "1000",
			"pgautofailover.health_check_timeout":              "1000",
			"pgautofailover.health_check_max_retries":          "1",
			"pgautofailover.health_check_retry_delay":          "500",
			"pgautofailover.node_considered_unhealthy_timeout": "4000",
			"pgautofailover.primary_demote_timeout":            "7000",
			"password_encryption":                              "'scram-sha-256'",
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := renderParsed(t, tc.spec(t))
			set := confSettings(t, fileAt(t, c, belayPGConf).Content)
			for k, v := range tc.want {
				if set[k] != v {
					t.Errorf("%s = %q, want %q", k, set[k], v)
				}
			}
			// pg_auto_failover owns these; belay setting them would fight its FSM.
			for _, k := range []string{"synchronous_standby_names", "primary_conninfo", "synchronous_commit", "port", "listen_addresses"} {
				if v, ok := set[k]; ok {
					t.Errorf("belay sets %s = %s, which pg_auto_failover manages", k, v)
				}
			}
		})
	}
}

// TestMonitorGUCsExist checks every pgautofailover.* setting belay renders is
// one the installed monitor extension defines (a misspelt GUC is silently a
// placeholder, and the failover would keep the slow defaults).
func TestMonitorGUCsExist(t *testing.T) {
	so := "/usr/lib/postgresql/15/lib/pgautofailover.so"
	bin, err := os.ReadFile(so)
	if err != nil {
		t.Skipf("pg_auto_failover's monitor extension is not installed (%s); apt-get install postgresql-15-auto-failover", so)
	}
	c, _ := renderParsed(t, monitorSpec(t))
	n := 0
	for k := range confSettings(t, fileAt(t, c, belayPGConf).Content) {
		if !strings.HasPrefix(k, "pgautofailover.") {
			continue
		}
		n++
		if !strings.Contains(string(bin), k+"\x00") {
			t.Errorf("%s is not defined by %s", k, so)
		}
	}
	if n != 6 {
		t.Errorf("%d pgautofailover.* settings rendered, want 6", n)
	}
}

func TestDBHBA(t *testing.T) {
	for name, mk := range map[string]func(testing.TB) *Spec{
		"db-1":       func(t testing.TB) *Spec { return dbSpec(t, "db-1", "10.213.0.10") },
		"do":         dbDOSpec,
		"db-monitor": monitorSpec,
	} {
		t.Run(name, func(t *testing.T) {
			s := mk(t)
			c, _ := renderParsed(t, s)
			block := fileAt(t, c, hbaBlock).Content
			if !strings.HasPrefix(block, "# BEGIN belay") || !strings.HasSuffix(block, "# END belay\n") {
				t.Fatalf("hba block lacks its markers:\n%s", block)
			}
			var rules int
			for _, l := range strings.Split(block, "\n") {
				if l == "" || strings.HasPrefix(l, "#") {
					continue
				}
				rules++
				f := strings.Fields(l)
				if len(f) != 5 || f[0] != "hostssl" || f[4] != "scram-sha-256" {
					t.Errorf("hba line %q: want hostssl DB USER CIDR scram-sha-256", l)
					continue
				}
				if f[3] == "0.0.0.0/0" || f[3] == "::/0" || f[3] == "all" || f[1] == "all" || f[2] == "all" {
					t.Errorf("hba line %q is too wide", l)
				}
				if s.DB.Monitor && (f[1] != "pg_auto_failover" || f[2] != "autoctl_node") {
					t.Errorf("monitor hba line %q: only autoctl_node to pg_auto_failover expected", l)
				}
				if !s.DB.Monitor && (f[1] != s.DB.Name || f[2] != dbAppUser(s.DB.AppUser)) {
					t.Errorf("data node hba line %q: only the app's role to its database expected", l)
				}
			}
			if want := len(hbaSources(s.DB.AllowFrom)); rules != want {
				t.Errorf("%d hba rules, want one per AllowFrom source (%d)", rules, want)
			}
		})
	}
}

// TestDBApplyConfig runs the setup script's config mode on a PGDATA as
// pg_autoctl's initdb leaves it (--auth=trust): trust goes, belay's block and
// include land once however often it runs.
func TestDBApplyConfig(t *testing.T) {
	for _, mk := range []func(testing.TB) *Spec{func(t testing.TB) *Spec { return dbSpec(t, "db-1", "10.213.0.10") }, monitorSpec} {
		s := mk(t)
		t.Run(s.Hostname, func(t *testing.T) {
			c, _ := renderParsed(t, s)
			dir := t.TempDir()
			pgdata := filepath.Join(dir, "pgdata")
			block := writeTemp(t, dir, "block", fileAt(t, c, hbaBlock).Content, 0o644)
			script := strings.NewReplacer(
				"pgdata="+PGDataPath(15)+"\n", "pgdata="+pgdata+"\n",
				"cat "+hbaBlock, "cat "+block,
			).Replace(fileAt(t, c, DBSetupScript).Content)
			p := writeTemp(t, dir, "setup", script, 0o755)
			writeTemp(t, pgdata, "PG_VERSION", "15\n", 0o600)
			writeTemp(t, pgdata, "postgresql.conf", "include 'postgresql-auto-failover.conf' # Auto-generated by pg_auto_failover, do not remove\nmax_connections = 100\n", 0o600)
			writeTemp(t, pgdata, "pg_ident.conf", "# MAPNAME SYSTEM-USERNAME PG-USERNAME\n", 0o600)
			writeTemp(t, pgdata, "pg_hba.conf", `# TYPE  DATABASE        USER            ADDRESS                 METHOD
local   all             all                                     trust
host    all             all             127.0.0.1/32            trust
host    all             all             ::1/128                 trust
local   replication     all                                     trust
host    replication     all             127.0.0.1/32            trust
host    replication     all             ::1/128                 trust
hostssl "postgres" "postgres" 10.213.0.10/32 scram-sha-256 # Auto-generated by pg_auto_failover
`, 0o600)
			for i := 0; i < 2; i++ {
				if out, err := exec.Command("sh", p, "config").CombinedOutput(); err != nil {
					t.Fatalf("setup config (run %d): %v\n%s", i+1, err, out)
				}
			}
			hba := readFile(t, filepath.Join(pgdata, "pg_hba.conf"))
			if strings.Contains(hba, "trust") {
				t.Errorf("pg_hba.conf still trusts:\n%s", hba)
			}
			for _, want := range []string{
				"local   all             all                                     peer map=belay\n",
				"host    all             all             127.0.0.1/32            scram-sha-256\n",
				"local   replication     all                                     peer map=belay\n",
				"# Auto-generated by pg_auto_failover\n",
			} {
				if !strings.Contains(hba, want) {
					t.Errorf("pg_hba.conf lacks %q:\n%s", want, hba)
				}
			}
			if n := strings.Count(hba, "# BEGIN belay"); n != 1 {
				t.Errorf("belay block %d times in pg_hba.conf", n)
			}
			conf := readFile(t, filepath.Join(pgdata, "postgresql.conf"))
			if n := strings.Count(conf, "include_if_exists = '"+belayPGConf+"'\n"); n != 1 || !strings.HasSuffix(conf, "include_if_exists = '"+belayPGConf+"'\n") {
				t.Errorf("postgresql.conf must include belay's fragment once, last:\n%s", conf)
			}
			ident := readFile(t, filepath.Join(pgdata, "pg_ident.conf"))
			if n := strings.Count(ident, "belay postgres postgres\n"); n != 1 {
				t.Errorf("pg_ident.conf: belay map %d times:\n%s", n, ident)
			}
			if got := strings.Contains(ident, "belay postgres autoctl_node\n"); got != s.DB.Monitor {
				t.Errorf("pg_ident.conf maps postgres to autoctl_node: %v, want %v", got, s.DB.Monitor)
			}
		})
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestDBPgpassAndSQL(t *testing.T) {
	c, _ := renderParsed(t, dbSpec(t, "db-1", "10.213.0.10"))
	pgpass := fileAt(t, c, pgHome+"/.pgpass").Content
	want := "10.213.0.12:5432:pg_auto_failover:autoctl_node:" + tMonitorPW + "\n*:5432:*:pgautofailover_replicator:" + tReplPW + "\n"
	if pgpass != want {
		t.Errorf(".pgpass:\n%s\nwant\n%s", pgpass, want)
	}
	if got := pgpassEscape(`a:b\c`); got != `a\:b\\c` {
		t.Errorf("pgpassEscape = %q", got)
	}
	sql := fileAt(t, c, bootstrapSQL).Content
	for _, frag := range []string{
		"ALTER ROLE pgautofailover_replicator PASSWORD '" + scramVerifier("pgautofailover_replicator", tReplPW) + "';",
		"SELECT 'CREATE ROLE app' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'app')\n\\gexec\n",
		"SELECT 'CREATE DATABASE shop OWNER app' WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'shop')\n\\gexec\n",
		"REVOKE ALL ON DATABASE shop FROM PUBLIC;",
	} {
		if !strings.Contains(sql, frag) {
			t.Errorf("bootstrap SQL lacks %q:\n%s", frag, sql)
		}
	}
	mc, _ := renderParsed(t, monitorSpec(t))
	if got, want := fileAt(t, mc, bootstrapSQL).Content, "ALTER ROLE autoctl_node PASSWORD '"+scramVerifier("autoctl_node", tMonitorPW)+"';\n"; !strings.HasSuffix(got, want) {
		t.Errorf("monitor bootstrap SQL:\n%s\nwant it to end with\n%s", got, want)
	}
}

func TestSCRAMVerifier(t *testing.T) {
	v := scramVerifier("app", "pencil-pencil-pencil")
	re := regexp.MustCompile(`^SCRAM-SHA-256\$4096:[A-Za-z0-9+/]{22}==\$[A-Za-z0-9+/]{43}=:[A-Za-z0-9+/]{43}=$`)
	if !re.MatchString(v) {
		t.Errorf("verifier %q is not PostgreSQL's SCRAM-SHA-256 format", v)
	}
	if v != scramVerifier("app", "pencil-pencil-pencil") {
		t.Error("verifier is not deterministic (user data would change every run)")
	}
	if v == scramVerifier("app2", "pencil-pencil-pencil") || v == scramVerifier("app", "pencil-pencil-pencil2") {
		t.Error("verifier does not depend on role and password")
	}
}

func TestDBRemoteWrapper(t *testing.T) {
	c, _ := renderParsed(t, dbSpec(t, "db-1", "10.213.0.10"))
	dir := t.TempDir()
	stub := writeTemp(t, dir, "pgbackrest-stub", "#!/bin/sh\nprintf 'pgbackrest:%s\\n' \"$@\"\n", 0o755)
	psqlStub := writeTemp(t, dir, "psql-stub", "#!/bin/sh\nprintf 'psql:%s\\n' \"$@\"\n", 0o755)
	wrapper := writeTemp(t, dir, "wrapper", strings.NewReplacer("exec /usr/bin/pgbackrest", "exec "+stub, "exec /usr/bin/psql", "exec "+psqlStub).Replace(fileAt(t, c, dbRemoteWrapper).Content), 0o755)
	if ak := fileAt(t, c, pgHome+"/.ssh/authorized_keys").Content; !strings.Contains(ak, `restrict,command="`+dbRemoteWrapper+`" `+abKey(t, "pgbackrest-repo").Public) {
		t.Errorf("authorized_keys does not force the wrapper on the repository key:\n%s", ak)
	}

	real := capturedPgRemoteCommand(t)
	cases := []struct {
		name, cmd string
		ok        bool
	}{
		{"real stanza-create from the repository host", real, true},
		{"backup", "pgbackrest --exec-id=1-ab --log-level-console=off --log-level-file=off --log-level-stderr=error --pg1-path=/var/lib/postgresql/15/main --pg1-port=5432 --process=0 --remote-type=pg --stanza=belay backup:remote", true},
		{"backup canary", dbCanaryCommand, true},
		{"interactive login", "", false},
		{"shell", "sh -c id", false},
		{"psql with other arguments", "psql -X -d postgres -c 'DROP DATABASE shop'", false},
		{"metacharacters", "pgbackrest --remote-type=pg --stanza=belay check:remote; id", false},
		{"other stanza", strings.Replace(real, "--stanza=belay", "--stanza=other", 1), false},
		{"repo remote", strings.Replace(real, "--remote-type=pg", "--remote-type=repo", 1), false},
		{"no remote type", strings.Replace(real, " --remote-type=pg", "", 1), false},
		{"other data directory", strings.Replace(real, "--pg1-path=/var/lib/postgresql/15/main", "--pg1-path=/etc", 1), false},
		{"other config", strings.Replace(real, "--process=0", "--process=0 --config=/tmp/x.conf", 1), false},
		{"onward host", strings.Replace(real, "--process=0", "--process=0 --pg1-host=evil", 1), false},
		{"ssh command", strings.Replace(real, "--process=0", "--process=0 --cmd-ssh=/bin/sh", 1), false},
		{"not a remote command", strings.TrimSuffix(real, ":remote"), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(wrapper)
			cmd.Env = []string{"PATH=/usr/bin:/bin", "SSH_ORIGINAL_COMMAND=" + tc.cmd, "SSH_CLIENT=192.0.2.1 5555 22"}
			out, err := cmd.CombinedOutput()
			if !tc.ok {
				if err == nil || !strings.Contains(string(out), "refused") {
					t.Errorf("accepted %q (err %v):\n%s", tc.cmd, err, out)
				}
				return
			}
			if err != nil {
				t.Fatalf("refused %q: %v\n%s", tc.cmd, err, out)
			}
			f := strings.Fields(tc.cmd)
			prog := "pgbackrest:"
			if f[0] == "psql" {
				prog = "psql:"
			}
			want := prog + strings.Join(f[1:], "\n"+prog) + "\n"
			if string(out) != want {
				t.Errorf("ran\n%s\nwant\n%s", out, want)
			}
		})
	}
}

// capturedPgRemoteCommand runs the real pgBackRest as the repository host does
// (pg1-host = this node) with a fake ssh, and returns the remote command it
// would run on the data node.
func capturedPgRemoteCommand(t *testing.T) string {
	t.Helper()
	pgbackrest := tool(t, "pgbackrest")
	dir := t.TempDir()
	record := filepath.Join(dir, "ssh-args")
	fake := writeTemp(t, dir, "fake-ssh", "#!/bin/sh\nprintf '%s\\n' \"$@\" > "+record+"\nexit 255\n", 0o755)
	conf := writeTemp(t, dir, "repo.conf", "[global]\nrepo1-path="+dir+"/repo\n[belay]\npg1-host=db.test\npg1-host-user=postgres\npg1-path="+PGDataPath(15)+"\npg1-port=5432\n", 0o644)
	cmd := exec.Command(pgbackrest, "--config="+conf, "--stanza=belay", "--cmd-ssh="+fake, "--log-path="+dir, "--log-level-console=off", "stanza-create")
	_ = cmd.Run() // fails by design: the fake ssh exits 255
	raw, err := os.ReadFile(record)
	if err != nil {
		t.Fatalf("pgbackrest did not call ssh: %v", err)
	}
	args := strings.Split(strings.TrimSpace(string(raw)), "\n")
	if len(args) < 2 || args[len(args)-2] != "postgres@db.test" {
		t.Fatalf("unexpected ssh arguments %q", args)
	}
	return args[len(args)-1]
}

// TestDBPgBackRestConfigParses loads the data node's pgbackrest.conf with the
// real pgBackRest: archive-push must get as far as calling ssh for repo1-host.
func TestDBPgBackRestConfigParses(t *testing.T) {
	pgbackrest := tool(t, "pgbackrest")
	c, _ := renderParsed(t, dbSpec(t, "db-1", "10.213.0.10"))
	dir := t.TempDir()
	conf := strings.NewReplacer("log-path=/var/log/pgbackrest", "log-path="+dir, "spool-path="+pgSpoolPath, "spool-path="+dir).Replace(fileAt(t, c, "/etc/pgbackrest/pgbackrest.conf").Content)
	p := writeTemp(t, dir, "pgbackrest.conf", conf, 0o644)
	record := filepath.Join(dir, "ssh-args")
	fake := writeTemp(t, dir, "fake-ssh", "#!/bin/sh\nprintf '%s\\n' \"$@\" > "+record+"\nexit 255\n", 0o755)
	out, _ := exec.Command(pgbackrest, "--config="+p, "--stanza=belay", "--cmd-ssh="+fake, "--lock-path="+dir, "--log-level-console=warn", "info").CombinedOutput()
	raw, err := os.ReadFile(record)
	if err != nil {
		t.Fatalf("pgbackrest did not reach ssh with the rendered config: %v\n%s", err, out)
	}
	if !strings.Contains(string(raw), "pgbackrest@10.213.0.138\n") {
		t.Errorf("ssh target: %q, want pgbackrest@10.213.0.138", raw)
	}
	if strings.Contains(string(out), "invalid") || strings.Contains(string(out), "not valid") {
		t.Errorf("pgbackrest complains about the config:\n%s", out)
	}
}

func TestDBScripts(t *testing.T) {
	for _, mk := range []func(testing.TB) *Spec{func(t testing.TB) *Spec { return dbSpec(t, "db-1", "10.213.0.10") }, dbDOSpec, monitorSpec} {
		s := mk(t)
		c, _ := renderParsed(t, s)
		for _, path := range []string{DBSetupScript, DBReseedScript, dbRemoteWrapper} {
			if !hasFile(c, path) {
				continue
			}
			p := writeTemp(t, t.TempDir(), filepath.Base(path), fileAt(t, c, path).Content, 0o755)
			if out, err := exec.Command("sh", "-n", p).CombinedOutput(); err != nil {
				t.Errorf("%s %s: sh -n: %v\n%s", s.Hostname, path, err, out)
			}
			shellcheck(t, p)
		}
	}
}

func TestDBValidation(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(s *Spec)
		want   string
	}{
		{"monitor flag on a data node", func(s *Spec) { s.DB.Monitor = true }, "Spec.DB.Monitor"},
		{"db and monitor on one host", func(s *Spec) { s.Roles = append(s.Roles, inventory.RoleDBMonitor) }, "Spec.Roles"},
		{"old PostgreSQL", func(s *Spec) { s.DB.PostgresVersion = 9 }, "Spec.DB.PostgresVersion"},
		{"bad port", func(s *Spec) { s.DB.Port = 0 }, "Spec.DB.Port"},
		{"database name with a quote", func(s *Spec) { s.DB.Name = "shop'; DROP" }, "Spec.DB.Name"},
		{"database postgres", func(s *Spec) { s.DB.Name = "postgres" }, "Spec.DB.Name"},
		{"reserved app role", func(s *Spec) { s.DB.AppUser = "pgautofailover_replicator" }, "Spec.DB.AppUser"},
		{"monitor address not an IP", func(s *Spec) { s.DB.MonitorAddress = "monitor" }, "Spec.DB.MonitorAddress"},
		{"monitor address is self", func(s *Spec) { s.DB.MonitorAddress = "10.213.0.10" }, "Spec.DB.MonitorAddress"},
		{"no AllowFrom", func(s *Spec) { s.DB.AllowFrom = nil }, "Spec.DB.AllowFrom"},
		{"AllowFrom everything", func(s *Spec) { s.DB.AllowFrom = []string{"0.0.0.0/0"} }, "Spec.DB.AllowFrom[0]"},
		{"AllowFrom public", func(s *Spec) { s.DB.AllowFrom = []string{"10.213.0.20", "203.0.113.7"} }, "Spec.DB.AllowFrom[1]"},
		{"AllowFrom garbage", func(s *Spec) { s.DB.AllowFrom = []string{"10.0.0.0/8 "} }, "Spec.DB.AllowFrom[0]"},
		{"short app password", func(s *Spec) { s.DB.AppPassword = "x" }, "Spec.DB.AppPassword"},
		{"replication password with newline", func(s *Spec) { s.DB.ReplicationPassword = "0123456789abcdef\nx" }, "Spec.DB.ReplicationPassword"},
		{"no monitor password", func(s *Spec) { s.DB.MonitorPassword = "" }, "Spec.DB.MonitorPassword"},
		{"archive timeout", func(s *Spec) { s.DB.ArchiveTimeout = 5 }, "Spec.DB.ArchiveTimeout"},
		{"no backup client", func(s *Spec) { s.DB.Backup = nil }, "Spec.DB.Backup"},
		{"repo host", func(s *Spec) { s.DB.Backup.RepoHost = "repo host" }, "Spec.DB.Backup.RepoHost"},
		{"repo host key", func(s *Spec) { s.DB.Backup.RepoHostKey = "ssh-ed25519 nope" }, "Spec.DB.Backup.RepoHostKey"},
		{"stanza", func(s *Spec) { s.DB.Backup.Stanza = "a b" }, "Spec.DB.Backup.Stanza"},
		{"client key mismatch", func(s *Spec) { s.DB.Backup.ClientKey.Public = abKey(t, "other").Public }, "Spec.DB.Backup.ClientKey"},
		{"repo key", func(s *Spec) { s.DB.Backup.RepoKey = "" }, "Spec.DB.Backup.RepoKey"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := dbSpec(t, "db-1", "10.213.0.10")
			tc.mutate(s)
			_, err := Render(s)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Render: %v, want an error naming %s", err, tc.want)
			}
		})
	}
	t.Run("backup client on the monitor", func(t *testing.T) {
		s := monitorSpec(t)
		s.DB.Backup = dbSpec(t, "db-1", "10.213.0.10").DB.Backup
		if _, err := Render(s); err == nil || !strings.Contains(err.Error(), "Spec.DB.Backup") {
			t.Errorf("Render: %v, want an error naming Spec.DB.Backup", err)
		}
	})
	t.Run("monitor role without the flag", func(t *testing.T) {
		s := monitorSpec(t)
		s.DB.Monitor = false
		if _, err := Render(s); err == nil || !strings.Contains(err.Error(), "Spec.DB.Monitor") {
			t.Errorf("Render: %v, want an error naming Spec.DB.Monitor", err)
		}
	})
}

func TestDBGolden(t *testing.T) {
	for name, mk := range map[string]func(testing.TB) *Spec{
		"db":         func(t testing.TB) *Spec { return dbSpec(t, "db-1", "10.213.0.10") },
		"db-monitor": monitorSpec,
	} {
		t.Run(name, func(t *testing.T) {
			checkGolden(t, name, mustRender(t, mk(t)))
		})
	}
}

// TestDBConfigWithPostgres applies the data node's rendered config to a real
// PostgreSQL 15 cluster initialised as pg_autoctl does (initdb --auth=trust) and
// runs the bootstrap SQL: the SCRAM verifiers belay computes must accept the
// clear-text passwords, loopback TCP must want a password, the postgres OS user
// gets in over the socket through the peer map, the app owns its database, and
// the bootstrap is idempotent. Loopback and a unix socket in a temp dir only.
func TestDBConfigWithPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skips the PostgreSQL round trip")
	}
	pgbin := "/usr/lib/postgresql/15/bin"
	runuser := tool(t, "runuser")
	if _, err := os.Stat(pgbin + "/initdb"); err != nil {
		t.Skipf("PostgreSQL 15 is not installed (%s/initdb); apt-get install postgresql-15", pgbin)
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to run PostgreSQL as the postgres user; not root")
	}
	pgUser, err := user.Lookup("postgres")
	if err != nil {
		t.Skip("no postgres user (installed by postgresql-common)")
	}
	s := dbSpec(t, "db-1", "10.213.0.10")
	c, _ := renderParsed(t, s)

	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	pgdata := filepath.Join(dir, "pgdata")
	sock := filepath.Join(dir, "sock")
	block := writeTemp(t, dir, "hba-block", fileAt(t, c, hbaBlock).Content, 0o644)
	// belay.conf minus archiving (no repository here), plus the test's socket and port.
	baseConf := strings.NewReplacer("archive_mode = on", "archive_mode = off").Replace(fileAt(t, c, belayPGConf).Content) +
		fmt.Sprintf("listen_addresses = '127.0.0.1'\nunix_socket_directories = '%s'\n", sock)
	confPath := writeTemp(t, dir, "belay.conf", baseConf, 0o644)
	setup := writeTemp(t, dir, "setup", strings.NewReplacer(
		"pgdata="+PGDataPath(15)+"\n", "pgdata="+pgdata+"\n",
		"cat "+hbaBlock, "cat "+block,
		belayPGConf, confPath,
	).Replace(fileAt(t, c, DBSetupScript).Content), 0o755)
	sql := writeTemp(t, dir, "bootstrap.sql", fileAt(t, c, bootstrapSQL).Content, 0o600)
	if err := os.MkdirAll(sock, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("chown", "-R", pgUser.Uid+":"+pgUser.Gid, dir).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v\n%s", err, out)
	}
	as := func(env []string, script string) (string, error) {
		cmd := exec.Command(runuser, "-u", "postgres", "--", "sh", "-c", script)
		cmd.Env = append([]string{"PATH=" + pgbin + ":/usr/bin:/bin", "HOME=" + dir, "LANG=C", "PGCONNECT_TIMEOUT=5"}, env...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := as(nil, fmt.Sprintf("initdb -D %s -U postgres --auth=trust >/dev/null && %s config", pgdata, setup)); err != nil {
		t.Fatalf("initdb/config: %v\n%s", err, out)
	}
	port := startPostgresOnFreePort(t, dir+"/pg.log", func(port int) (string, error) {
		if err := os.WriteFile(confPath, []byte(baseConf+fmt.Sprintf("port = %d\n", port)), 0o644); err != nil {
			return "", err
		}
		return as(nil, fmt.Sprintf("pg_ctl -D %s -l %s/pg.log -w start >/dev/null", pgdata, dir))
	})
	t.Cleanup(func() { _, _ = as(nil, "pg_ctl -D "+pgdata+" -m immediate -w stop") })

	local := fmt.Sprintf("psql -X -q -t -A -v ON_ERROR_STOP=1 -h %s -p %d -d postgres", sock, port)
	// pg_autoctl creates its roles before belay's bootstrap runs.
	if out, err := as(nil, local+" -c 'CREATE ROLE pgautofailover_replicator WITH LOGIN REPLICATION'"); err != nil {
		t.Fatalf("peer login as postgres over the socket: %v\n%s", err, out)
	}
	for i := 0; i < 2; i++ {
		if out, err := as(nil, local+" -f "+sql); err != nil {
			t.Fatalf("bootstrap SQL (run %d): %v\n%s", i+1, err, out)
		}
	}
	tcp := func(user, db, password string) (string, error) {
		var env []string
		if password != "" {
			env = append(env, "PGPASSWORD="+password)
		}
		return as(env, fmt.Sprintf("psql -X -q -t -A -w -h 127.0.0.1 -p %d -U %s -d %s -c 'SELECT current_user'", port, user, db))
	}
	cases := []struct {
		user, db, password string
		ok                 bool
	}{
		{"app", "shop", tAppPW, true},
		{"pgautofailover_replicator", "postgres", tReplPW, true},
		{"app", "shop", "wrong-password-0123456789", false},
		{"app", "shop", "", false},
		{"postgres", "postgres", "", false}, // initdb's loopback trust is gone
	}
	for _, tc := range cases {
		out, err := tcp(tc.user, tc.db, tc.password)
		if tc.ok && (err != nil || strings.TrimSpace(out) != tc.user) {
			t.Errorf("%s@%s with its password over TCP: %v\n%s", tc.user, tc.db, err, out)
		}
		if !tc.ok && err == nil {
			t.Errorf("%s@%s with password %q over TCP: accepted, want refused", tc.user, tc.db, tc.password)
		}
	}
	owner, err := as(nil, local+` -c "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'shop'"`)
	if err != nil || strings.TrimSpace(owner) != "app" {
		t.Errorf("owner of database shop: %q %v, want app", owner, err)
	}
	// The routers' DSN (roles.Router.DatabaseURL) is this role on this
	// database: router-sync creates the mapping's schema at every start.
	schema := writeTemp(t, dir, "router-schema.sql", router.Schema, 0o644)
	for i := 0; i < 2; i++ {
		if out, err := as([]string{"PGPASSWORD=" + tAppPW}, fmt.Sprintf("psql -X -q -w -v ON_ERROR_STOP=1 -h 127.0.0.1 -p %d -U app -d shop -f %s", port, schema)); err != nil {
			t.Errorf("router.Schema as the app role (run %d): %v\n%s", i+1, err, out)
		}
	}
	settings, err := as(nil, local+` -c "SELECT name || '=' || setting FROM pg_settings WHERE name IN ('password_encryption','wal_sender_timeout','archive_timeout') ORDER BY name"`)
	if want := "archive_timeout=30\npassword_encryption=scram-sha-256\nwal_sender_timeout=4000\n"; err != nil || settings != want {
		t.Errorf("settings from belay.conf:\n%s (%v)\nwant\n%s", settings, err, want)
	}
}

// TestDBCloudInitSchema validates the DB roles' user data with cloud-init's own schema.
func TestDBCloudInitSchema(t *testing.T) {
	ci := tool(t, "cloud-init")
	for name, mk := range map[string]func(testing.TB) *Spec{
		"db":         func(t testing.TB) *Spec { return dbSpec(t, "db-1", "10.213.0.10") },
		"db-do":      dbDOSpec,
		"db-monitor": monitorSpec,
		"standby-db": standbyDBSpec,
	} {
		t.Run(name, func(t *testing.T) {
			f := writeTemp(t, t.TempDir(), "user-data", string(mustRender(t, mk(t))), 0o600)
			out, err := exec.Command(ci, "schema", "-c", f).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "Valid cloud-config") {
				t.Fatalf("cloud-init schema: %v\n%s", err, out)
			}
			if strings.Contains(strings.ToLower(string(out)), "deprecat") {
				t.Errorf("cloud-init reports deprecated keys:\n%s", out)
			}
		})
	}
}

// TestFailoverBudget pins the relations between the tuning constants that the
// fencing argument in docs/ha-engine.md rests on (configuration invariants, not
// timings): the walsender outlives the keeper's first failed monitor call, and a
// partitioned primary's worst-case fencing ends before the standby may take writes.
func TestFailoverBudget(t *testing.T) {
	const (
		monitorConnectTimeoutS = 2 // pg_autoctl's POSTGRES_CONNECT_TIMEOUT
		keeperSleepS           = 1 // PG_AUTOCTL_KEEPER_SLEEP_TIME
		fastShutdownS          = 1
	)
	w, err := strconv.Atoi(strings.TrimSuffix(walSenderTimeout, "s"))
	if err != nil {
		t.Fatalf("walSenderTimeout %q: %v", walSenderTimeout, err)
	}
	loop := monitorConnectTimeoutS + keeperSleepS
	if w <= loop {
		t.Errorf("wal_sender_timeout %ds <= one failed keeper loop (%ds): the keeper would never record the standby and never fence", w, loop)
	}
	fenced := w + networkPartitionTimeoutS + 1 + loop + fastShutdownS
	writable := (unhealthyTimeoutMs + primaryDemoteTimeoutMs) / 1000
	if fenced >= writable {
		t.Errorf("a partitioned primary fences by %ds, but the standby may take writes from %ds", fenced, writable)
	}
	if r, err := strconv.Atoi(strings.TrimSuffix(walReceiverTimeout, "s")); err != nil || 2*r <= w {
		t.Errorf("wal_receiver_timeout %s must exceed the walsender's keepalive interval (%ds)", walReceiverTimeout, w/2)
	}
}

// TestDBReseedRefusesWrongMode: the reseed script only accepts the modes of
// its host's part (a monitor cannot be made a primary), before touching anything.
func TestDBReseedRefusesWrongMode(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the script checks for root before its mode")
	}
	for _, tc := range []struct {
		spec func(testing.TB) *Spec
		mode string
		want string
	}{
		{func(t testing.TB) *Spec { return dbSpec(t, "db-1", "10.213.0.10") }, "monitor", "mode 'monitor': expected primary|replica (this host is a data node)"},
		{func(t testing.TB) *Spec { return dbSpec(t, "db-1", "10.213.0.10") }, "", "mode '': expected primary|replica"},
		{monitorSpec, "primary", "mode 'primary': expected monitor (this host is a monitor)"},
	} {
		c, _ := renderParsed(t, tc.spec(t))
		p := writeTemp(t, t.TempDir(), "reseed", fileAt(t, c, DBReseedScript).Content, 0o755)
		out, err := exec.Command("sh", p, tc.mode).CombinedOutput()
		if err == nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("reseed %q: %v %s, want a refusal containing %q", tc.mode, err, out, tc.want)
		}
	}
}
