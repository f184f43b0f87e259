package roles

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// wrapperRelease lays out /srv/web under a temp dir with one release whose
// start prints its environment, and returns the wrapper and the release dir.
func wrapperRelease(t *testing.T) (runner, rel string) {
	t.Helper()
	c, _ := renderParsed(t, abAppDOSpec(t))
	dir := t.TempDir()
	script := strings.ReplaceAll(fileAt(t, c, "/usr/local/bin/belay-app-run").Content, "/srv/$app/", dir+"/srv/$app/")
	runner = writeTemp(t, dir, "belay-app-run", script, 0o755)
	rel = dir + "/srv/web/releases/v1"
	writeTemp(t, dir, "srv/web/releases/v1/start", "#!/bin/sh\necho \"GREETING=[$GREETING] TOKEN=[$TOKEN] EMPTY=[${EMPTY-unset}] DB=[$DATABASE_URL]\"\n", 0o755)
	writeTemp(t, dir, "srv/web/releases/v1/bin/migrate", "#!/bin/sh\necho \"migrate in $(pwd) args=$* TOKEN=[$TOKEN] slot=$BELAY_SLOT\"\n", 0o755)
	for _, l := range []string{"current", "hook"} {
		if err := os.Symlink(rel, dir+"/srv/web/"+l); err != nil {
			t.Fatal(err)
		}
	}
	return runner, rel
}

func runWrapper(t *testing.T, runner, slot string) (string, error) {
	t.Helper()
	cmd := exec.Command(runner, "web", slot)
	cmd.Dir = t.TempDir()
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "DATABASE_URL=postgres://from-systemd"}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestAppRunEnv: the release's env reaches the app as data (no expansion, no
// command substitution), on top of the systemd-provided DATABASE_URL.
func TestAppRunEnv(t *testing.T) {
	runner, rel := wrapperRelease(t)
	writeTemp(t, rel, ".belay-env", "# belay env of web\nGREETING=hello world = \"x\" $(touch PWNED) `id` $HOME\nTOKEN='s3cret'\nEMPTY=\n", 0o640)
	out, err := runWrapper(t, runner, "stable")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	want := "GREETING=[hello world = \"x\" $(touch PWNED) `id` $HOME] TOKEN=['s3cret'] EMPTY=[] DB=[postgres://from-systemd]\n"
	if out != want {
		t.Fatalf("got  %q\nwant %q", out, want)
	}
	if _, err := os.Stat(filepath.Join(rel, "PWNED")); err == nil {
		t.Fatal("a value ran as code")
	}
	// No env file at all: the app starts with systemd's env only.
	if err := os.Remove(filepath.Join(rel, ".belay-env")); err != nil {
		t.Fatal(err)
	}
	if out, err := runWrapper(t, runner, "stable"); err != nil || !strings.Contains(out, "EMPTY=[unset]") {
		t.Fatalf("no env file: %v %q", err, out)
	}
}

