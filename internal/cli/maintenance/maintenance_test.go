package maintenance

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/belay-sh/belay/deploy"
	"github.com/belay-sh/belay/internal/cli"
)

func parse(t *testing.T, on bool, args ...string) *Options {
	t.Helper()
	f := &cli.Factory{IO: cli.IO{Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}}, Getenv: func(string) string { return "" }}
	var got *Options
	cmd := newCmdSwitch(f, on, func(o *Options) error { got = o; return nil })
	cmd.SetArgs(args)
	cmd.SetOut(&bytes.Buffer{})
	cmd.SetErr(&bytes.Buffer{})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	got.Now = func() time.Time { return time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC) }
	return got
}

func TestFlagsBecomeSettings(t *testing.T) {
	o := parse(t, true, "shop", "--message", "Back at 14:00", "--retry-after", "30m", "--allow", "203.0.113.7,10.1.0.0/16", "--allow-cookie", "staff=7f3a9c")
	if o.App != "shop" || !o.On {
		t.Fatalf("options %+v", o)
	}
	m, err := Settings(o, deploy.Actor{Who: "ops user@box"})
	if err != nil {
		t.Fatal(err)
	}
	if m.RetryAfter != 1800 || m.Message != "Back at 14:00" || len(m.AllowClients) != 2 || m.AllowCookies[0].Name != "staff" || m.AllowCookies[0].Value != "7f3a9c" ||
		m.Since != "2026-12-06T03:00:00Z" || m.By != "ops_user@box" {
		t.Fatalf("settings %+v", m)
	}
	if o := parse(t, true, "shop"); o.RetryAfter != 5*time.Minute {
		t.Errorf("default --retry-after %s, want 5m", o.RetryAfter)
	}
}

func TestBadFlagsRefusedNamed(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"shop", "--retry-after", "0s"}, "maintenance.retryAfter"},
		{[]string{"shop", "--retry-after", "1500ms"}, "--retry-after 1.5s: expected whole seconds"},
		{[]string{"shop", "--allow", "example.com"}, "maintenance.allowClients[0]"},
		{[]string{"shop", "--allow-cookie", "staff"}, "--allow-cookie[0]"},
		{[]string{"shop", "--allow-cookie", "staff=a;b"}, "maintenance.allowCookies[0] (staff): value"},
		{[]string{"shop", "--message", "two\nlines"}, "maintenance.message"},
	} {
		o := parse(t, true, c.args...)
		if _, err := Settings(o, deploy.Actor{Who: "ops"}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want an error naming %q", c.args, err, c.want)
		}
	}
}

func TestOffHasNoPageFlags(t *testing.T) {
	f := &cli.Factory{IO: cli.IO{Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}}}
	cmd := newCmdSwitch(f, false, func(*Options) error { return nil })
	cmd.SetArgs([]string{"shop", "--message", "x"})
	cmd.SetOut(&bytes.Buffer{})
	cmd.SetErr(&bytes.Buffer{})
	if err := cmd.Execute(); err == nil {
		t.Fatal("off accepted --message, a flag that would do nothing")
	}
}
