package traffic

import (
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// withHealthServer adds keepalived's loopback health server (as the roles
// render it, on 127.0.0.2) to the fixture's nginx.conf.
func withHealthServer(t *testing.T, f *fixture) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	f.health = l.Addr().String()
	l.Close()
	p := filepath.Join(f.dir, "nginx.conf")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	conf := strings.TrimSuffix(strings.TrimSpace(string(b)), "}") + `
    server {
        listen ` + f.health + `;
        server_name ` + HealthHost(f.app) + `;
        set $belay_pool stable;
        include ` + f.dir + `/etc/` + f.app + `/routing.conf;
        location / {
            proxy_pass http://belay_` + f.app + `_$belay_pool;
        }
    }
}
`
	if err := os.WriteFile(p, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
}

type answer struct {
	status     int
	retryAfter string
	body       string
}

func get(t *testing.T, c *client, addr, host, cookie string) answer {
	t.Helper()
	r, _ := http.NewRequest("GET", "http://"+addr+"/x", nil)
	if host != "" {
		r.Host = host
	}
	if cookie != "" {
		r.Header.Set("Cookie", cookie)
	}
	resp, err := c.hc.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header.Get("Retry-After"), string(b)}
}

// TestNginxMaintenance runs maintenance mode in a real nginx: the public
// server answers 503 with the page and Retry-After in every stage, the
// health server (keepalived's check) and the allowed staff (address, cookie)
// still reach the app, a client claiming the health Host on the public
// server does not, a hostile message is inert text, and switching it off
// serves the app again.
func TestNginxMaintenance(t *testing.T) {
	f := newFixture(t)
	withHealthServer(t, f)
	f.maint = &Maintenance{
		Message:      `Back at 14:00 <script>alert(1)</script> $host \n "quoted" {x}; ${belay_pool}`,
		RetryAfter:   120,
		AllowClients: []string{"127.0.0.9"},
		AllowCookies: []Match{{"belay_staff", "s3cret-token"}},
		Since:        "2026-12-06T03:00:00Z", By: "ops@box",
	}
	f.start(Stage{Kind: Stable})
	public, staff := newClient(t, "127.0.0.1"), newClient(t, "127.0.0.9")
	for _, st := range []Stage{{Kind: Stable}, {Kind: Percent, Percent: 50}, {Kind: Full}} {
		f.reload(st)
		a := get(t, public, f.listen, "", "")
		if a.status != 503 || a.retryAfter != "120" || !strings.Contains(a.body, "<h1>Maintenance</h1>") {
			t.Fatalf("%s: public request: %+v, want 503 with Retry-After 120 and the page", st, a)
		}
		want := `Back at 14:00 &lt;script&gt;alert(1)&lt;/script&gt; &#36;host &#92;n &#34;quoted&#34; &#123;x&#125;; &#36;&#123;belay_pool&#125;`
		if !strings.Contains(a.body, want) {
			t.Errorf("%s: page does not carry the message as inert text:\n%s", st, a.body)
		}
		if a := get(t, public, f.listen, HealthHost(f.app), ""); a.status != 503 {
			t.Errorf("%s: the health Host claimed on the public server bypassed maintenance: %+v", st, a)
		}
		if a := get(t, public, f.health, HealthHost(f.app), ""); a.status != 200 || a.retryAfter != "" {
			t.Errorf("%s: keepalived's health check: %+v, want the app (200)", st, a)
		}
		if a := get(t, staff, f.listen, "", ""); a.status != 200 || a.retryAfter != "" {
			t.Errorf("%s: allowed client 127.0.0.9: %+v, want the app", st, a)
		}
		if a := get(t, public, f.listen, "", "belay_staff=s3cret-token"); a.status != 200 {
			t.Errorf("%s: allowed cookie: %+v, want the app", st, a)
		}
		if a := get(t, public, f.listen, "", "belay_staff=wrong"); a.status != 503 {
			t.Errorf("%s: wrong cookie value: %+v, want 503", st, a)
		}
	}
	f.maint = nil
	f.reload(Stage{Kind: Stable})
	if a := get(t, public, f.listen, "", ""); a.status != 200 || a.retryAfter != "" {
		t.Fatalf("after maintenance off: %+v, want the app", a)
	}
}

// TestMaintenanceValidate: every bad field is refused, named.
func TestMaintenanceValidate(t *testing.T) {
	base := Spec{App: "shop", Port: 3000, StableAddrs: []string{"10.0.0.1"}, Stage: Stage{Kind: Stable}}
	for _, c := range []struct {
		m    Maintenance
		want string
	}{
		{Maintenance{RetryAfter: 0}, "maintenance.retryAfter"},
		{Maintenance{RetryAfter: MaxRetryAfter + 1}, "maintenance.retryAfter"},
		{Maintenance{RetryAfter: 60, Message: "a\nb"}, "maintenance.message: control character"},
		{Maintenance{RetryAfter: 60, Message: strings.Repeat("x", MaxMaintenanceMessage+1)}, "maintenance.message"},
		{Maintenance{RetryAfter: 60, Message: "\xff"}, "maintenance.message: not UTF-8"},
		{Maintenance{RetryAfter: 60, AllowClients: []string{"10.0.0.1/8"}}, "maintenance.allowClients[0]"},
		{Maintenance{RetryAfter: 60, AllowClients: []string{"x;"}}, "maintenance.allowClients[0]"},
		{Maintenance{RetryAfter: 60, AllowCookies: []Match{{"a-b", "v"}}}, "maintenance.allowCookies[0]: name"},
		{Maintenance{RetryAfter: 60, AllowCookies: []Match{{"a", "v;x"}}}, "maintenance.allowCookies[0] (a): value"},
		{Maintenance{RetryAfter: 60, AllowCookies: []Match{{"a", `"`}}}, "maintenance.allowCookies[0] (a): value"},
		{Maintenance{RetryAfter: 60, Since: "now; x"}, "maintenance.since"},
		{Maintenance{RetryAfter: 60, By: "a b"}, "maintenance.by"},
	} {
		s := base
		m := c.m
		s.Maintenance = &m
		if err := s.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want an error naming %q", c.m, err, c.want)
		}
	}
	s := base
	s.Maintenance = &Maintenance{RetryAfter: 60}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestParseMaintenanceLine(t *testing.T) {
	f, err := Render(Spec{App: "shop", Port: 3000, StableAddrs: []string{"10.0.0.1"}, Stage: Stage{Kind: Stable},
		Maintenance: &Maintenance{RetryAfter: 60, Since: "2026-12-06T03:00:00Z", By: "ops"}})
	if err != nil {
		t.Fatal(err)
	}
	var got string
	for _, l := range strings.Split(string(f.Routing), "\n") {
		if s := ParseMaintenanceLine(l); s != "" {
			got = s
		}
	}
	if want := "on (retry after 60s, since 2026-12-06T03:00:00Z, by ops)"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
