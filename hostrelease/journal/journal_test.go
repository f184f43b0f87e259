package journal_test

import (
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/belay-sh/belay/hostrelease"
	"github.com/belay-sh/belay/hostrelease/journal"
)

func sh(t *testing.T, script string) (string, error) {
	t.Helper()
	out, err := exec.Command("sh", "-c", script).CombinedOutput()
	return string(out), err
}

func TestWrapWritesJournalAroundStep(t *testing.T) {
	l := hostrelease.Layout{App: "shop", Base: t.TempDir()}
	now := time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)
	base := journal.Record{DeployID: "d1", App: "shop", Kind: "deploy", Target: "v2", Previous: "v1", Status: journal.Running, By: "me", StartedAt: now, UpdatedAt: now}
	before, after := base, base
	before.InProgress = "03-canary"
	after.Step = "03-canary"
	tests := []struct {
		name    string
		cmd     string
		wantErr bool
		want    journal.Record
	}{
		{"success records the step", "echo ok", false, after},
		{"failure leaves it in progress", "echo 'it's $broken' >&2; exit 3", true, before},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := sh(t, journal.Wrap(l, before, after, tc.cmd))
			if (err != nil) != tc.wantErr {
				t.Fatalf("err %v: %s", err, out)
			}
			got, _ := sh(t, journal.ReadCommand(l))
			rec, err := journal.Parse([]byte(got))
			if err != nil || !reflect.DeepEqual(*rec, tc.want) {
				t.Fatalf("journal %+v %v, want %+v", rec, err, tc.want)
			}
		})
	}
	if _, err := sh(t, "exit 4"); err == nil {
		t.Fatal("sh broken")
	}
	if out, _ := sh(t, journal.Wrap(l, before, after, "exit 9")+"; echo unreachable"); strings.Contains(out, "unreachable") {
		t.Fatal("wrapped command's exit status lost")
	}
}

func TestAuditAppendAndRead(t *testing.T) {
	l := hostrelease.Layout{App: "shop", Base: t.TempDir()}
	for i, r := range []string{"v1", "v2", "v3"} {
		e := journal.Entry{Time: time.Unix(int64(i), 0).UTC(), Who: "a@b", From: "laptop", Action: "deploy", App: "shop", Release: r, Result: "ok", Detail: "quote ' and <<EOF"}
		if out, err := sh(t, journal.AppendAuditCommand(l, e)); err != nil {
			t.Fatalf("%v %s", err, out)
		}
	}
	out, _ := sh(t, journal.ReadAuditCommand(l, 2))
	es, err := journal.ParseAudit([]byte(out))
	if err != nil || len(es) != 2 || es[0].Release != "v2" || es[1].Release != "v3" || es[1].Detail != "quote ' and <<EOF" {
		t.Fatalf("got %+v %v", es, err)
	}
	if _, err := journal.ParseAudit([]byte("{\"time\":1}\nnot json\n")); err == nil {
		t.Fatal("corrupt line accepted")
	}
}

func TestKnownGood(t *testing.T) {
	l := journal.AddKnownGood([]string{"v1", "v2", "v3"}, "v2", 3)
	if !reflect.DeepEqual(l, []string{"v1", "v3", "v2"}) {
		t.Fatal(l)
	}
	l = journal.AddKnownGood(l, "v4", 3)
	if !reflect.DeepEqual(l, []string{"v3", "v2", "v4"}) {
		t.Fatal(l)
	}
	r := &journal.Record{KnownGood: l}
	if r.LastKnownGood("v4") != "v2" || r.LastKnownGood("x") != "v4" {
		t.Fatal("LastKnownGood")
	}
	if got := journal.RemoveKnownGood(l, "v2"); !reflect.DeepEqual(got, []string{"v3", "v4"}) {
		t.Fatal(got)
	}
}

// TestWriteCommandKeepsAnyText: a record's free text (an error from a host,
// say) reaches the journal byte for byte, whatever shell syntax it holds.
func TestWriteCommandKeepsAnyText(t *testing.T) {
	l := hostrelease.Layout{App: "shop", Base: t.TempDir()}
	rec := journal.Record{DeployID: "d1", App: "shop", Status: journal.RolledBack,
		Error: "it's 100% \"bad\" \\n $HOME `id` $(id)\nsecond line\t%s %d '' \\"}
	if out, err := sh(t, journal.WriteCommand(l, rec)); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	got, _ := sh(t, journal.ReadCommand(l))
	back, err := journal.Parse([]byte(got))
	if err != nil || back.Error != rec.Error {
		t.Fatalf("journal error text %q (%v), want %q", back.Error, err, rec.Error)
	}
}
