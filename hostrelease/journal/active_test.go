package journal_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/belay-sh/belay/hostrelease"
	"github.com/belay-sh/belay/hostrelease/journal"
)

// TestActiveLinesReal runs ActiveLines with a real sh on a host layout in a
// temp dir and reads the output back with ParseActive.
func TestActiveLinesReal(t *testing.T) {
	l := hostrelease.Layout{App: "shop", Base: t.TempDir()}
	run := func() journal.Active {
		t.Helper()
		out, err := exec.Command("sh", "-c", strings.Join(journal.ActiveLines(l), "\n")).CombinedOutput()
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		a, err := journal.ParseActive(string(out))
		if err != nil {
			t.Fatalf("ParseActive(%q): %v", out, err)
		}
		return a
	}
	if a := run(); a.Current != "" || a.Canary != "" || a.Journal != nil {
		t.Fatalf("a host without a release: %+v", a)
	}
	for _, id := range []string{"v7", "v8"} {
		if err := os.MkdirAll(l.Release(id), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(l.Release("v7"), l.Current()); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(l.Release("v8"), l.Canary()); err != nil {
		t.Fatal(err)
	}
	// WriteCommand writes the journal exactly as a deploy does.
	rec := journal.Record{DeployID: "d1", App: "shop", Kind: "deploy", Target: "v8", Previous: "v7", Status: journal.Paused,
		By: "ci", StartedAt: time.Unix(1790000000, 0).UTC(), UpdatedAt: time.Unix(1790000060, 0).UTC()}
	if out, err := exec.Command("sh", "-c", journal.WriteCommand(l, rec)).CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	a := run()
	if a.Current != "v7" || a.Canary != "v8" || a.Journal == nil || a.Journal.Status != journal.Paused || a.Journal.Target != "v8" {
		t.Fatalf("got %+v (journal %+v), want current v7, canary v8, journal paused to v8", a, a.Journal)
	}
}

func TestParseActive(t *testing.T) {
	tests := []struct {
		name, out      string
		current, canar string
		status         journal.Status
		err            string
	}{
		{"no release", "current=\ncanary=\njournal=\n", "", "", "", ""},
		{"other lines passed over", "stable=active\ncurrent=v7\nhealth=200\ncanary=\njournal=\nhostNow=1\n", "v7", "", "", ""},
		{"a running journal", "current=v7\ncanary=v8\njournal={\"target\":\"v8\",\"status\":\"running\"}\n", "v7", "v8", journal.Running, ""},
		{"a corrupt journal: the links still read", "current=v7\njournal={not json\ncanary=v8\n", "v7", "v8", "", "journal: "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := journal.ParseActive(tc.out)
			if a.Current != tc.current || a.Canary != tc.canar {
				t.Errorf("links: current %q canary %q, want %q %q", a.Current, a.Canary, tc.current, tc.canar)
			}
			var status journal.Status
			if a.Journal != nil {
				status = a.Journal.Status
			}
			if status != tc.status {
				t.Errorf("journal status %q, want %q", status, tc.status)
			}
			if (err != nil) != (tc.err != "") || err != nil && !strings.HasPrefix(err.Error(), tc.err) {
				t.Errorf("error %v, want one starting %q", err, tc.err)
			}
		})
	}
}
