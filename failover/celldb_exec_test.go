package failover

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/remote/remotetest"
)

// dedicatedSite scripts a stack with a dedicated cell: each standby database
// (the stack's, the cell's) is promoted on its own, and the way back's
// formations report whole; the routers as cellsSite's.
type dedicatedSite struct {
	cellsSite
	promoted map[string]bool // per standby database
	resynced map[string]bool
}

func (f *dedicatedSite) handle(c remotetest.Call) ([]byte, error) {
	switch {
	case strings.Contains(c.Cmd, "pg_promote"):
		f.promoted[c.Host] = true
		f.fakeSite.promoted = f.promoted["db-standby"]
		return []byte("t\n"), nil
	case strings.Contains(c.Cmd, "pg_is_in_recovery"):
		if f.promoted[c.Host] && !f.resynced[c.Host] {
			return []byte("f\n"), nil
		}
		return []byte("t\n"), nil
	case strings.Contains(c.Cmd, "belay-standby-restore --resync"):
		f.resynced[c.Host] = true
		return nil, nil
	case strings.Contains(c.Cmd, "pgautofailover.node"):
		return []byte("1/1\n"), nil
	case c.Root && strings.Contains(c.Cmd, "systemctl start keepalived.service nginx.service belay-router-sync@shop.service"):
		f.router.synced = true
		return nil, nil
	}
	return f.cellsSite.handle(c)
}

func dedicatedEnv(t *testing.T, inv *inventory.Inventory, f *dedicatedSite, to Direction) (*Env, *remotetest.Runner, *Plan) {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(srv.Close)
	p, err := PlanSite(inv, to)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(srv.URL)
	for i := range p.Steps {
		if p.Steps[i].Kind == KindHTTP {
			p.Steps[i].Address = u.Host
		}
	}
	r := &remotetest.Runner{Handle: f.handle}
	env := &Env{Inv: inv, Hosts: r, DNS: &FileDNSDouble{Path: filepath.Join(t.TempDir(), "dns.json")}, Zone: "lab.belay.test", TTL: 60,
		StatePath: filepath.Join(t.TempDir(), "state.json"), HealthTimeout: 2 * time.Second, Out: &bytes.Buffer{}, Sleep: func(time.Duration) {},
		OldSiteReachable: func(context.Context) (bool, string) { return true, "" }}
	return env, r, p
}

// TestExecuteDedicatedCellSwitch: to the standby site and back with a
// dedicated cell c2. Its standby database is promoted after its pair is
// fenced and before its standby server starts, with its RPO edge and
// promotion time recorded apart from the stack's; on the way back it is
// archived after its standby server stopped, its pair reseeded after the
// monitor, and it is re-restored after the full backup.
func TestExecuteDedicatedCellSwitch(t *testing.T) {
	const sdb = "shop-c2-standby-db"
	inv := dedicatedInventory(t, false)
	f := &dedicatedSite{promoted: map[string]bool{}, resynced: map[string]bool{}}
	env, r, p := dedicatedEnv(t, inv, f, ToStandby)
	res, err := Execute(context.Background(), env, p)
	if err != nil {
		t.Fatalf("to standby: %v\n%s", err, env.Out)
	}
	for _, k := range []string{"lastReplayedCommit", "lastReplayedCommit/" + sdb, "promotedAt", "promotedAt/" + sdb} {
		if res.Facts[k] == "" {
			t.Errorf("fact %s missing: %v", k, res.Facts)
		}
	}
	var seq []string
	for _, c := range r.Snapshot() {
		switch {
		case c.Root && strings.HasPrefix(c.Cmd, "systemctl stop pgautofailover"):
			seq = append(seq, "fence "+c.Host)
		case strings.Contains(c.Cmd, "pg_promote"):
			seq = append(seq, "promote "+c.Host)
		case c.Root && strings.Contains(c.Cmd, "enable --now belay-app@shop"):
			seq = append(seq, "start "+c.Host)
		}
	}
	want := "fence db-1,fence db-2,fence shop-c2-db-1,fence shop-c2-db-2,fence db-monitor,promote db-standby,promote " + sdb + ",start shop-c1-standby,start shop-c2-standby"
	if got := strings.Join(seq, ","); got != want {
		t.Errorf("order:\n got %s\nwant %s", got, want)
	}

	// Preflight of another switch refuses: c2's standby is promoted.
	f2 := &dedicatedSite{promoted: map[string]bool{sdb: true}, resynced: map[string]bool{}}
	env2, _, p2 := dedicatedEnv(t, inv, f2, ToStandby)
	if err := Preflight(context.Background(), env2, p2); err == nil || !strings.Contains(err.Error(), sdb+" is already promoted") {
		t.Errorf("Preflight with c2's standby promoted: %v", err)
	}

	// The way back.
	env, r, p = dedicatedEnv(t, inv, f, ToPrimary)
	if _, err := Execute(context.Background(), env, p); err != nil {
		t.Fatalf("to primary: %v\n%s", err, env.Out)
	}
	seq = nil
	for _, c := range r.Snapshot() {
		switch {
		case c.Root && strings.Contains(c.Cmd, "belay-db-reseed"):
			seq = append(seq, c.Host+" "+c.Cmd[strings.LastIndex(c.Cmd, " ")+1:])
		case c.Root && strings.Contains(c.Cmd, "belay-standby-final-archive"):
			seq = append(seq, c.Host+" archived")
		case c.Root && strings.Contains(c.Cmd, "belay-standby-restore --resync"):
			seq = append(seq, c.Host+" resync")
		case c.Root && strings.Contains(c.Cmd, "disable --now belay-app@shop"):
			seq = append(seq, c.Host+" stopped")
		}
	}
	want = "db-monitor monitor,shop-c1-standby stopped,shop-c2-standby stopped,db-standby archived," + sdb + " archived,db-1 primary,db-2 replica,shop-c2-db-1 primary,shop-c2-db-2 replica,db-standby resync," + sdb + " resync"
	if got := strings.Join(seq, ","); got != want {
		t.Errorf("way back order:\n got %s\nwant %s", got, want)
	}
	if f.promoted[sdb] && !f.resynced[sdb] {
		t.Error("c2's standby database was not re-restored")
	}
}
