package roles

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// After a VIP failover the new holder's nginx must stop sending requests to the
// dead peer quickly: connects on the private network take well under a
// millisecond, so a long connect timeout only delays every request that picks
// the dead member (the drills saw half the requests time out for seconds with 2 s).
func TestNginxGivesUpOnDeadPeerQuickly(t *testing.T) {
	c, _ := renderParsed(t, abAppSpec(t))
	conf := fileAt(t, c, "/etc/nginx/conf.d/belay-web.conf").Content
	m := regexp.MustCompile(`proxy_connect_timeout (\d+)(ms|s);`).FindStringSubmatch(conf)
	if m == nil {
		t.Fatalf("no proxy_connect_timeout in the app's nginx config:\n%s", conf)
	}
	n, _ := strconv.Atoi(m[1])
	d := time.Duration(n) * time.Millisecond
	if m[2] == "s" {
		d = time.Duration(n) * time.Second
	}
	if d > 500*time.Millisecond {
		t.Errorf("proxy_connect_timeout = %s, want at most 500ms", d)
	}
	if !strings.Contains(conf, "proxy_next_upstream error timeout") {
		t.Errorf("a failed connect is not retried on the next member")
	}
	if hc := fileAt(t, c, AppHTTPFile("web")).Content; !strings.Contains(hc, "zone belay_web_stable ") {
		t.Errorf("the stable upstream has no shared zone (each worker would rediscover a dead peer):\n%s", hc)
	}
}
