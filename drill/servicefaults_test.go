package drill

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/belay-sh/belay/hostcmd"
	"github.com/belay-sh/belay/remote/remotetest"
)

func TestServiceFaults(t *testing.T) {
	r := &remotetest.Runner{}
	f := &ServiceFaults{Hosts: r}
	ctx := context.Background()
	if _, err := f.Inject(ctx, Fault{Kind: FaultKill, Host: "db-1"}); !errors.Is(err, ErrNoFaults) {
		t.Errorf("kill outside the lab: %v, want ErrNoFaults", err)
	}
	if _, err := f.Inject(ctx, Fault{Kind: FaultStopService, Host: "db-1", Service: "sshd.service"}); err == nil || !strings.Contains(err.Error(), "not one drills stop") {
		t.Errorf("stopping sshd: %v, want a refusal", err)
	}
	if len(r.Snapshot()) != 0 {
		t.Fatalf("refused faults ran commands: %v", r.Snapshot())
	}
	for _, fl := range []Fault{{Kind: FaultStopService, Host: "shop-1", Service: hostcmd.NginxUnit}, {Kind: FaultStopService, Host: "db-1", Service: hostcmd.PGAutoFailoverUnit}} {
		if _, err := f.Inject(ctx, fl); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Heal(ctx); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range r.Snapshot() {
		if !c.Root {
			t.Errorf("%s not as root", c)
		}
		got = append(got, c.Host+": "+c.Cmd)
	}
	want := []string{"shop-1: systemctl stop nginx.service", "db-1: systemctl stop pgautofailover.service",
		"db-1: systemctl start pgautofailover.service", "shop-1: systemctl start nginx.service"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("commands:\n%s\nwant (healed newest first):\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if err := f.Heal(ctx); err != nil || len(r.Snapshot()) != 4 {
		t.Errorf("a second heal ran again: %v %v", err, r.Snapshot())
	}
}
