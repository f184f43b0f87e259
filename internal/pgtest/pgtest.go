// Package pgtest starts a throwaway PostgreSQL on loopback for tests that need
// the real server (roles' config checks, the router's mapping). It imports
// "testing" like net/http/httptest does and is only used from _test.go files.
package pgtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
)

// Bin is where Debian's postgresql-15 installs its server binaries.
const Bin = "/usr/lib/postgresql/15/bin"

// StartOnFreePort starts a test PostgreSQL through start(port) on a loopback
// port the kernel has just handed out, and retries on a new port when
// PostgreSQL could not bind it: such ports come from the ephemeral range that
// every other test's outgoing connections draw from too, so a fixed or
// pid-derived port collides now and then (it did in CI).
func StartOnFreePort(t testing.TB, logPath string, start func(port int) (string, error)) int {
	t.Helper()
	for attempt := 1; ; attempt++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("pick a loopback port: %v", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		_ = os.Remove(logPath) // a log per attempt: an old bind error must not look like a new one
		out, err := start(port)
		if err == nil {
			return port
		}
		log, _ := os.ReadFile(logPath)
		if attempt < 5 && strings.Contains(string(log), "Address already in use") {
			t.Logf("port %d was taken before PostgreSQL bound it; trying another", port)
			continue
		}
		t.Fatalf("start PostgreSQL on port %d: %v\n%s\n%s", port, err, out, log)
	}
}

// Server is a running test PostgreSQL: superuser postgres, trust on loopback.
type Server struct {
	Port int
	dir  string
	as   func(script string) (string, error)
}

// DSN connects as the superuser to database db over loopback TCP.
func (s *Server) DSN(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable&connect_timeout=5", s.Port, db)
}

// Stop stops the server at once (a database outage, as clients see it).
func (s *Server) Stop() error {
	out, err := s.as(fmt.Sprintf("pg_ctl -D %s/pgdata -m immediate -w stop", s.dir))
	if err != nil {
		return fmt.Errorf("pg_ctl stop: %w: %s", err, out)
	}
	return nil
}

// Start starts it again on the same port (after Stop).
func (s *Server) Start() error {
	out, err := s.as(fmt.Sprintf("pg_ctl -D %[1]s/pgdata -l %[1]s/pg.log -o '-p %[2]d' -w start >/dev/null", s.dir, s.Port))
	if err != nil {
		return fmt.Errorf("pg_ctl start: %w: %s", err, out)
	}
	return nil
}

// Start initialises and starts a PostgreSQL 15 on a free loopback port, as the
// postgres OS user (PostgreSQL refuses to run as root), with trust
// authentication on loopback only; it is stopped at the end of the test. It
// skips when PostgreSQL 15, root or the postgres user are missing.
func Start(t testing.TB) *Server {
	t.Helper()
	pgUser := Require(t)
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("chown", pgUser.Uid+":"+pgUser.Gid, dir).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v\n%s", err, out)
	}
	s := &Server{dir: dir}
	s.as = func(script string) (string, error) {
		cmd := exec.Command("runuser", "-u", "postgres", "--", "sh", "-c", script)
		cmd.Env = []string{"PATH=" + Bin + ":/usr/bin:/bin", "HOME=" + dir, "LANG=C"}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := s.as(fmt.Sprintf("initdb -D %[1]s/pgdata -U postgres --auth=trust >/dev/null && "+
		"printf \"listen_addresses = '127.0.0.1'\\nunix_socket_directories = '%[1]s'\\nfsync = off\\n\" >> %[1]s/pgdata/postgresql.conf", dir)); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	s.Port = StartOnFreePort(t, dir+"/pg.log", func(port int) (string, error) {
		s.Port = port
		return "", s.Start()
	})
	t.Cleanup(func() { _ = s.Stop() })
	return s
}

// Require skips the test unless a real PostgreSQL 15 can run here (not
// -short, the binaries, root, the postgres user), and returns that user.
func Require(t testing.TB) *user.User {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: skips tests with a real PostgreSQL")
	}
	if _, err := os.Stat(Bin + "/initdb"); err != nil {
		t.Skipf("PostgreSQL 15 is not installed (%s/initdb); apt-get install postgresql-15", Bin)
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to run PostgreSQL as the postgres user; not root")
	}
	pgUser, err := user.Lookup("postgres")
	if err != nil {
		t.Skip("no postgres user (installed by postgresql-common)")
	}
	return pgUser
}
