//go:build lab

package deploy_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/belay-sh/belay/internal/shq"
	"github.com/belay-sh/belay/lab"
	"github.com/belay-sh/belay/roles"
)

// asRoot runs argv as root inside a lab machine (its console: nsenter).
func asRoot(t *testing.T, host string, argv ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := lab.Console(ctx, lab.DefaultPaths, nil, host, argv...)
	return string(out), err
}

// asAppUser runs a shell script as belay-app, the user release code runs as:
// root's console, then runuser (belay-app's login shell is nologin).
func asAppUser(t *testing.T, host, script string) (string, error) {
	t.Helper()
	return asRoot(t, host, "runuser", "-u", roles.AppUser, "--", "sh", "-c", script)
}

// secretPaths are the files on an app server that hold secrets belay-app
// must not read (globs, expanded by root). Its own app's env file
// (DATABASE_URL) is readable on purpose and not listed.
var secretPaths = []string{
	"/etc/ssh/ssh_host_*_key",
	roles.ClaimTokenFile, roles.DiscoveryTokenFile,
	"/etc/belay/restic-*.pass", "/etc/pgbackrest/*.conf", "/etc/belay/*.token",
	"/var/lib/cloud/seed/nocloud/user-data",
	"/var/lib/cloud/instance/user-data.txt", "/var/lib/cloud/instances/*/user-data.txt*",
	"/var/lib/cloud/instances/*/cloud-config.txt", "/var/lib/cloud/instances/*/obj.pkl",
	"/var/lib/cloud/instances/*/scripts/runcmd",
	"/run/cloud-init/instance-data-sensitive.json",
	"/etc/keepalived/keepalived.conf.d/*", "/etc/sudoers", "/etc/sudoers.d/*",
}

// TestLabAppUserCannotReadSecrets: as belay-app on an app server, hostile
// release code tries to read every secret on the machine, other apps'
// DATABASE_URL, cloud-init's user data copies and other units' journals,
// and to write anything root parses. Every attempt is refused. Each target
// is first checked to exist (as root), so the test cannot pass on an empty
// machine; it reports how many attempts were refused.
func TestLabAppUserCannotReadSecrets(t *testing.T) {
	host := app.Hosts[0]
	refused := 0
	// Files that exist on this machine (root expands the globs).
	out, err := asRoot(t, host, "sh", "-c", "for p in "+strings.Join(secretPaths, " ")+` /etc/belay/*.env; do [ -e "$p" ] && printf '%s\n' "$p"; done; true`)
	if err != nil {
		t.Fatalf("listing secrets as root: %v: %s", err, out)
	}
	files := strings.Fields(out)
	found := 0
	for _, f := range files {
		if f == roles.AppEnvFile(app.Name) {
			continue // its own DATABASE_URL: readable by design
		}
		found++
		if o, err := asAppUser(t, host, "cat -- "+shq.Quote(f)+" >/dev/null"); err == nil {
			t.Errorf("belay-app read %s:\n%s", f, o)
			continue
		}
		refused++
	}
	if found < 4 {
		t.Fatalf("only %d secret files found on %s (%v): the lab machine is not what the test expects", found, host, files)
	}
	// Directory listings that would reveal cloud-init's copies.
	for _, d := range []string{roles.UserDataDir, roles.UserDataDir + "/instances", roles.UserDataDir + "/seed"} {
		if o, err := asAppUser(t, host, "ls -- "+shq.Quote(d)); err == nil {
			t.Errorf("belay-app listed %s:\n%s", d, o)
		} else {
			refused++
		}
	}
	// The roles' last boot step ran: no plain user data copies, 0700.
	if o, err := asRoot(t, host, "sh", "-c", "stat -c %a /var/lib/cloud; ls /var/lib/cloud/instances/*/user-data.txt /var/lib/cloud/instances/*/cloud-config.txt 2>/dev/null || true"); err != nil || strings.TrimSpace(o) != "700" {
		t.Errorf("/var/lib/cloud after boot: %q %v, want mode 700 and no user-data.txt / cloud-config.txt", o, err)
	}
	// Other units' journals: root sees keepalived's lines, belay-app none.
	rootLog, _ := asRoot(t, host, "journalctl", "-u", "keepalived.service", "-n", "20", "--no-pager", "-q")
	if !strings.Contains(strings.ToLower(rootLog), "keepalived") {
		t.Fatalf("root sees no keepalived journal on %s: the check below would prove nothing:\n%s", host, rootLog)
	}
	for _, unit := range []string{"keepalived.service", "nginx.service", "ssh.service", "cloud-init.service", "cloud-final.service"} {
		o, _ := asAppUser(t, host, "journalctl -u "+shq.Quote(unit)+" -n 50 --no-pager -q 2>&1")
		if strings.Contains(strings.ToLower(o), "keepalived_vrrp") || strings.Contains(o, "Started ") || strings.Contains(o, "Accepted publickey") {
			t.Errorf("belay-app reads the journal of %s:\n%s", unit, o)
		} else {
			refused++
		}
	}
	// Writes to what root parses or runs.
	for _, p := range []string{
		"/etc/belay/nginx/" + app.Name + "/http.conf", "/etc/belay/nginx/" + app.Name + "/stage.json",
		"/etc/nginx/conf.d/evil.conf", "/etc/systemd/system/evil.service",
		"/etc/systemd/system/belay-app@" + app.Name + ".service.d/evil.conf",
		"/etc/keepalived/keepalived.conf", roles.AppEnvFile(app.Name), "/etc/cron.d/evil",
		"/etc/sudoers.d/evil", "/etc/profile.d/evil.sh", "/usr/local/bin/belay",
		"/srv/" + app.Name + "/current/start", "/srv/" + app.Name + "/releases/evil",
		"/srv/" + app.Name + "/.belay/lease", "/srv/" + app.Name + "/.belay/fence",
		"/var/lib/belay/evil", "/run/belay/route/evil",
	} {
		if o, err := asAppUser(t, host, "printf 'x\\n' >> "+shq.Quote(p)); err == nil {
			t.Errorf("belay-app wrote %s:\n%s", p, o)
		} else {
			refused++
		}
	}
	// No sudo at all.
	if o, err := asAppUser(t, host, "sudo -n true"); err == nil {
		t.Errorf("belay-app ran sudo:\n%s", o)
	} else {
		refused++
	}
	t.Logf("%d attempts as belay-app on %s refused", refused, host)
}

