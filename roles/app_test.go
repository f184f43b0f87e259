package roles

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestAppRole(t *testing.T) {
	type check struct {
		keepalived, appEnabled, discovery bool
	}
	cases := []struct {
		name string
		spec func(testing.TB) *Spec
		want check
	}{
		{"app (pinned peers)", abAppSpec, check{keepalived: true, appEnabled: true}},
		{"app (digitalocean discovery)", abAppDOSpec, check{keepalived: true, appEnabled: true, discovery: true}},
		{"standby-app", abStandbyAppSpec, check{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.spec(t)
			c, _ := renderParsed(t, s)
			if u := userEntry(c, "deploy"); u == nil || u["groups"] != "systemd-journal" {
				t.Errorf("deploy user = %v, want it in systemd-journal (unit logs for failed health checks)", u)
			}
			if u := userEntry(c, AppUser); u == nil || u["system"] != true || u["shell"] != "/usr/sbin/nologin" {
				t.Errorf("%s user = %v", AppUser, u)
			}
			env := fileAt(t, c, "/etc/belay/web.env")
			if env.Owner != "root:"+AppUser || env.Permissions != "0640" || !env.Defer || !strings.Contains(env.Content, "DATABASE_URL="+s.App.DatabaseURL+"\n") {
				t.Errorf("env file = %+v", env)
			}
			stable := fileAt(t, c, "/etc/systemd/system/belay-app@.service").Content
			canary := fileAt(t, c, "/etc/systemd/system/belay-canary@.service").Content
			for _, want := range []string{"User=belay-app", "EnvironmentFile=/etc/belay/%i.env", "Restart=on-failure", "KillSignal=SIGTERM", "TimeoutStopSec=30"} {
				if !strings.Contains(stable, want+"\n") || !strings.Contains(canary, want+"\n") {
					t.Errorf("units lack %q", want)
				}
			}
			if !strings.Contains(stable, "BELAY_SLOT=stable") || !strings.Contains(canary, "BELAY_SLOT=canary") ||
				!strings.Contains(stable, "/srv/%i/current/start") || !strings.Contains(canary, "/srv/%i/canary/start") {
				t.Error("units do not run their own slot")
			}
			if p := fileAt(t, c, "/etc/systemd/system/belay-app@web.service.d/10-belay-port.conf").Content; !strings.Contains(p, "PORT=3000\n") {
				t.Errorf("stable port drop-in = %q", p)
			}
			if p := fileAt(t, c, "/etc/systemd/system/belay-canary@web.service.d/10-belay-port.conf").Content; !strings.Contains(p, "PORT=3001\n") {
				t.Errorf("canary port drop-in = %q", p)
			}
			if r := fileAt(t, c, AppRoutingFile("web")); r.Owner != "root:root" || r.Content != "# Managed by belay deploy; rewritten at every stage change. App web, stage stable.\nset $belay_pool stable;\n" {
				t.Errorf("routing.conf = %+v", r)
			}
			ng := fileAt(t, c, "/etc/nginx/conf.d/belay-web.conf").Content
			for _, want := range []string{"include /etc/belay/nginx/web/http.conf;\nserver {", "include /etc/belay/nginx/web/routing.conf;", "access_log /var/log/nginx/belay/web.access.log belay;", "proxy_pass http://belay_web_$belay_pool;"} {
				if !strings.Contains(ng, want) {
					t.Errorf("nginx conf lacks %q", want)
				}
			}
			if strings.Contains(ng, "\nupstream ") {
				t.Error("the base config defines upstreams; they belong to the deployer's http.conf")
			}
			hc := fileAt(t, c, AppHTTPFile("web"))
			wantMembers := map[bool]string{true: "    server 10.213.0.20:3000;\n    server 10.213.0.21:3000;\n", false: "    server 127.0.0.1:3000;\n"}[s.Net.PrivateAddress == "10.213.0.20"]
			if s.App.Standby {
				wantMembers = "    server 10.213.0.148:3000;\n"
			}
			if want := "# Managed by belay deploy; rewritten at every stage change. App web, stage stable.\nupstream belay_web_stable {\n    zone belay_web_stable 64k;\n" + wantMembers + "    keepalive 16;\n}\n"; hc.Content != want || hc.Owner != "root:root" {
				t.Errorf("initial http.conf = %+v, want content\n%s", hc, want)
			}
			if st := fileAt(t, c, AppStageFile("web")); st.Owner != "root:root" || !strings.Contains(st.Content, `"stage":{"kind":"stable"}`) {
				t.Errorf("initial stage.json = %+v", st)
			}
			lf := fileAt(t, c, "/etc/nginx/conf.d/00-belay-logformat.conf").Content
			if !strings.Contains(lf, `'$time_iso8601\t$remote_addr\t$status\t$request_time\t$upstream_addr\t$upstream_status\t$upstream_response_time\t$belay_pool\t"$request"'`) {
				t.Errorf("log format = %q", lf)
			}
			for _, dir := range []string{"/srv/web", "/srv/web/releases"} {
				if !hasCmd(c, "install", "-d", "-m", "0755", "-o", "deploy", "-g", "deploy", dir) {
					t.Errorf("%s is not created for the deploy user", dir)
				}
			}
			// nginx (root) parses what is in it: root's, never the deploy user's.
			if !hasCmd(c, "install", "-d", "-m", "0755", "-o", "root", "-g", "root", "/etc/belay/nginx/web") {
				t.Error("/etc/belay/nginx/web is not created root-owned")
			}
			if !hasCmd(c, "install", "-d", "-m", "2775", "-o", "deploy", "-g", AppUser, "/srv/web/shared") {
				t.Error("/srv/web/shared is not shared between deploy and the app")
			}
			if got := hasCmd(c, "systemctl", "enable", AppUnit("web")); got != tc.want.appEnabled {
				t.Errorf("app unit enabled = %v, want %v", got, tc.want.appEnabled)
			}
			if got := hasFile(c, "/etc/keepalived/keepalived.conf"); got != tc.want.keepalived {
				t.Errorf("keepalived.conf present = %v, want %v", got, tc.want.keepalived)
			}
			if got := hasCmd(c, "systemctl", "enable", "keepalived.service"); got != tc.want.keepalived {
				t.Errorf("keepalived enabled = %v, want %v", got, tc.want.keepalived)
			}
			if got := hasFile(c, "/etc/systemd/system/belay-vrrp-peers.service"); got != tc.want.discovery {
				t.Errorf("peer discovery unit present = %v, want %v", got, tc.want.discovery)
			}
			// restic: hourly snapshot of shared with the pinned repo host key.
			if tm := fileAt(t, c, "/etc/systemd/system/belay-restic-backup.timer").Content; !strings.Contains(tm, "OnCalendar=hourly") {
				t.Errorf("restic timer = %q", tm)
			}
			kh := fileAt(t, c, "/etc/belay/restic-known_hosts").Content
			if kh != "10.213.0.138 "+s.App.RepoHostKey+"\n" {
				t.Errorf("restic known_hosts = %q", kh)
			}
			script := fileAt(t, c, "/usr/local/bin/belay-restic-backup").Content
			for _, want := range []string{"StrictHostKeyChecking=yes", "UserKnownHostsFile=/etc/belay/restic-known_hosts", "/srv/web/shared", "RESTIC_PASSWORD_FILE=/etc/belay/restic-web.pass"} {
				if !strings.Contains(script, want) {
					t.Errorf("restic script lacks %q", want)
				}
			}
			if k := fileAt(t, c, "/etc/belay/restic-backup.key"); k.Permissions != "0600" || k.Content != s.App.BackupKey.PrivatePEM {
				t.Error("restic key is not the BackupKey with mode 0600")
			}
		})
	}
}

