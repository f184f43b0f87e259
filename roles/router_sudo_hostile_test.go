package roles

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/belay-sh/belay/internal/shq"
)

// TestRouterSudoersHostileDeployUser runs real sudo with the router's
// sudoers file (in a private mount namespace: the machine's /etc/sudoers.d
// is untouched), the deploy user being nobody: it may run exactly `belay
// host shop-db --app shop`, nothing with another app, more or fewer words;
// and the helper it runs as root gets none of the caller's environment
// (PG* would steer the helper's database connection, LD_* the process),
// only sudo's SUDO_USER naming the caller.
func TestRouterSudoersHostileDeployUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (a mount namespace, sudo -l -U)")
	}
	for _, p := range []string{"sudo", "unshare", "setpriv"} {
		if _, err := exec.LookPath(p); err != nil {
			t.Skipf("no %s", p)
		}
	}
	if out, err := exec.Command("unshare", "-m", "true").CombinedOutput(); err != nil {
		t.Skipf("no mount namespaces here: %v %s", err, out)
	}
	c, _ := renderParsed(t, routerSpec(t))
	content := fileAt(t, c, RouterSudoersFile("shop")).Content
	if !strings.Contains(content, "\ndeploy ALL=") {
		t.Fatalf("sudoers without the deploy user's line:\n%s", content)
	}
	content = strings.Replace(content, "\ndeploy ALL=", "\nnobody ALL=", 1)
	dir := t.TempDir()
	writeTemp(t, dir, "belay-router-shop", content, 0o440)

	allowed := ShopDBCommand("shop")
	refused := [][]string{
		{BelayBinary, "host", "shop-db", "--app", "other"},
		{BelayBinary, "host", "shop-db", "--app", "shop", "--app", "other"},
		{BelayBinary, "host", "shop-db", "--app", "shop", "extra"},
		{BelayBinary, "host", "shop-db", "--app=shop"},
		{BelayBinary, "host", "shop-db", "--app", "shop;id"},
		{BelayBinary, "host", "shop-db"},
		{BelayBinary, "host", "router-sync", "--app", "shop"},
		{BelayBinary, "host", "move-hook", "shop", "export", "a.test"},
		{"/tmp/belay", "host", "shop-db", "--app", "shop"},
		{"/bin/sh", "-c", "id"},
	}
	var script strings.Builder
	script.WriteString("set -u\nmount --bind " + shq.Quote(dir) + " /etc/sudoers.d || exit 99\n")
	// The helper, replaced by a script printing the environment it gets.
	script.WriteString("mount -t tmpfs tmpfs " + shq.Quote(filepath.Dir(BelayBinary)) + " || exit 99\n")
	script.WriteString("printf '#!/bin/sh\\nenv\\n' > " + shq.Quote(BelayBinary) + " && chmod 0755 " + shq.Quote(BelayBinary) + " || exit 99\n")
	check := func(argv []string) {
		script.WriteString("sudo -l -U nobody " + shq.Join(argv...) + " >/dev/null 2>&1; echo \"rc=$? " + strings.ReplaceAll(shq.Join(argv...), "\"", "") + "\"\n")
	}
	check(allowed)
	for _, a := range refused {
		check(a)
	}
	script.WriteString("echo '--- env'\n")
	script.WriteString("cd / && setpriv --reuid=nobody --regid=nogroup --clear-groups env -i PATH=/tmp:/usr/bin:/bin PGHOST=evil.test PGSSLMODE=disable PGPASSFILE=/tmp/pgpass LD_PRELOAD=/tmp/evil.so SUDO_USER=root BELAY_STACK=evil " +
		"sudo -n " + shq.Join(allowed...) + " </dev/null\n")
	out, err := exec.Command("unshare", "-m", "sh", "-c", script.String()).CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	checks, env, _ := strings.Cut(string(out), "--- env\n")
	lines := strings.Split(strings.TrimSpace(checks), "\n")
	if len(lines) != 1+len(refused) {
		t.Fatalf("sudo -l answers:\n%s", out)
	}
	if !strings.HasPrefix(lines[0], "rc=0 ") {
		t.Errorf("the helper's exact command refused: %s", lines[0])
	}
	for _, l := range lines[1:] {
		if strings.HasPrefix(l, "rc=0 ") {
			t.Errorf("sudo allows the deploy user: %s", l)
		}
	}
	if !strings.Contains(env, "SUDO_USER=nobody\n") {
		t.Errorf("the helper ran without SUDO_USER=nobody (the audit's ssh login):\n%s", env)
	}
	for _, bad := range []string{"PGHOST", "PGSSLMODE", "PGPASSFILE", "LD_PRELOAD", "BELAY_STACK", "SUDO_USER=root", "PATH=/tmp"} {
		if strings.Contains(env, bad) {
			t.Errorf("the caller's %s reached the root helper:\n%s", bad, env)
		}
	}
}

// TestRouterFilesRootOnly: on a router every file the role writes is root's
// and writable by root only (nginx's master, router-sync and sudo parse
// them), every secret (DSN, certificate key, ACME account) is 0600, nothing
// runs as www-data (whose processes can read nginx's workers' memory: the
// routes and the control key, docs/cells.md) and no unit switches user.
func TestRouterFilesRootOnly(t *testing.T) {
	secret := func(p string) bool {
		return p == RouterDSNFile("shop") || strings.HasPrefix(p, "/etc/belay/tls/")
	}
	for name, mk := range map[string]func(testing.TB) *Spec{"plain": routerSpec, "acme": acmeRouterSpec, "custom": customRouterSpec, "standby": standbyRouterSpec} {
		c, raw := renderParsed(t, mk(t))
		if strings.Contains(string(raw), "www-data") {
			t.Errorf("%s: the router's cloud-config names www-data", name)
		}
		for _, f := range c.WriteFiles {
			mode, err := strconv.ParseUint(f.Permissions, 8, 32)
			if err != nil || f.Owner != "root:root" || mode&0o022 != 0 {
				t.Errorf("%s: %s is %s %s, want root:root and writable by root only", name, f.Path, f.Owner, f.Permissions)
			}
			if secret(f.Path) && mode&0o077 != 0 {
				t.Errorf("%s: secret %s is %s, want 0600", name, f.Path, f.Permissions)
			}
			text, _ := f.Text()
			if strings.HasPrefix(f.Path, "/etc/systemd/system/") && strings.Contains(text, "\nUser=") {
				t.Errorf("%s: unit %s switches user", name, f.Path)
			}
		}
		if f := fileAt(t, c, RouterDSNFile("shop")); f.Permissions != "0600" {
			t.Errorf("%s: %s is %s, want 0600", name, f.Path, f.Permissions)
		}
	}
}
