package converge_test

import (
	"slices"
	"testing"

	"github.com/belay-sh/belay/converge"
	"github.com/belay-sh/belay/hostcmd"
	"github.com/belay-sh/belay/roles"
)

// TestStanzaListEffect: a changed stanza list (a dedicated cell added) re-runs
// the first-backup job, which creates the new stanza and takes its first full.
func TestStanzaListEffect(t *testing.T) {
	e := converge.EffectOf(roles.PgBackRestStanzasFile)
	want := converge.Cmd{"systemctl", "restart", "--no-block", hostcmd.FirstBackupUnit}
	if e.Skip || len(e.Activate) != 1 || !slices.Equal(e.Activate[0], want) {
		t.Errorf("EffectOf(%s) = %+v, want %q", roles.PgBackRestStanzasFile, e, want)
	}
	if !converge.Allowed(roles.PgBackRestStanzasFile) {
		t.Errorf("%s is not a path converge may write", roles.PgBackRestStanzasFile)
	}
}