func TestKeepalivedConf(t *testing.T) {
	c, _ := renderParsed(t, abAppSpec(t))
	k := fileAt(t, c, "/etc/keepalived/keepalived.conf").Content
	for _, want := range []string{
		"vrrp_version 3", "enable_script_security", "script_user " + KeepalivedScriptUser,
		"state BACKUP", "nopreempt", "interface enp7s0", "virtual_router_id 51", "priority 150", "advert_int 0.1",
		"unicast_src_ip 10.213.0.20", "check_unicast_src", "10.213.0.100/32 dev eth0",
		"-H Host:belay-app-health-web http://127.0.0.2/healthz", NginxHealthURL, "fall 3", "rise 2",
		`notify_master "/usr/local/bin/belay vip claim --provider hetzner --ip 10.213.0.100 --token-file /etc/belay/vip-claim.token"`,
	} {
		if !strings.Contains(k, want) {
			t.Errorf("keepalived.conf lacks %q", want)
		}
	}
	if strings.Contains(k, "auth_pass") || strings.Contains(k, "unused") {
		t.Error("keepalived.conf carries the auth password (VRRPv3 has no authentication)")
	}
	if tok := fileAt(t, c, ClaimTokenFile); tok.Owner != "root:"+KeepalivedScriptUser || tok.Permissions != "0640" || tok.Content != "claim-token-secret\n" {
		t.Errorf("claim token file = %+v", tok)
	}

	do, _ := renderParsed(t, abAppDOSpec(t))
	k = fileAt(t, do, "/etc/keepalived/keepalived.conf").Content
	if !strings.Contains(k, "include "+PeersFile) || strings.Contains(k, "unicast_src_ip") || !strings.Contains(k, "169.254.213.51/32 dev lo scope link") {
		t.Errorf("DO keepalived.conf should include the discovered peers, no src ip, only the MASTER marker address:\n%s", k)
	}
	peers := fileAt(t, do, "/usr/local/bin/belay-vrrp-peers").Content
	if !strings.Contains(peers, "/usr/local/bin/belay vip peers --provider digitalocean --selector belay-test-web --token-file "+DiscoveryTokenFile+` --write "$tmp"`) {
		t.Errorf("peers script = %s", peers)
	}
	if d := fileAt(t, do, "/etc/systemd/system/keepalived.service.d/10-belay-peers.conf").Content; !strings.Contains(d, "Requires=belay-vrrp-peers.service") || !strings.Contains(d, "After=belay-vrrp-peers.service") {
		t.Errorf("keepalived drop-in = %q", d)
	}
	if tok := fileAt(t, do, DiscoveryTokenFile); tok.Permissions != "0600" || tok.Content != "do-read-token\n" {
		t.Errorf("discovery token file = %+v", tok)
	}
}