// TestLabMetadataDoubleOnlyRoot: a double of the metadata service on an app
// server answers root, and nftables' owner rule (roles' nftRuleset: meta
// skuid) drops belay-app's and the deploy user's packets to it.
//
// It once failed with root's own fetch timing out. The cause was the double,
// not the rule: `python3 -m http.server` binds, then resolves its address
// (HTTPServer.server_bind calls socket.getfqdn, a reverse DNS lookup the lab
// machine's resolver may take seconds to give up on) and only then listens;
// the fetch loop gave up before. The double is now a plain TCPServer (no
// lookup), and the test waits until it listens, by its recorded PID, before
// any fetch, so every fetch below judges the firewall alone. The real service
// is on port 80, but an app server's nginx listens on 0.0.0.0:80, so no other
// socket can bind 169.254.169.254:80 (EADDRINUSE: the lab showed the double
// never listening); the double uses port 8169, which tests the same rule (it
// matches the address, any port).
func TestLabMetadataDoubleOnlyRoot(t *testing.T) {
	host := app.Hosts[0]
	const marker = "BELAY-METADATA-DOUBLE-user-data"
	const server = `import functools, http.server, socketserver
class S(socketserver.ThreadingMixIn, socketserver.TCPServer):
    allow_reuse_address = True
    daemon_threads = True
S(("169.254.169.254", 8169), functools.partial(http.server.SimpleHTTPRequestHandler, directory="/run/belay-metadata-double")).serve_forever()`
	setup := `set -eu
d=/run/belay-metadata-double
mkdir -p "$d"
printf '%s\n' ` + marker + ` > "$d/user-data"
ip addr add 169.254.169.254/32 dev lo 2>/dev/null || true
setsid -f sh -c 'echo $$ > /run/belay-metadata-double.pid; exec python3 -c "$0"' ` + shq.Quote(server) + ` >/dev/null 2>&1
# Ready when the recorded process listens on the address (not before: a
# fetch then would be refused and say nothing about the firewall).
i=0
while :; do
    p=$(cat /run/belay-metadata-double.pid 2>/dev/null || true)
    if [ -n "$p" ] && ss -Hltnp 'sport = :8169' | grep '169.254.169.254:8169' | grep -q "pid=$p,"; then
        echo listening; exit 0
    fi
    i=$((i + 1))
    if [ "$i" -ge 300 ]; then
        echo "the double did not listen within 30s (pid ${p:-none})" >&2; exit 1
    fi
    sleep 0.1
done`
	t.Cleanup(func() {
		// Stops the server it started, by the PID it recorded.
		if out, err := asRoot(t, host, "sh", "-c", `p=/run/belay-metadata-double.pid; [ -s "$p" ] && kill "$(cat "$p")" 2>/dev/null; rm -f "$p"; ip addr del 169.254.169.254/32 dev lo 2>/dev/null || true; rm -rf /run/belay-metadata-double`); err != nil {
			t.Errorf("stop the metadata double: %v: %s", err, out)
		}
	})
	if out, err := asRoot(t, host, "sh", "-c", setup); err != nil {
		t.Fatalf("metadata double: %v: %s", err, out)
	}
	// The double listens: root's fetch must succeed on the first try.
	fetch := "curl -sS -m 10 http://169.254.169.254:8169/user-data"
	if out, err := asRoot(t, host, "sh", "-c", fetch); err != nil || !strings.Contains(out, marker) {
		t.Fatalf("root cannot fetch the listening double (%v): %s", err, out)
	}
	// Dropped packets: curl times out (-m 3 is enough to tell: root's answer came at once).
	fetch = "curl -sS -m 3 http://169.254.169.254:8169/user-data"
	if out, err := asAppUser(t, host, fetch); err == nil || strings.Contains(out, marker) {
		t.Errorf("belay-app fetched the metadata double: %v\n%s", err, out)
	}
	if out, err := asDeploy(t, host, fetch); err == nil || strings.Contains(out, marker) {
		t.Errorf("the deploy user fetched the metadata double: %v\n%s", err, out)
	}
}
