package roles

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/belay-sh/belay/hostcmd"
	"github.com/belay-sh/belay/internal/shq"
)

// pairSpec is a data node of dedicated cell shop/c2's own pair.
func pairSpec(t testing.TB) *Spec {
	s := dbSpec(t, "shop-c2-db-1", "10.213.0.100")
	s.DB.Name, s.DB.AppUser, s.DB.Formation = "shop_c2", "shop_c2", "shop_c2"
	return s
}

// movedSpec is db-1 of a stack whose cell shop/c2 moved to its own pair.
func movedSpec(t testing.TB) *Spec {
	s := dbSpec(t, "db-1", "10.213.0.10")
	s.DB.MovedCells = []string{"shop_c2"}
	return s
}

func TestCellDBBinaryPath(t *testing.T) {
	if hostcmd.BelayBinary != BelayBinary {
		t.Fatalf("hostcmd.BelayBinary %q, roles.BelayBinary %q: the copy helper's sudoers would name another file", hostcmd.BelayBinary, BelayBinary)
	}
	s := movedSpec(t)
	s.DB.MovedCells = []string{"postgres"}
	if _, err := Render(s); err == nil || !strings.Contains(err.Error(), "Spec.DB.MovedCells[0]") {
		t.Errorf("MovedCells postgres: %v", err)
	}
	s = pairSpec(t)
	s.DB.MovedCells = []string{"shop_c1"}
	if _, err := Render(s); err == nil || !strings.Contains(err.Error(), "Spec.DB.MovedCells[0]") {
		t.Errorf("MovedCells on a pair's node: %v", err)
	}
}

// TestCellDBSudoersHostileDeployUser runs real sudo (private mount
// namespace) with the ops sudoers of a dedicated pair's node and of a stack
// node: the deploy user may run the copy helper's verbs with the cell's
// database exactly as belay db copy does, the stack's node only the reading
// ones, and nothing with another database, a flag, a path or extra words.
func TestCellDBSudoersHostileDeployUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (a mount namespace, sudo -l -U)")
	}
	for _, p := range []string{"sudo", "unshare", "visudo"} {
		if _, err := exec.LookPath(p); err != nil {
			t.Skipf("no %s", p)
		}
	}
	if out, err := exec.Command("unshare", "-m", "true").CombinedOutput(); err != nil {
		t.Skipf("no mount namespaces here: %v %s", err, out)
	}
	helper := func(words ...string) []string { return append([]string{BelayBinary, "host", "cell-db"}, words...) }
	hostile := [][]string{
		helper("dump", "shop_c1"), helper("dump", "postgres"), helper("restore", "shop"),
		helper("dump", "shop_c2", "extra"), helper("dump", "--", "shop_c2"), helper("dump", "-h", "shop_c2"),
		helper("dump", "shop_c2;id"), helper("dump", "../shop_c2"), helper("dump", "/var/lib/postgresql"),
		helper("dump"), helper("drop", "shop_c2"), helper("dump", "shop_c*"),
		{"/tmp/belay", "host", "cell-db", "dump", "shop_c2"}, {"/bin/sh", "-c", "id"},
		{"/usr/sbin/runuser", "-u", "postgres", "--", "pg_dump", "-Fc", "-d", "shop_c2"},
	}
	for _, c := range []struct {
		name    string
		spec    *Spec
		allowed []string
		refused []string
	}{
		{"pair", pairSpec(t), hostcmd.CellDBPairVerbs, []string{hostcmd.CellDBDump}},
		{"stack", movedSpec(t), hostcmd.CellDBSourceVerbs, []string{hostcmd.CellDBRestore, hostcmd.CellDBMark, hostcmd.CellDBMarker, hostcmd.CellDBReset}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cc, _ := renderParsed(t, c.spec)
			content := fileAt(t, cc, OpsSudoersFile).Content
			content = strings.Replace(content, "\ndeploy ALL=", "\nnobody ALL=", 1)
			dir := t.TempDir()
			writeTemp(t, dir, "belay-ops", content, 0o440)
			if out, err := exec.Command("visudo", "-c", "-f", filepath.Join(dir, "belay-ops")).CombinedOutput(); err != nil {
				t.Fatalf("visudo: %v\n%s", err, out)
			}
			var want []string
			var script strings.Builder
			script.WriteString("set -u\nmount --bind " + shq.Quote(dir) + " /etc/sudoers.d || exit 99\n")
			check := func(argv []string, ok bool) {
				want = append(want, map[bool]string{true: "rc=0", false: "rc=1"}[ok])
				script.WriteString("sudo -l -U nobody " + shq.Join(argv...) + " >/dev/null 2>&1; echo \"rc=$?\"\n")
			}
			for _, v := range c.allowed {
				check(hostcmd.CellDB(v, "shop_c2"), true)
			}
			for _, v := range c.refused {
				check(hostcmd.CellDB(v, "shop_c2"), false)
			}
			for _, a := range hostile {
				check(a, false)
			}
			out, err := exec.Command("unshare", "-m", "sh", "-c", script.String()).CombinedOutput()
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			got := strings.Fields(string(out))
			if len(got) != len(want) {
				t.Fatalf("sudo -l answers %q, want %d lines", got, len(want))
			}
			all := append(append(append([][]string{}, verbsArgv(c.allowed)...), verbsArgv(c.refused)...), hostile...)
			for i := range want {
				if got[i] != want[i] {
					t.Errorf("%s: sudo -l %q: %s, want %s", c.name, all[i], got[i], want[i])
				}
			}
		})
	}
}

func verbsArgv(verbs []string) [][]string {
	var out [][]string
	for _, v := range verbs {
		out = append(out, hostcmd.CellDB(v, "shop_c2"))
	}
	return out
}