// TestKeepalivedConfigTest runs keepalived's own config check on the rendered
// file, inside a network (and user) namespace the test makes, with the
// interfaces the file names.
func TestKeepalivedConfigTest(t *testing.T) {
	keepalived := tool(t, "keepalived")
	unshare := tool(t, "unshare")
	ip := tool(t, "ip")
	for name, mk := range map[string]func(testing.TB) *Spec{"pinned": abAppSpec, "discovery": abAppDOSpec} {
		t.Run(name, func(t *testing.T) {
			s := mk(t)
			c, _ := renderParsed(t, s)
			dir := t.TempDir()
			peers := writeTemp(t, dir, "peers.conf", "10.213.0.21\n10.213.0.22\n", 0o644)
			conf := strings.ReplaceAll(fileAt(t, c, "/etc/keepalived/keepalived.conf").Content, PeersFile, peers)
			// cloud-init creates the script user on the server; this machine has
			// none (keepalived drops scripts of unknown users), and keepalived
			// 2.2.7's -t kills itself with SIGTERM after dropping to any non-root
			// script user (it mistakes the parent-death check). Root checks the rest.
			conf = strings.ReplaceAll(conf, "script_user "+KeepalivedScriptUser, "script_user root")
			f := writeTemp(t, dir, "keepalived.conf", conf, 0o644)
			// A veth pair per interface the config names; they vanish with the namespace.
			var setup []string
			for i, iface := range uniq(s.Net.PrivateInterface, s.App.VRRP.VIPInterface) {
				setup = append(setup, ip+" link add "+iface+" type veth peer name belaytst"+string(rune('0'+i)))
			}
			script := strings.Join(setup, " && ") + " && { " + keepalived + " -t -l -n -f " + f + "; rc=$?; echo keepalived -t exit $rc; exit $rc; }"
			out, err := exec.Command(unshare, "-rn", "sh", "-c", script).CombinedOutput()
			if err != nil {
				t.Fatalf("keepalived -t: %v\n%s\n%s", err, out, conf)
			}
			if strings.Contains(string(out), "WARNING") || strings.Contains(string(out), "Unknown") {
				t.Errorf("keepalived -t complained:\n%s", out)
			}
		})
	}
}

