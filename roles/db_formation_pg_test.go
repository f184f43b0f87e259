package roles

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/belay-sh/belay/hostcmd"
	"github.com/belay-sh/belay/internal/pgtest"
	"github.com/belay-sh/belay/internal/shq"
)

// TestFormationWithPgAutoctl runs a dedicated cell's ensure_formation against
// a real pg_auto_failover 2.0 monitor on loopback (as the postgres OS user,
// TLS with pg_autoctl's self-signed certificates, as belay's monitor): both
// data nodes of a pair creating the formation at once leave one formation and
// neither fails; running it again changes nothing; a node may then register
// in it (`pg_autoctl create postgres --formation` refuses an unknown one).
func TestFormationWithPgAutoctl(t *testing.T) {
	pgUser := pgtest.Require(t)
	if _, err := exec.LookPath("pg_autoctl"); err != nil {
		t.Skip("pg_autoctl is not installed (apt-get install pg-auto-failover-cli postgresql-15-auto-failover)")
	}
	dir := t.TempDir()
	for _, d := range []string{dir + "/..", dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("chown", pgUser.Uid+":"+pgUser.Gid, dir).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v\n%s", err, out)
	}
	env := []string{"PATH=" + pgtest.Bin + ":/usr/bin:/bin", "HOME=" + dir, "LANG=C", "PGCONNECT_TIMEOUT=5"}
	as := func(script string) (string, error) {
		cmd := exec.Command("runuser", "-u", "postgres", "--", "sh", "-c", script)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	mon := exec.Command("runuser", "-u", "postgres", "--", "pg_autoctl", "create", "monitor",
		"--pgdata", dir+"/mon", "--pgport", fmt.Sprint(port), "--hostname", "127.0.0.1",
		"--auth", "trust", "--ssl-self-signed", "--run")
	mon.Env = env
	logf, err := os.Create(dir + "/monitor.log")
	if err != nil {
		t.Fatal(err)
	}
	mon.Stdout, mon.Stderr = logf, logf
	if err := mon.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = as("pg_autoctl stop --pgdata " + dir + "/mon")
		done := make(chan error, 1)
		go func() { done <- mon.Wait() }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = mon.Process.Kill()
			<-done
		}
		logf.Close()
	})

	s := dbSpec(t, "shop-c2-db-1", "10.213.0.100")
	s.DB.MonitorAddress, s.DB.Port, s.DB.Formation = "127.0.0.1", port, "shop_c2"
	uri := pgafMonitorURI(s.DB)
	count := "psql -X -A -t -d '" + uri + "' -c \"SELECT count(*) || ' ' || kind || ' ' || opt_secondary FROM pgautofailover.formation WHERE formationid = 'shop_c2' GROUP BY kind, opt_secondary\""
	deadline := time.Now().Add(90 * time.Second)
	for {
		out, err := as("psql -X -A -t -d '" + uri + "' -c 'SELECT 1'")
		if err == nil && strings.TrimSpace(out) == "1" {
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(dir + "/monitor.log")
			t.Fatalf("the monitor did not answer in 90 s: %v %s\n%s", err, out, log)
		}
		time.Sleep(500 * time.Millisecond)
	}
	fn := ensureFormationFunc(s.DB)
	script := "set -eu\nas_pg() { \"$@\"; }\n" + fn + "\n" +
		"ensure_formation & a=$!\nensure_formation & b=$!\nwait $a; wait $b\nensure_formation\necho ensured\n"
	out, err := as(script)
	if err != nil || !strings.HasSuffix(strings.TrimSpace(out), "ensured") {
		t.Fatalf("ensure_formation twice at once, then again: %v\n%s", err, out)
	}
	if got, err := as(count); err != nil || strings.TrimSpace(got) != "1 pgsql true" {
		t.Fatalf("formation shop_c2 on the monitor: %q %v, want one pgsql formation with secondary enabled", got, err)
	}
	// The rendered setup calls it before every pg_autoctl create attempt.
	c, _ := renderParsed(t, s)
	setup := fileAt(t, c, DBSetupScript).Content
	if !strings.Contains(setup, fn) || !strings.Contains(setup, "until ensure_formation && as_pg pg_autoctl create postgres") || !strings.Contains(setup, "--formation shop_c2 ") {
		t.Errorf("setup script does not ensure the formation before creating the node:\n%s", setup)
	}
	// A node registers in it (and would not in an unknown formation).
	// (Each attempt its own data directory: pg_autoctl keeps a node's
	// config, formation included, under $HOME/.config by data directory.)
	node := "pg_autoctl create postgres --pgdata " + dir + "/%[1]s --pgport %[2]d --hostname 127.0.0.1 --auth trust --ssl-self-signed --monitor '" + uri + "' --formation %[3]s --name %[1]s" // no --dbname, as belay-db-setup
	if out, err := as(fmt.Sprintf(node, "n0", port+1, "nosuch")); err == nil || !strings.Contains(out, `formation "nosuch" does not exist`) {
		t.Errorf("registering in an unknown formation: %v\n%s", err, out)
	}
	t.Cleanup(func() { _, _ = as("pg_ctl -D " + dir + "/n1 -m immediate -w stop") })
	if out, err := as(fmt.Sprintf(node, "n1", port+2, "shop_c2")); err != nil {
		t.Fatalf("registering in shop_c2: %v\n%s", err, out)
	}
	if got, err := as("psql -X -A -t -d '" + uri + "' -c \"SELECT formationid FROM pgautofailover.node WHERE nodename = 'n1'\""); err != nil || strings.TrimSpace(got) != "shop_c2" {
		t.Errorf("n1's formation: %q %v", got, err)
	}
	// A node of the stack's pair (formation default) next to it: the
	// monitor queries belay runs see only their own formation's node.
	t.Cleanup(func() { _, _ = as("pg_ctl -D " + dir + "/n2 -m immediate -w stop") })
	if out, err := as(fmt.Sprintf(node, "n2", port+3, "default")); err != nil {
		t.Fatalf("registering in default: %v\n%s", err, out)
	}
	query := func(sql string, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		out, err := as("psql -X -q -t -A -v ON_ERROR_STOP=1 -d '" + uri + "' -c " + shq.Quote(sql))
		if err != nil {
			t.Fatalf("%s: %v\n%s", sql, err, out)
		}
		return strings.TrimSpace(out)
	}
	// Neither keeper runs: give the nodes the states whose counts tell
	// the formations apart (n1 primary in shop_c2, n2 secondary in default).
	// The monitor's superuser over its socket (Debian's default directory)
	// or, where that is elsewhere, over loopback (pg_autoctl's --auth trust).
	super := "for h in /var/run/postgresql /tmp 127.0.0.1; do psql -X -q -t -A -v ON_ERROR_STOP=1 -U postgres -h $h -p " + fmt.Sprint(port) + " -d pg_auto_failover -c "
	if out, err := as(super + shq.Quote("UPDATE pgautofailover.node SET reportedstate = CASE nodename WHEN 'n1' THEN 'primary' ELSE 'secondary' END::pgautofailover.replication_state WHERE nodename IN ('n1', 'n2')") + " && exit 0; done; exit 1"); err != nil {
		t.Fatalf("setting the nodes' states as the monitor's superuser: %v\n%s", err, out)
	}
	for _, c := range []struct{ formation, node, state string }{{"default", "n2", "0/1"}, {"shop_c2", "n1", "1/0"}} {
		nodes := query(hostcmd.FormationNodesSQL(c.formation))
		if len(strings.Split(nodes, "\n")) != 1 || !strings.HasPrefix(nodes, c.node+"|") {
			t.Errorf("nodes of formation %s: %q, want %s's line only", c.formation, nodes, c.node)
		}
		if st := query(hostcmd.FormationStateSQL(c.formation)); st != c.state {
			t.Errorf("state of formation %s: %q, want %s", c.formation, st, c.state)
		}
	}
	if got := query(hostcmd.NodeStatesSQL, nil); !strings.HasPrefix(got, "n2|secondary|") || strings.Contains(got, "n1") {
		t.Errorf("NodeStatesSQL (the stack's pair): %q, want n2 only", got)
	}
	if got := query(hostcmd.FormationSQL, nil); got != "0/1" {
		t.Errorf("FormationSQL (the stack's pair): %q, want 0/1", got)
	}
}
