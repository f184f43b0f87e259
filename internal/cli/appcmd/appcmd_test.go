package appcmd

import (
	"context"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/belay-sh/belay/deploy/sshx"
	"github.com/belay-sh/belay/deploy/sshx/sshdtest"
)

func TestParseJournal(t *testing.T) {
	l, ok := parseJournal(`{"__REALTIME_TIMESTAMP":"1733452635123456","MESSAGE":"GET /up","_SYSTEMD_UNIT":"belay-canary@shop.service"}`)
	if !ok || l.Source != "canary" || l.Message != "GET /up" || l.Time.UnixMicro() != 1733452635123456 {
		t.Fatalf("%+v %v", l, ok)
	}
	l, ok = parseJournal(`{"__REALTIME_TIMESTAMP":"1","MESSAGE":[104,105,255],"_SYSTEMD_UNIT":"belay-app@shop.service"}`)
	if !ok || l.Source != "stable" || l.Message != "hi\uFFFD" {
		t.Fatalf("byte-array message: %+v", l)
	}
	if _, ok := parseJournal("-- No entries --"); ok {
		t.Fatal("non-JSON line accepted")
	}
}

func TestParseAccess(t *testing.T) {
	raw := "2026-12-06T02:37:15+01:00\t10.0.0.9\t200\t0.004\t10.0.0.5:8000\t200\t0.004\tstable\t\"GET / HTTP/1.1\""
	l, ok := parseAccess(raw)
	if !ok || l.Source != "nginx" || l.Message != raw || !l.Time.Equal(time.Date(2026, 12, 6, 1, 37, 15, 0, time.UTC)) {
		t.Fatalf("%+v %v", l, ok)
	}
	if _, ok := parseAccess("garbage"); ok {
		t.Fatal("garbage accepted")
	}
}

func TestCommands(t *testing.T) {
	since := time.Unix(1733452635, 0)
	for _, tc := range []struct {
		q       Query
		journal string
		access  string
	}{
		{Query{App: "shop", Lines: 50}, "journalctl --no-pager --quiet -o json --output-fields=MESSAGE,_SYSTEMD_UNIT,SYSLOG_IDENTIFIER -u belay-app@shop.service -u belay-canary@shop.service -n 50",
			"tail -n 50 /var/log/nginx/belay/shop.access.log"},
		{Query{App: "shop", Lines: 50, Follow: true}, "... -n 50 --follow", "tail -n 50 -F /var/log/nginx/belay/shop.access.log"},
		{Query{App: "shop", Since: since}, "... --since @1733452635", "{ cat /var/log/nginx/belay/shop.access.log.1 2>/dev/null; cat /var/log/nginx/belay/shop.access.log; }"},
		{Query{App: "shop", Since: since, Follow: true}, "... --since @1733452635 --follow", "{ cat /var/log/nginx/belay/shop.access.log.1 2>/dev/null; tail -n +1 -F /var/log/nginx/belay/shop.access.log; }"},
	} {
		src := Sources(tc.q)
		if want := strings.TrimPrefix(tc.journal, "... "); !strings.HasSuffix(src[0].Command, want) {
			t.Errorf("journal: %s\nwant suffix %s", src[0].Command, want)
		}
		if src[1].Command != tc.access {
			t.Errorf("access: %s\nwant %s", src[1].Command, tc.access)
		}
		if strings.Contains(src[0].Command+src[1].Command, ".env") {
			t.Error("a log command reads the environment file")
		}
	}
}

