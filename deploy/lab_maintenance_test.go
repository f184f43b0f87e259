//go:build lab

package deploy_test

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestLabMaintenanceMode: `belay maintenance on` makes every app server
// answer 503 with Retry-After through the VIP, lets an allowed cookie reach
// the app, keeps the VIP (keepalived's health check still reaches the app),
// survives a deploy, and `off` serves the app again.
func TestLabMaintenanceMode(t *testing.T) {
	baseline(t)
	t.Cleanup(func() { belay(t, "maintenance", "off", app.Name) })
	vipGet := func(cookie string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+app.VIP+"/", nil)
		req.Host = app.Domains[0]
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
		if err != nil {
			t.Fatalf("GET / via VIP: %v", err)
		}
		defer resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Retry-After")
	}
	if r := belay(t, "maintenance", "on", app.Name, "--message", "Back soon", "--retry-after", "2m", "--allow-cookie", "staff=lab42"); r.err != nil {
		t.Fatalf("maintenance on: %v", r.err)
	}
	if code, ra := vipGet(""); code != 503 || ra != "120" {
		t.Errorf("in maintenance: %d Retry-After %q, want 503 and 120", code, ra)
	}
	if code, _ := vipGet("staff=lab42"); code != 200 {
		t.Errorf("allowed cookie in maintenance: %d, want 200 from the app", code)
	}
	if got := vipHoldersOf(t); len(got) != 1 {
		t.Errorf("VIP held by %v in maintenance, want exactly one holder (health still reaches the app)", got)
	}
	if r := belay(t, "status", "--app", app.Name); !strings.Contains(r.stdout+r.stderr, "MAINTENANCE") {
		t.Errorf("status does not show maintenance:\n%s%s", r.stdout, r.stderr)
	}
	// A deploy keeps it on.
	id := newID("in-maintenance")
	if r := deployDirect(t, id, artifact(t, id)); r.err != nil {
		t.Fatalf("deploy in maintenance: %v", r.err)
	}
	if code, _ := vipGet(""); code != 503 {
		t.Errorf("after a deploy in maintenance: %d, want 503 still", code)
	}
	if r := belay(t, "maintenance", "off", app.Name); r.err != nil {
		t.Fatalf("maintenance off: %v", r.err)
	}
	if code, _ := vipGet(""); code != 200 {
		t.Errorf("after maintenance off: %d, want 200", code)
	}
	assertConverged(t, id)
}

// vipHoldersOf lists the app servers with the VIP on an interface (as the
// deploy user: reading addresses needs no root).
func vipHoldersOf(t *testing.T) []string {
	t.Helper()
	var holders []string
	for _, h := range app.Hosts {
		r := belay(t, "lab", "ssh", h, "--", "ip", "-4", "-o", "addr", "show")
		if r.err != nil {
			t.Fatalf("ip addr on %s: %v", h, r.err)
		}
		if strings.Contains(r.stdout, " "+app.VIP+"/") {
			holders = append(holders, h)
		}
	}
	return holders
}