func uniq(in ...string) []string {
	var out []string
	for _, x := range in {
		if x == "" {
			continue
		}
		dup := false
		for _, y := range out {
			dup = dup || x == y
		}
		if !dup {
			out = append(out, x)
		}
	}
	return out
}

// TestNginxConfigTest runs nginx -t on the rendered conf.d files (and the
// initial routing.conf) under a main config shaped like Debian's.
func TestNginxConfigTest(t *testing.T) {
	nginx := tool(t, "nginx")
	for name, mk := range map[string]func(testing.TB) *Spec{"app": abAppSpec, "app-do": abAppDOSpec, "standby-app": abStandbyAppSpec} {
		t.Run(name, func(t *testing.T) {
			c, _ := renderParsed(t, mk(t))
			dir := t.TempDir()
			rewrite := tlsRewrite(dir)
			n := 0
			for _, f := range c.WriteFiles {
				switch {
				case strings.HasPrefix(f.Path, "/etc/nginx/conf.d/"):
					writeTemp(t, dir, "conf.d/"+filepath.Base(f.Path), rewrite.Replace(f.Content), 0o644)
					n++
				case strings.HasPrefix(f.Path, "/etc/belay/nginx/"):
					writeTemp(t, dir, "belay-nginx/"+strings.TrimPrefix(f.Path, "/etc/belay/nginx/"), f.Content, 0o644)
				}
			}
			if n < 3 {
				t.Fatalf("only %d nginx conf.d files rendered", n)
			}
			// The TLS files, and the placeholder certificate first boot creates
			// before nginx starts: nginx must load them with no certificate issued.
			installTLS(t, c, dir, rewrite)
			if err := os.MkdirAll(filepath.Join(dir, "logs", "belay"), 0o755); err != nil {
				t.Fatal(err)
			}
			main := writeTemp(t, dir, "nginx.conf", "pid "+dir+"/nginx.pid;\nerror_log "+dir+"/logs/error.log;\nevents {}\nhttp {\n    access_log "+dir+"/logs/access.log;\n"+
				// Debian's stock nginx.conf sets these at http level: the
				// rendered files must not set them there again.
				"    ssl_protocols TLSv1 TLSv1.1 TLSv1.2 TLSv1.3;\n    ssl_prefer_server_ciphers on;\n"+
				"    include "+dir+"/conf.d/*.conf;\n}\n", 0o644)
			out, err := exec.Command(nginx, "-t", "-p", dir, "-c", main).CombinedOutput()
			if err != nil {
				t.Fatalf("nginx -t: %v\n%s", err, out)
			}
			// The deployer's canary routing must also load: a routing.conf that picks the canary pool.
			writeTemp(t, dir, "belay-nginx/web/routing.conf", "set $belay_pool stable;\nif ($arg_shop = \"acme\") { set $belay_pool canary; }\n", 0o644)
			if out, err := exec.Command(nginx, "-t", "-p", dir, "-c", main).CombinedOutput(); err != nil {
				t.Fatalf("nginx -t with a canary routing.conf: %v\n%s", err, out)
			}
		})
	}
}

