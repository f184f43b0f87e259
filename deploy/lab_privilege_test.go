//go:build lab

package deploy_test

import (
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// asDeploy runs a shell command on host as the deploy user over the pinned
// SSH channel (belay lab ssh), returning its combined output and error.
func asDeploy(t *testing.T, host, script string) (string, error) {
	t.Helper()
	out, err := exec.Command(belayBin, "lab", "ssh", host, "--", script).CombinedOutput()
	return string(out), err
}

// TestLabDeployUserCannotMakeRootParseItsFiles: the deploy user, hostile,
// tries to make nginx, systemd or keepalived (root) read a file of its
// choosing, or to run nginx's own checks and reloads with its config. Every
// attempt is refused, and the one root helper it may run refuses hostile stages.
func TestLabDeployUserCannotMakeRootParseItsFiles(t *testing.T) {
	host := app.Hosts[0]
	refused := 0
	mustFail := func(what, script string) {
		t.Helper()
		out, err := asDeploy(t, host, script)
		if err == nil {
			t.Errorf("%s: allowed as the deploy user:\n%s", what, out)
			return
		}
		refused++
	}
	// Files root parses as configuration.
	for _, p := range []string{
		"/etc/belay/nginx/" + app.Name + "/http.conf",
		"/etc/belay/nginx/" + app.Name + "/routing.conf",
		"/etc/belay/nginx/" + app.Name + "/stage.json",
		"/etc/belay/nginx/" + app.Name + "/extra.conf",
		"/etc/nginx/conf.d/evil.conf",
		"/etc/systemd/system/belay-app@" + app.Name + ".service.d/evil.conf",
		"/etc/systemd/system/evil.service",
		"/etc/keepalived/keepalived.conf",
		"/etc/belay/" + app.Name + ".env",
		"/etc/sudoers.d/evil",
		"/etc/cron.d/evil",
	} {
		mustFail("write "+p, "printf 'access_log /etc/cron.d/x;\\n' >> "+p)
	}
	// Root commands that would parse or load its files.
	for _, c := range []string{
		"sudo -n /usr/sbin/nginx -t",
		"sudo -n /usr/sbin/nginx -t -c /tmp/evil.conf",
		"sudo -n systemctl reload nginx",
		"sudo -n systemctl reload nginx.service",
		"sudo -n systemctl daemon-reload",
		"sudo -n /usr/local/bin/belay host route-watch",
		"sudo -n /usr/local/bin/belay host route other-app </dev/null",
		"sudo -n /usr/local/bin/belay host route " + app.Name + " --help",
	} {
		mustFail(c, c)
	}
	// The route helper it may run refuses hostile stages, naming the field.
	route := func(js string) (string, error) {
		return asDeploy(t, host, "sudo -n /usr/local/bin/belay host route "+app.Name+" <<'EOF'\n"+js+"\nEOF")
	}
	stable := `"stableAddrs":["` + strings.Join(addrs(), `","`) + `"]`
	for _, c := range []struct{ what, js, field string }{
		{"nginx syntax in a whitelist value", `{"spec":{"app":"` + app.Name + `","port":` + strconv.Itoa(app.Port) + `,` + stable + `,"canaryAddrs":["` + addrs()[0] + `"],"stage":{"kind":"whitelist","rules":{"headers":[{"name":"X-A","value":"x;access_log /etc/cron.d/x belay;"}]}}}}`, "whitelist headers[0]"},
		{"another port (e.g. sshd)", `{"spec":{"app":"` + app.Name + `","port":22,` + stable + `,"stage":{"kind":"stable"}}}`, "spec.port"},
		{"a public upstream", `{"spec":{"app":"` + app.Name + `","port":` + strconv.Itoa(app.Port) + `,"stableAddrs":["203.0.113.7"],"stage":{"kind":"stable"}}}`, "spec.stableAddrs[0]"},
		{"another app's name", `{"spec":{"app":"other","port":` + strconv.Itoa(app.Port) + `,` + stable + `,"stage":{"kind":"stable"}}}`, "spec.app"},
		{"a shop key that is nginx syntax", `{"spec":{"app":"` + app.Name + `","port":` + strconv.Itoa(app.Port) + `,` + stable + `,"canaryAddrs":["` + addrs()[0] + `"],"keys":{"param":"x;include /tmp/e"},"stage":{"kind":"full"}}}`, "shop parameter"},
		{"an unknown field", `{"spec":{"app":"` + app.Name + `"},"include":"/tmp/e"}`, "unknown field"},
	} {
		out, err := route(c.js)
		if err == nil || !strings.Contains(out, c.field) {
			t.Errorf("%s: want refused naming %q, got %v:\n%s", c.what, c.field, err, out)
			continue
		}
		refused++
	}
	if out, err := asDeploy(t, host, "test ! -e /etc/cron.d/x && ! grep -q 'cron.d' /etc/belay/nginx/"+app.Name+"/http.conf"); err != nil {
		t.Errorf("a hostile value reached a root-parsed file: %v\n%s", err, out)
	}
	t.Logf("hostile attempts by the deploy user refused: %d", refused)
}

func addrs() []string {
	var out []string
	for _, h := range app.Hosts {
		out = append(out, labInv.Host(h).PrivateAddress)
	}
	return out
}