func TestExecCommandQuotes(t *testing.T) {
	got := ExecCommand("shop", []string{"sh", "-c", "echo $DATABASE_URL; rm -rf /"})
	want := `sudo -n /usr/local/bin/belay host exec shop -- sh -c 'echo $DATABASE_URL; rm -rf /'`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestMergeAndFilter(t *testing.T) {
	t0 := time.Unix(100, 0)
	lines := []Line{{Time: t0.Add(3 * time.Second), Host: "b", Message: "3"}, {Time: t0, Host: "a", Message: "0"},
		{Time: t0.Add(time.Second), Host: "b", Message: "1 error"}, {Time: t0.Add(time.Second), Host: "a", Message: "1 ok"}}
	got := Merge(append([]Line(nil), lines...), 3)
	if len(got) != 3 || got[0].Message != "1 error" || got[1].Message != "1 ok" || got[2].Message != "3" {
		t.Fatalf("%+v", got)
	}
	f := Filter{Since: t0.Add(time.Second), Grep: regexp.MustCompile("error|3")}
	var kept []string
	for _, l := range lines {
		if f.Keep(l) {
			kept = append(kept, l.Message)
		}
	}
	if strings.Join(kept, ",") != "3,1 error" {
		t.Fatalf("kept %q", kept)
	}
}

func TestReorder(t *testing.T) {
	now := time.Unix(1000, 0)
	var out []string
	r := &Reorder{Window: 300 * time.Millisecond, Now: func() time.Time { return now }, Emit: func(l Line) { out = append(out, l.Message) }}
	r.Add(Line{Time: time.Unix(50, 2), Message: "late host, later line"})
	r.Add(Line{Time: time.Unix(50, 1), Message: "earlier line"})
	r.Flush(false)
	if len(out) != 0 {
		t.Fatalf("emitted before the window: %q", out)
	}
	now = now.Add(300 * time.Millisecond)
	r.Add(Line{Time: time.Unix(51, 0), Message: "new"})
	r.Flush(false)
	if strings.Join(out, "|") != "earlier line|late host, later line" {
		t.Fatalf("%q", out)
	}
	r.Flush(true)
	if len(out) != 3 {
		t.Fatalf("force: %q", out)
	}
}

// TestReadAllRealSSH streams from two hosts over real sshd sessions: every
// line arrives tagged with its host, a failing source is reported by host and
// name, and cancelling the context ends a follow (the sessions close).
func TestReadAllRealSSH(t *testing.T) {
	srv := sshdtest.New(t)
	pool := sshx.NewPool(func(ctx context.Context, name string) (*sshx.Client, error) {
		return sshx.NewClientConn(ctx, sshx.Config{Auth: []ssh.AuthMethod{ssh.PublicKeys(srv.ClientSigner)}, KeepaliveInterval: -1},
			sshx.Target{Name: name, Addr: name + ":22", User: srv.User, HostKeys: []ssh.PublicKey{srv.HostKey}}, srv.Conn())
	})
	t.Cleanup(pool.Close)
	src := []Source{
		{Name: "nginx", Command: `printf '2026-12-06T02:00:01+00:00\tGET /a\n2026-12-06T02:00:03+00:00\tGET /b\nnot a log line\n'`, Parse: parseAccess},
		{Name: "journal", Command: `echo broken >&2; exit 3`, Parse: parseJournal},
	}
	var mu sync.Mutex
	var got []Line
	sv := &servers{All: []string{"app-1", "app-2"}, Cell: map[string]string{"app-2": "c2"}}
	errs := readAll(context.Background(), pool, sv, src, Filter{}, func(l Line) { mu.Lock(); got = append(got, l); mu.Unlock() })
	if len(got) != 4 {
		t.Fatalf("lines %+v", got)
	}
	for _, l := range got {
		if want := sv.Cell[l.Host]; l.Cell != want {
			t.Errorf("line from %s tagged cell %q, want %q", l.Host, l.Cell, want)
		}
	}
	got = Merge(got, 0)
	if got[0].Time.Second() != 1 || got[3].Time.Second() != 3 || (got[0].Host != "app-1" && got[0].Host != "app-2") {
		t.Fatalf("merged %+v", got)
	}
	if len(errs) != 2 || !strings.Contains(errs[0].Error(), ": journal: ") || !strings.Contains(errs[0].Error(), "broken") {
		t.Fatalf("errs %v", errs)
	}
	// Follow: a command that never ends stops when the context does.
	ctx, cancel := context.WithCancel(context.Background())
	follow := []Source{{Name: "nginx", Command: `printf '2026-12-06T02:00:01+00:00\tx\n'; exec sleep 60`, Parse: parseAccess}}
	first := make(chan struct{}, 2)
	done := make(chan []error)
	go func() {
		done <- readAll(ctx, pool, &servers{All: []string{"app-1", "app-2"}}, follow, Filter{}, func(Line) { first <- struct{}{} })
	}()
	<-first
	<-first
	start := time.Now()
	cancel()
	select {
	case errs := <-done:
		if len(errs) != 2 || !strings.Contains(errs[0].Error(), "context canceled") {
			t.Fatalf("follow errs %v", errs)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("follow took %s to stop", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("follow did not stop on cancel")
	}
}
