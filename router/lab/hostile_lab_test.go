//go:build lab

package lab_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/belay-sh/belay/internal/shq"
	"github.com/belay-sh/belay/lab"
	"github.com/belay-sh/belay/router"
)

// TestLabRouterHostileUsers checks on each primary router of the cells
// stack what the unit tests check on loopback (docs/cells.md, "Who can do
// what on a router"): the control socket's directory and key are root's
// alone; the deploy user, www-data and nobody cannot read the key, the DSN
// or the TLS files, nor push routes (no connection: the directory), nor
// read an nginx worker's memory; the deploy user's sudo allows exactly
// shop-db for this app. Read only: it changes nothing on the routers.
func TestLabRouterHostileUsers(t *testing.T) {
	inv := labInventory(t)
	app := appName()
	sock, key := router.Socket(app), router.ControlKey(router.Socket(app))
	for _, h := range appRouters(inv, app) {
		users := []string{h.DeployUser, "www-data", "nobody"}
		var b strings.Builder
		b.WriteString("set -u\nfail() { echo \"FAIL: $*\"; }\n")
		fmt.Fprintf(&b, "[ \"$(stat -c '%%a %%U %%G' %s)\" = '700 root root' ] || fail \"%s: $(stat -c '%%a %%U %%G' %s)\"\n", router.RuntimeDir, router.RuntimeDir, router.RuntimeDir)
		fmt.Fprintf(&b, "[ \"$(stat -c '%%a %%U' %s)\" = '600 root' ] || fail \"%s: $(stat -c '%%a %%U' %s 2>&1)\"\n", shq.Quote(key), key, shq.Quote(key))
		fmt.Fprintf(&b, "[ \"$(stat -c '%%a %%U' %s)\" = '600 root' ] || fail \"db.conf not root 0600\"\n", shq.Quote(router.Dir(app)+"/"+router.DSNFile))
		b.WriteString("m=$(cat /run/nginx.pid)\nworkers=$(for d in /proc/[0-9]*; do read -r _ _ _ pp _ < \"$d/stat\" 2>/dev/null && [ \"$pp\" = \"$m\" ] && echo \"${d#/proc/}\"; done)\n")
		b.WriteString("[ -n \"$workers\" ] || fail 'no nginx workers'\n")
		for _, u := range users {
			as := "runuser -u " + shq.Quote(u) + " -- "
			for _, f := range []string{key, router.Dir(app) + "/" + router.DSNFile} {
				fmt.Fprintf(&b, "%scat %s >/dev/null 2>&1 && fail '%s reads %s'\n", as, shq.Quote(f), u, f)
			}
			b.WriteString("for f in /etc/belay/tls/" + app + "/*; do [ -e \"$f\" ] || continue; " + as + "cat \"$f\" >/dev/null 2>&1 && fail \"" + u + " reads $f\"; done\n")
			fmt.Fprintf(&b, "%scurl -sS --max-time 5 --unix-socket %s -X PUT --data-binary 'belay-routes 1' http://nginx/routes >/dev/null 2>&1 && fail '%s reached the control socket'\n", as, shq.Quote(sock), u)
			b.WriteString("for w in $workers; do " + as + "head -c 16 /proc/$w/environ >/dev/null 2>&1 && fail \"" + u + " reads worker $w's memory\"; done\n")
		}
		// sudo -l -U: what the deploy user may run as root.
		fmt.Fprintf(&b, "sudo -l -U %s %s >/dev/null 2>&1 || fail 'shop-db --app %s refused to the deploy user'\n", shq.Quote(h.DeployUser), shq.Join("/usr/local/bin/belay", "host", "shop-db", "--app", app), app)
		for _, argv := range [][]string{
			{"/usr/local/bin/belay", "host", "shop-db", "--app", app + "x"},
			{"/usr/local/bin/belay", "host", "shop-db", "--app", app, "--x"},
			{"/usr/local/bin/belay", "host", "router-sync", "--app", app},
			{"/bin/sh"},
		} {
			fmt.Fprintf(&b, "sudo -l -U %s %s >/dev/null 2>&1 && fail %s\n", shq.Quote(h.DeployUser), shq.Join(argv...), shq.Quote("deploy user may run "+strings.Join(argv, " ")))
		}
		b.WriteString("echo checked\n")
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		out, err := lab.Console(ctx, lab.DefaultPaths, nil, h.Name, "sh", "-c", b.String())
		cancel()
		if err != nil || !strings.Contains(string(out), "checked") {
			t.Fatalf("%s: %v\n%s", h.Name, err, out)
		}
		for _, l := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(l, "FAIL: ") {
				t.Errorf("%s: %s", h.Name, strings.TrimPrefix(l, "FAIL: "))
			}
		}
	}
}
