//go:build lab

package deploy_test

import (
	"bufio"
	"context"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestLabLogsFollowShowsVIPRequest: `belay logs -f` follows every app host
// at once and shows a request made through the VIP in the nginx access log,
// tagged with the host that served it; Ctrl-C (context cancel) ends it.
// Needs a lab provisioned with this branch's roles (access log in
// /var/log/nginx/belay, readable by the deploy user's group).
func TestLabLogsFollowShowsVIPRequest(t *testing.T) {
	baseline(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, belayBin, "logs", app.Name, "-f", "-n", "1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	marker := "/belay-logs-" + newID("probe")
	found := make(chan string, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if l := sc.Text(); strings.Contains(l, marker) {
				select {
				case found <- l:
				default:
				}
			}
		}
	}()
	time.Sleep(3 * time.Second) // every host's tail -F is running
	get(t, marker)
	select {
	case l := <-found:
		if !strings.Contains(l, " nginx | ") || !(strings.Contains(l, app.Hosts[0]) || len(app.Hosts) > 1 && strings.Contains(l, app.Hosts[1])) {
			t.Errorf("line not tagged with an app host and nginx: %q", l)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("the VIP request %s never appeared in belay logs -f; stderr:\n%s", marker, stderr.String())
	}
	cancel()
	wg.Wait()
	cmd.Wait()
}

// TestLabExecRunsAsAppUserWithoutRoot: belay exec runs as belay-app in the
// current release with the app's environment, propagates the exit status, and
// cannot become root through sudo.
func TestLabExecRunsAsAppUserWithoutRoot(t *testing.T) {
	rel := baseline(t)
	r := belay(t, "exec", app.Name, "--", "id", "-un")
	if r.err != nil || strings.TrimSpace(r.stdout) != "belay-app" {
		t.Fatalf("exec id -un: %q %v", r.stdout, r.err)
	}
	r = belay(t, "exec", app.Name, "--", "sh", "-c", `echo "$BELAY_RELEASE $(pwd)"; test -n "$DATABASE_URL"`)
	if r.err != nil || strings.TrimSpace(r.stdout) != rel+" /srv/"+app.Name+"/releases/"+rel {
		t.Errorf("release and environment: %q %v", r.stdout, r.err)
	}
	r = belay(t, "exec", app.Name, "--", "sh", "-c", "exit 7")
	if ee, ok := r.err.(*exec.ExitError); !ok || ee.ExitCode() != 7 {
		t.Errorf("exit status: %v, want 7", r.err)
	}
	r = belay(t, "exec", app.Name, "--", "sudo", "-n", "id", "-u")
	if r.err == nil || strings.TrimSpace(r.stdout) == "0" {
		t.Errorf("sudo from exec was allowed: %q", r.stdout)
	}
	// The helper refuses other apps and does not take flags from the command.
	if out, err := asDeploy(t, app.Hosts[0], "sudo -n /usr/local/bin/belay host exec other-app -- id"); err == nil {
		t.Errorf("exec for another app allowed:\n%s", out)
	}
}
