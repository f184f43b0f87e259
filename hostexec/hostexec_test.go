package hostexec

import (
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseEnvFile(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []string
		err      string
	}{
		{"plain", "# c\n; c\n\nDATABASE_URL=postgres://a@h1,h2/db?target_session_attrs=read-write\n", []string{"DATABASE_URL=postgres://a@h1,h2/db?target_session_attrs=read-write"}, ""},
		{"quotes", "A='x y'\nB=\"q\\\"u\\\\o \\$t\"\nC= spaced \n", []string{"A=x y", `B=q"u\o $t`, "C=spaced"}, ""},
		{"continuation", "A=one \\\ntwo\n", []string{"A=one two"}, ""},
		{"shell metachars stay data", "A=$(id)&;|`x`\n", []string{"A=$(id)&;|`x`"}, ""},
		{"bad key", "1A=x\n", nil, "line 1: expected KEY=VALUE"},
		{"no equals", "JUSTTEXT\n", nil, "line 1: expected KEY=VALUE"},
		{"unterminated", "A=\"x\n", nil, "unterminated quote"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseEnvFile([]byte(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// layout builds /etc/belay/shop.env and /srv/shop/current -> releases/v7 under a
// temp dir every user can traverse (the exec test runs as nobody).
func layout(t *testing.T) Paths {
	t.Helper()
	root := t.TempDir()
	p := Paths{EnvDir: filepath.Join(root, "etc"), SrvDir: filepath.Join(root, "srv")}
	rel := filepath.Join(p.SrvDir, "shop", "releases", "v7")
	for _, d := range []string{p.EnvDir, rel} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The env file is root's only, as a secret file may be: the helper reads it before dropping.
	if err := os.WriteFile(filepath.Join(p.EnvDir, "shop.env"), []byte("DATABASE_URL=postgres://x\nSECRET='s e'\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("releases/v7", filepath.Join(p.SrvDir, "shop", "current")); err != nil {
		t.Fatal(err)
	}
	for d := root; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	return p
}

func TestPrepare(t *testing.T) {
	p := layout(t)
	pl, err := Prepare(p, "shop", []string{"id", "-un"})
	if err != nil {
		t.Fatal(err)
	}
	if pl.Release != "v7" || pl.Dir != filepath.Join(p.SrvDir, "shop", "releases", "v7") {
		t.Fatalf("plan %+v", pl)
	}
	for _, want := range []string{"DATABASE_URL=postgres://x", "SECRET=s e", "BELAY_RELEASE=v7", "BELAY_SLOT=exec", "PATH=" + DefaultPath} {
		if !contains(pl.Env, want) {
			t.Errorf("env %q lacks %q", pl.Env, want)
		}
	}
	for _, tc := range []struct {
		name, app string
		argv      []string
		err       string
	}{
		{"bad name", "../etc", []string{"id"}, `app "../etc": expected a lowercase app name`},
		{"upper", "Shop", []string{"id"}, "expected a lowercase app name"},
		{"not installed", "blog", []string{"id"}, "app blog: not installed on this host"},
		{"no command", "shop", nil, "command: empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Prepare(p, tc.app, tc.argv); err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err = %v, want %q", err, tc.err)
			}
		})
	}
	t.Run("current outside releases", func(t *testing.T) {
		cur := filepath.Join(p.SrvDir, "shop", "current")
		os.Remove(cur)
		os.Symlink("/etc", cur)
		if _, err := Prepare(p, "shop", []string{"id"}); err == nil || !strings.Contains(err.Error(), "expected a directory in") {
			t.Fatalf("err = %v", err)
		}
	})
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestMain lets TestExecDropsToUser re-run this binary as the helper: Exec
// replaces the process, so it cannot run inside the test process itself.
func TestMain(m *testing.M) {
	if app := os.Getenv("HOSTEXEC_TEST_APP"); app != "" {
		p := Paths{EnvDir: os.Getenv("HOSTEXEC_TEST_ENVDIR"), SrvDir: os.Getenv("HOSTEXEC_TEST_SRVDIR")}
		pl, err := Prepare(p, app, strings.Fields(os.Getenv("HOSTEXEC_TEST_ARGV")))
		if err == nil {
			err = Exec(pl, os.Getenv("HOSTEXEC_TEST_USER"))
		}
		os.Stderr.WriteString("helper: " + err.Error() + "\n")
		os.Exit(97)
	}
	os.Exit(m.Run())
}

// TestExecDropsToUser runs real commands through the helper as an unprivileged
// user: the identity, the directory and environment, the exit status, and no
// way back to root through sudo (no_new_privs).
func TestExecDropsToUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to drop privileges")
	}
	const who = "nobody"
	if _, err := user.Lookup(who); err != nil {
		t.Skip(err)
	}
	p := layout(t)
	run := func(argv string) (string, int) {
		t.Helper()
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "HOSTEXEC_TEST_APP=shop", "HOSTEXEC_TEST_ENVDIR="+p.EnvDir, "HOSTEXEC_TEST_SRVDIR="+p.SrvDir,
			"HOSTEXEC_TEST_ARGV="+argv, "HOSTEXEC_TEST_USER="+who)
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(out)), code
	}
	if out, code := run("id -un"); out != who || code != 0 {
		t.Errorf("id -un: %q exit %d, want %s", out, code, who)
	}
	if out, _ := run("pwd"); out != filepath.Join(p.SrvDir, "shop", "releases", "v7") {
		t.Errorf("pwd: %q", out)
	}
	if out, _ := run("printenv DATABASE_URL BELAY_RELEASE"); out != "postgres://x\nv7" {
		t.Errorf("env: %q", out)
	}
	if _, code := run("false"); code != 1 {
		t.Errorf("false: exit %d, want 1", code)
	}
	if out, _ := run("cat /proc/self/status"); !strings.Contains(out, "NoNewPrivs:\t1") {
		t.Errorf("no_new_privs not set:\n%s", out)
	}
	if out, _ := run("cat /proc/self/status"); groups(out) != "" {
		t.Errorf("supplementary groups kept: %q", groups(out))
	}
	if _, err := exec.LookPath("sudo"); err == nil {
		if out, code := run("sudo -n id -u"); code == 0 || out == "0" {
			t.Errorf("sudo as %s: %q exit %d, want refused", who, out, code)
		}
	}
	if out, code := run("nosuchprogram"); code != 97 || !strings.Contains(out, "not found in PATH") {
		t.Errorf("missing program: %q exit %d", out, code)
	}
}

func groups(status string) string {
	for _, l := range strings.Split(status, "\n") {
		if g, ok := strings.CutPrefix(l, "Groups:"); ok {
			return strings.TrimSpace(g)
		}
	}
	return "(no Groups line)"
}