// TestAppRunEnvHostile: the env path is the deploy user's; the wrapper (the app
// user) refuses a link there, whatever it points at, and any line that would
// override what belay sets.
func TestAppRunEnvHostile(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, rel string)
		want  string
	}{
		{"symlink to a root-only file", func(t *testing.T, rel string) {
			if err := os.Symlink("/etc/shadow", filepath.Join(rel, ".belay-env")); err != nil {
				t.Fatal(err)
			}
		}, "not a regular file (a link?), refusing to start"},
		{"symlink to a readable file", func(t *testing.T, rel string) {
			p := writeTemp(t, t.TempDir(), "other.env", "TOKEN=other-apps-secret\n", 0o644)
			if err := os.Symlink(p, filepath.Join(rel, ".belay-env")); err != nil {
				t.Fatal(err)
			}
		}, "not a regular file (a link?)"},
		{"directory", func(t *testing.T, rel string) {
			if err := os.Mkdir(filepath.Join(rel, ".belay-env"), 0o755); err != nil {
				t.Fatal(err)
			}
		}, "not a regular file"},
		{"DATABASE_URL override", func(t *testing.T, rel string) {
			writeTemp(t, rel, ".belay-env", "A=1\nDATABASE_URL=postgres://evil\n", 0o640)
		}, "line 2: DATABASE_URL is set by belay"},
		{"BELAY_ override", func(t *testing.T, rel string) {
			writeTemp(t, rel, ".belay-env", "BELAY_RELEASE=v0\n", 0o640)
		}, "BELAY_RELEASE is set by belay"},
		{"PORT override", func(t *testing.T, rel string) { writeTemp(t, rel, ".belay-env", "PORT=1\n", 0o640) }, "PORT is set by belay"},
		{"bad name", func(t *testing.T, rel string) { writeTemp(t, rel, ".belay-env", "lower=1\n", 0o640) }, "line 1: expected KEY=VALUE"},
		{"name with a shell word", func(t *testing.T, rel string) {
			writeTemp(t, rel, ".belay-env", "A;touch PWNED=1\n", 0o640)
		}, "expected KEY=VALUE"},
		{"no equals", func(t *testing.T, rel string) { writeTemp(t, rel, ".belay-env", "JUSTANAME\n", 0o640) }, "expected KEY=VALUE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			runner, rel := wrapperRelease(t)
			tc.setup(t, rel)
			out, err := runWrapper(t, runner, "stable")
			if err == nil || !strings.Contains(out, tc.want) {
				t.Fatalf("err %v, output %q, want a refusal %q", err, out, tc.want)
			}
			if strings.Contains(out, "GREETING=") || strings.Contains(out, "other-apps-secret") {
				t.Fatalf("the app started: %q", out)
			}
		})
	}
}

// TestAppRunReleaseCommand: slot release runs the command the deployer wrote,
// from the release directory, with the env; a path leaving the release is refused.
func TestAppRunReleaseCommand(t *testing.T) {
	runner, rel := wrapperRelease(t)
	writeTemp(t, rel, ".belay-env", "TOKEN=t0k\n", 0o640)
	writeTemp(t, rel, ".belay-release-command", "bin/migrate\n--to\n42 43\n", 0o644)
	out, err := runWrapper(t, runner, "release")
	if want := "migrate in " + rel + " args=--to 42 43 TOKEN=[t0k] slot=release\n"; err != nil || out != want {
		t.Fatalf("release: %v\ngot  %q\nwant %q", err, out, want)
	}
	for _, cmd := range []string{"/bin/sh\n", "../../../bin/sh\n", "bin/../../x\n", ""} {
		writeTemp(t, rel, ".belay-release-command", cmd, 0o644)
		if out, err := runWrapper(t, runner, "release"); err == nil {
			t.Errorf("release command %q ran: %q", cmd, out)
		}
	}
	if err := os.Remove(filepath.Join(rel, ".belay-release-command")); err != nil {
		t.Fatal(err)
	}
	if out, err := runWrapper(t, runner, "release"); err == nil || !strings.Contains(out, "no release command") {
		t.Fatalf("no command file: %v %q", err, out)
	}
}

// TestNoUnitReadsDeployUserPaths: systemd (root) reads env files only from
// root-owned /etc/belay; nothing under /srv (the deploy user's tree).
func TestNoUnitReadsDeployUserPaths(t *testing.T) {
	c, _ := renderParsed(t, abAppDOSpec(t))
	n := 0
	for _, f := range c.WriteFiles {
		if !strings.HasPrefix(f.Path, "/etc/systemd/system/") {
			continue
		}
		for _, line := range strings.Split(f.Content, "\n") {
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				continue
			}
			switch k {
			case "EnvironmentFile", "LoadCredential", "SetCredential", "ReadOnlyPaths", "BindPaths", "BindReadOnlyPaths":
				n++
				if !strings.HasPrefix(strings.TrimPrefix(v, "-"), "/etc/belay/") {
					t.Errorf("%s: %s=%s: root reads a path outside /etc/belay", f.Path, k, v)
				}
			}
		}
	}
	if n < 3 {
		t.Fatalf("found %d EnvironmentFile lines, expected the stable, canary and release units'", n)
	}
}