// TestSudoers checks the rendered sudoers with visudo and that it grants exact commands only.
func TestSudoers(t *testing.T) {
	c, _ := renderParsed(t, abAppSpec(t))
	f := fileAt(t, c, "/etc/sudoers.d/belay-web")
	if f.Permissions != "0440" || f.Owner != "root:root" {
		t.Errorf("sudoers mode/owner = %s %s", f.Permissions, f.Owner)
	}
	// nginx -t and reload are no longer the deploy user's: only the route helper is.
	// The one wildcard is belay exec's command, after a pinned "--", given to
	// a helper that runs it as belay-app with no_new_privs (hostexec).
	const execLine = "/usr/local/bin/belay host exec web -- *"
	if strings.Count(f.Content, execLine) != 1 {
		t.Errorf("sudoers lacks %q once", execLine)
	}
	rest := strings.Replace(f.Content, execLine, "", 1)
	for _, bad := range []string{"ALL=(ALL)", "*", "NOPASSWD: ALL", "reload nginx", "nginx -t"} {
		if strings.Contains(rest, bad) {
			t.Errorf("sudoers contains %q", bad)
		}
	}
	for _, want := range []string{"/usr/bin/systemctl restart belay-app@web.service", "/usr/bin/systemctl is-active belay-canary@web.service", "/usr/bin/systemctl reset-failed belay-app@web.service", "/usr/bin/systemctl reset-failed belay-canary@web.service", "/usr/local/bin/belay host route web", "deploy ALL=(root) NOPASSWD: BELAY_WEB"} {
		if !strings.Contains(f.Content, want) {
			t.Errorf("sudoers lacks %q", want)
		}
	}
	visudo := tool(t, "visudo")
	p := writeTemp(t, t.TempDir(), "belay-web", f.Content, 0o440)
	if out, err := exec.Command(visudo, "-c", "-f", p).CombinedOutput(); err != nil {
		t.Fatalf("visudo -cf: %v\n%s", err, out)
	}
	// And a broken file really fails, so the check above means something.
	broken := writeTemp(t, t.TempDir(), "broken", strings.Replace(f.Content, "NOPASSWD:", "NOPASSWD", 1), 0o440)
	if err := exec.Command(visudo, "-c", "-f", broken).Run(); err == nil {
		t.Error("visudo accepted a broken sudoers file")
	}
}

// TestAppScripts checks the rendered shell scripts parse, and runs belay-app-run
// against a fake release to show it exports the release and slot.
func TestAppScripts(t *testing.T) {
	c, _ := renderParsed(t, abAppDOSpec(t))
	for _, f := range c.WriteFiles {
		if strings.HasPrefix(f.Path, "/usr/local/bin/") {
			p := writeTemp(t, t.TempDir(), filepath.Base(f.Path), f.Content, 0o755)
			if out, err := exec.Command("sh", "-n", p).CombinedOutput(); err != nil {
				t.Errorf("%s: sh -n: %v\n%s", f.Path, err, out)
			}
			shellcheck(t, p)
		}
	}
	dir := t.TempDir()
	run := strings.ReplaceAll(fileAt(t, c, "/usr/local/bin/belay-app-run").Content, "/srv/$app/", dir+"/srv/$app/")
	runner := writeTemp(t, dir, "belay-app-run", run, 0o755)
	writeTemp(t, dir, "srv/web/releases/20260101-abc/start", "#!/bin/sh\necho \"release=$BELAY_RELEASE slot=$BELAY_SLOT port=$PORT pwd=$(pwd)\"\n", 0o755)
	if err := os.Symlink(dir+"/srv/web/releases/20260101-abc", dir+"/srv/web/current"); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(runner, "web", "stable")
	cmd.Env = append(os.Environ(), "PORT=3000")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("belay-app-run: %v\n%s", err, out)
	}
	if want := "release=20260101-abc slot=stable port=3000 pwd=" + dir + "/srv/web/releases/20260101-abc\n"; string(out) != want {
		t.Errorf("belay-app-run printed %q, want %q", out, want)
	}
	if out, err := exec.Command(runner, "web", "canary").CombinedOutput(); err == nil || !strings.Contains(string(out), "no release") {
		t.Errorf("canary without a release: err=%v out=%q, want a failure naming the missing release", err, out)
	}
}

