package layers

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"testing"
)

// goList runs `go list` in the module with args and returns its lines.
func goList(t *testing.T, args ...string) []string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	cmd := exec.Command(goBin, append([]string{"list"}, args...)...)
	cmd.Dir = "../.." // the module root
	out, err := cmd.Output()
	if err != nil {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("go list %v: %v\n%s", args, err, stderr)
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}

// rel strips the module path; ok is false for packages outside the module.
func rel(path string) (string, bool) {
	if path == Module {
		return "", true
	}
	r, ok := strings.CutPrefix(path, Module+"/")
	return r, ok
}

// TestModuleImports checks every package of the module (non-test imports) against Rules.
func TestModuleImports(t *testing.T) {
	imports := map[string][]string{}
	for _, line := range goList(t, "-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}", Module+"/...") {
		f := strings.Fields(line)
		pkg, _ := rel(f[0])
		var deps []string
		for _, d := range f[1:] {
			if r, ok := rel(d); ok {
				deps = append(deps, r)
			}
		}
		imports[pkg] = deps
	}
	if len(imports) < 20 {
		t.Fatalf("go list found %d packages; expected the whole module", len(imports))
	}
	for edge := range Allowed {
		if !slices.Contains(imports[edge[0]], edge[1]) {
			t.Errorf("Allowed lists %s → %s, which the module no longer imports: remove the entry", edge[0], edge[1])
		}
	}
	bad := Check(imports)
	sort.Strings(bad)
	for _, b := range bad {
		t.Error(b)
	}
}

// TestOperationsNeverReachTheCLI: the drills and failover are libraries the
// CLI wires; nothing they pull in, directly or not, may be CLI code.
func TestOperationsNeverReachTheCLI(t *testing.T) {
	for _, dep := range goList(t, "-deps", "-f", "{{.ImportPath}}", "./drill/...", "./failover/...") {
		r, ok := rel(dep)
		if ok && (r == "internal/cli" || strings.HasPrefix(r, "internal/cli/") || strings.HasPrefix(r, "cmd/")) {
			t.Errorf("drill/failover depend on %s", r)
		}
	}
}

func TestOf(t *testing.T) {
	tests := []struct {
		rel  string
		want Layer
		ok   bool
	}{
		{"deploy", Executor, true},
		{"deploy/plan", Plan, true},
		{"deploy/cells", Plan, true}, // a new package under deploy/ is plan data until ranked higher
		{"deploy/sshx", Executor, true},
		{"deploy/sshx/sshdtest", Leaf, true},
		{"internal/cli/env", Front, true},
		{"internal/shq/shqtest", Leaf, true},
		{"hostrelease", Leaf, true},         // the host layout deploy and replace share
		{"hostrelease/journal", Leaf, true}, // and the journal on it
		{"", Main, true},
		{"cmd/belay", Main, true},
		{"newthing", 0, false},
		{"configx", 0, false},
	}
	for _, tt := range tests {
		got, ok := Of(tt.rel)
		if ok != tt.ok || (ok && got != tt.want) {
			t.Errorf("Of(%q) = %v, %v; want %v, %v", tt.rel, got, ok, tt.want, tt.ok)
		}
	}
}

// TestCheck shows each rule failing on a made-up graph.
func TestCheck(t *testing.T) {
	// An allowed edge, for the one case below (the module has none today).
	edge := [2]string{"router", "deploy/traffic"}
	Allowed[edge] = "test"
	t.Cleanup(func() { delete(Allowed, edge) })
	tests := []struct {
		name    string
		imports map[string][]string
		want    []string // substrings, one per expected problem
	}{
		{"down is fine", map[string][]string{"roles": {"inventory", "internal/shq"}, "deploy/run": {"deploy/plan"}}, nil},
		{"up the pipeline", map[string][]string{"config": {"roles"}}, []string{"config (config) imports roles (render): up the pipeline"}},
		{"leaf importing a stage", map[string][]string{"inventory": {"config"}}, []string{"inventory (leaf) imports config"}},
		{"drill into the CLI", map[string][]string{"drill": {"internal/cli"}}, []string{"drill (operations) imports internal/cli (front)"}},
		{"below deploy importing deploy", map[string][]string{"failover": {"deploy/release"}}, []string{"failover (operations) imports deploy/release: outside deploy/"}},
		{"front may import deploy", map[string][]string{"internal/cli/deploy": {"deploy"}}, nil},
		{"executor may import deploy", map[string][]string{"remote": {"deploy/sshx"}}, nil},
		{"below the plan importing deploy", map[string][]string{"roles": {"deploy/traffic"}}, []string{"roles (render) imports deploy/traffic (plan): up the pipeline", "roles (render) imports deploy/traffic: outside deploy/"}},
		{"allowed edge", map[string][]string{"router": {"deploy/traffic"}}, nil},
		{"unranked package", map[string][]string{"newthing": nil}, []string{"package newthing: no layer"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Check(tt.imports)
			if len(got) != len(tt.want) {
				t.Fatalf("Check = %q; want %d problem(s) like %q", got, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("problem %d: %q, want it to contain %q", i, got[i], w)
				}
			}
		})
	}
}
