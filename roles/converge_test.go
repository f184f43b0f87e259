package roles

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/belay-sh/belay/seedkeys"
)

// TestConvergeAccess: with a converge key, the host gets the public key
// root-only and exactly one sudoers entry for the helper, which visudo
// accepts; a malformed key is refused naming the field.
func TestConvergeAccess(t *testing.T) {
	priv, err := seedkeys.ConvergeKey(strings.Repeat("k", 64), "test")
	if err != nil {
		t.Fatal(err)
	}
	s := monitorSpec(t)
	s.ConvergeKey = seedkeys.ConvergePublic(priv)
	c, _ := renderParsed(t, s)
	f := fileAt(t, c, ConvergePubFile)
	if f.Permissions != "0600" || f.Owner != "root:root" || strings.TrimSpace(f.Content) != s.ConvergeKey {
		t.Errorf("%s = %s %s %q", ConvergePubFile, f.Owner, f.Permissions, f.Content)
	}
	sud := fileAt(t, c, OpsSudoersFile).Content
	if !strings.Contains(sud, "/usr/local/bin/belay host converge") {
		t.Errorf("sudoers lacks the converge helper:\n%s", sud)
	}
	if strings.Count(sud, "belay host converge") != 1 {
		t.Errorf("converge helper listed more than once:\n%s", sud)
	}
	if visudo, err := exec.LookPath("visudo"); err == nil {
		p := filepath.Join(t.TempDir(), "ops")
		if err := os.WriteFile(p, []byte(sud), 0o440); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(visudo, "-c", "-f", p).CombinedOutput(); err != nil {
			t.Errorf("visudo: %v: %s", err, out)
		}
	}

	s.ConvergeKey = "ed25519 nope"
	if _, err := Render(s); err == nil || !strings.Contains(err.Error(), "Spec.ConvergeKey") {
		t.Errorf("bad key: err = %v, expected it to name Spec.ConvergeKey", err)
	}
}