// shellcheck runs shellcheck when it is installed (it is optional: sh -n always runs).
func shellcheck(t *testing.T, path string) {
	t.Helper()
	sc, err := exec.LookPath("shellcheck")
	if err != nil {
		t.Logf("shellcheck is not installed; %s only got sh -n", filepath.Base(path))
		return
	}
	if out, err := exec.Command(sc, "-s", "sh", "-S", "warning", path).CombinedOutput(); err != nil {
		t.Errorf("shellcheck %s: %v\n%s", filepath.Base(path), err, out)
	}
}

func TestAppGolden(t *testing.T) {
	for name, mk := range map[string]func(testing.TB) *Spec{"app": abAppSpec, "app-do": abAppDOSpec, "standby-app": abStandbyAppSpec} {
		t.Run(name, func(t *testing.T) {
			checkGolden(t, name, mustRender(t, mk(t)))
		})
	}
}

// TestResticClientBackup runs the rendered belay-restic-backup with the real
// restic; its ssh is replaced by a local sftp-server speaking the same sftp
// protocol over stdio, and the repository path by a temporary one.
func TestResticClientBackup(t *testing.T) {
	restic := tool(t, "restic")
	sftpServer := "/usr/lib/openssh/sftp-server"
	if _, err := os.Stat(sftpServer); err != nil {
		t.Skipf("%s is not installed (openssh-sftp-server)", sftpServer)
	}
	s := abAppSpec(t)
	c, _ := renderParsed(t, s)
	dir := t.TempDir()
	repo := dir + "/repo"
	pass := writeTemp(t, dir, "pass", s.App.ResticPassword+"\n", 0o600)
	if out, err := exec.Command(restic, "--no-cache", "-r", repo, "--password-file", pass, "init").CombinedOutput(); err != nil {
		t.Fatalf("restic init: %v\n%s", err, out)
	}
	writeTemp(t, dir, "srv/web/shared/uploads/a.txt", "hello\n", 0o644)
	fakeSSH := writeTemp(t, dir, "bin/ssh", "#!/bin/sh\necho \"$*\" > "+dir+"/ssh-args\nexec "+sftpServer+"\n", 0o755)
	script := strings.NewReplacer(
		"sftp:restic-web@10.213.0.138:/repo", "sftp:restic-web@10.213.0.138:"+repo,
		"RESTIC_PASSWORD_FILE=/etc/belay/restic-web.pass", "RESTIC_PASSWORD_FILE="+pass,
		"RESTIC_CACHE_DIR=/var/cache/belay-restic", "RESTIC_CACHE_DIR="+dir+"/cache",
		"sftp.command='ssh ", "sftp.command='"+fakeSSH+" ",
		" /srv/web/shared", " "+dir+"/srv/web/shared",
	).Replace(fileAt(t, c, "/usr/local/bin/belay-restic-backup").Content)
	p := writeTemp(t, dir, "belay-restic-backup", script, 0o755)
	cmd := exec.Command(p)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + dir}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("belay-restic-backup: %v\n%s", err, out)
	}
	args, _ := os.ReadFile(dir + "/ssh-args")
	for _, want := range []string{"-i /etc/belay/restic-backup.key", "CertificateFile=/etc/belay/restic-backup.key-cert.pub", "StrictHostKeyChecking=yes", "UserKnownHostsFile=/etc/belay/restic-known_hosts", "restic-web@10.213.0.138 -s sftp"} {
		if !strings.Contains(string(args), want) {
			t.Errorf("ssh was called with %q, missing %q", args, want)
		}
	}
	out, err := exec.Command(restic, "--no-cache", "-r", repo, "--password-file", pass, "snapshots", "--json").CombinedOutput()
	if err != nil {
		t.Fatalf("restic snapshots: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), `"hostname":"web-1"`) || !strings.Contains(string(out), `"app=web"`) {
		t.Errorf("snapshot lacks host web-1 or tag app=web: %s", out)
	}
}
