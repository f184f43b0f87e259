//go:build lab

package deploy_test

import (
	"slices"
	"strings"
	"testing"
)

// envSet runs `belay env set` on a per-test env dir; the seed is the lab's
// own (stack "lab").
func envSet(t *testing.T, dir string, kv ...string) {
	t.Helper()
	if r := belay(t, append([]string{"env", "set", app.Name, "--env-dir", dir}, kv...)...); r.err != nil {
		t.Fatalf("env set: %v", r.err)
	}
}

func envOnly(t *testing.T, dir string, extra ...string) result {
	t.Helper()
	return belay(t, append([]string{"deploy", "--app", app.Name, "--env-only", "--env-dir", dir, "--steps", "none", "--pause", "0", "--health-timeout", "10s"}, extra...)...)
}

// TestLabEnvThroughCanaryAndRolledBack: `belay env set` changes no host; an
// env-only deploy carries it through the canary to every host; a bad config
// (LAB_HEALTH=fail fails the canary's health check) is rolled back with its
// release, and clients keep the previous env.
func TestLabEnvThroughCanaryAndRolledBack(t *testing.T) {
	dir := t.TempDir()
	base := newID("envbase")
	if r := deployDirect(t, base, artifact(t, base), "--env-dir", dir); r.err != nil {
		t.Fatalf("baseline: %v", r.err)
	}
	assertConverged(t, base)

	envSet(t, dir, "LAB_COLOR=blue")
	assertConverged(t, base) // a config change is not applied until deployed
	if body := get(t, "/env?key=LAB_COLOR"); !strings.Contains(body, "LAB_COLOR is not set") {
		t.Fatalf("before the env-only deploy: %q", body)
	}
	r := envOnly(t, dir)
	if r.err != nil {
		t.Fatalf("env-only deploy: %v", r.err)
	}
	blue := base + ".env1"
	if !strings.Contains(r.stderr, "start canary "+blue) {
		t.Errorf("the env did not go through a canary:\n%s", r.stderr)
	}
	assertConverged(t, blue)
	if body := get(t, "/env?key=LAB_COLOR"); body != "LAB_COLOR=blue\n" {
		t.Fatalf("after the env-only deploy: %q", body)
	}

	envSet(t, dir, "LAB_COLOR=green", "LAB_HEALTH=fail")
	r = envOnly(t, dir)
	if r.err == nil {
		t.Fatal("a config that fails the health check was deployed")
	}
	assertConverged(t, blue)
	if body := get(t, "/env?key=LAB_COLOR"); body != "LAB_COLOR=blue\n" {
		t.Fatalf("after the rollback: %q, want the previous env", body)
	}
	green := base + ".env2"
	for _, st := range status(t) {
		if st.Journal != nil && slices.Contains(st.Journal.KnownGood, green) {
			t.Errorf("%s: the rolled-back env release %s is known-good", st.Host, green)
		}
	}
}

// TestLabReleaseCommand: the release command runs once before the canary, as
// the app with its env (DATABASE_URL included), output streamed; when it
// fails, nothing is switched: every host still serves the previous release and
// the new one is not known-good.
func TestLabReleaseCommand(t *testing.T) {
	dir := t.TempDir()
	prev := newID("hookbase")
	if r := deployDirect(t, prev, artifact(t, prev), "--env-dir", dir); r.err != nil {
		t.Fatalf("baseline: %v", r.err)
	}
	assertConverged(t, prev)
	envSet(t, dir, "LAB_RELEASE_EXIT=3")

	bad := newID("hookfail")
	r := deployDirect(t, bad, artifact(t, bad), "--env-dir", dir, "--release-command", "start release")
	if r.err == nil {
		t.Fatal("a failing release command did not stop the deploy")
	}
	host := app.Hosts[0]
	for _, want := range []string{"[" + host + "] labapp release command: release=" + bad + " slot=release DATABASE_URL set", "exit 3", "nothing was switched"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(r.stderr, "start canary "+bad) || strings.Contains(r.stderr, "route ") {
		t.Errorf("a canary started or a route changed after the release command failed:\n%s", r.stderr)
	}
	assertConverged(t, prev)
	for _, s := range status(t) {
		if s.Journal == nil || s.Journal.Target != bad || string(s.Journal.Status) != "rolled-back" {
			t.Errorf("%s: journal %+v, want %s rolled-back", s.Host, s.Journal, bad)
			continue
		}
		for _, k := range s.Journal.KnownGood {
			if k == bad {
				t.Errorf("%s: %s is known-good", s.Host, bad)
			}
		}
	}

	envSet(t, dir, "LAB_RELEASE_EXIT=0")
	good := newID("hookok")
	r = deployDirect(t, good, artifact(t, good), "--env-dir", dir, "--release-command", "start release")
	if r.err != nil {
		t.Fatalf("deploy with a passing release command: %v", r.err)
	}
	if n := strings.Count(r.stderr, "labapp release command: exit 0"); n != 1 {
		t.Errorf("the release command ran %d times, want once:\n%s", n, r.stderr)
	}
	assertConverged(t, good)
}
