//go:build lab

package cellslab_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/belay-sh/belay/deploy"
	"github.com/belay-sh/belay/inventory"
)

// TestLabEverydayCommandsPerCell: on the cells stack, a deploy to one cell
// leaves the cells on different releases; `belay rollback` of every cell is
// then refused with nothing changed, and `--cell` rolls that cell alone back
// to its own previous release. releases, audit, logs, exec and maintenance
// act per cell and tag what they print with the cell.
func TestLabEverydayCommandsPerCell(t *testing.T) {
	c1, c2 := app.Cells[0], app.Cells[1]
	v1, v2 := runID+"-ops1", runID+"-ops2"
	deploy := func(rel string, cells ...string) {
		t.Helper()
		args := []string{"deploy", "--app", "shop", "--artifact", artifact(t, rel), "--release", rel, "--steps", "none", "--pause", "0", "--health-timeout", "20s"}
		if len(cells) > 0 {
			args = append(args, "--cells", strings.Join(cells, ","))
		}
		if r := belay(t, args...); r.err != nil {
			t.Fatalf("deploy %s: %v", rel, r.err)
		}
	}
	releases := func() map[string]string {
		out := map[string]string{}
		for _, c := range cellStatus(t) {
			out[c.Cell] = c.Release
		}
		return out
	}
	deploy(v1)
	deploy(v2, c1.Name)
	if got := releases(); got[c1.Name] != v2 || got[c2.Name] != v1 {
		t.Fatalf("after deploying %s to %s only: %v", v2, c1.Name, got)
	}

	r := belay(t, "rollback", "--app", "shop")
	if r.err == nil || !strings.Contains(r.stderr, "the cells run different releases") || !strings.Contains(r.stderr, "no cell was touched") {
		t.Fatalf("rollback of cells on different releases: %v\n%s", r.err, r.stderr)
	}
	if got := releases(); got[c1.Name] != v2 || got[c2.Name] != v1 {
		t.Fatalf("a refused rollback changed releases: %v", got)
	}

	r = belay(t, "rollback", "--app", "shop", "--cell", c1.Name, "--json")
	if r.err != nil {
		t.Fatalf("rollback --cell %s: %v", c1.Name, r.err)
	}
	var rb struct {
		Result string
		Cells  []struct {
			Cell    string
			Outcome struct{ Release, Result string }
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &rb); err != nil || rb.Result != "ok" || len(rb.Cells) != 1 || rb.Cells[0].Cell != c1.Name || rb.Cells[0].Outcome.Release != v1 {
		t.Fatalf("rollback --json: %v %+v", err, rb)
	}
	eventually(t, 30*time.Second, "both cells on "+v1, func() error {
		if got := releases(); got[c1.Name] != v1 || got[c2.Name] != v1 {
			return &mismatch{got}
		}
		return nil
	})

	r = belay(t, "releases", "--app", "shop", "--json")
	var rels []struct{ Host, Cell string }
	if err := json.Unmarshal([]byte(r.stdout), &rels); err != nil || len(rels) == 0 {
		t.Fatalf("releases --json: %v", err)
	}
	for _, hr := range rels {
		if inv.Host(hr.Host) == nil || inv.Host(hr.Host).Cell != hr.Cell {
			t.Errorf("releases row %s tagged cell %q", hr.Host, hr.Cell)
		}
	}
	r = belay(t, "audit", "--app", "shop", "--cell", c1.Name, "-n", "5", "--json")
	var es []struct{ Cell, Action, Release string }
	if err := json.Unmarshal([]byte(r.stdout), &es); err != nil || len(es) == 0 || es[len(es)-1].Action != "rollback" {
		t.Fatalf("audit --cell --json: %v %+v", err, es)
	}
	for _, e := range es {
		if e.Cell != c1.Name {
			t.Errorf("audit --cell %s has an entry of cell %q", c1.Name, e.Cell)
		}
	}

	r = belay(t, "logs", "shop", "--cell", c2.Name, "-n", "20", "--json")
	if r.err != nil {
		t.Fatalf("logs --cell: %v", r.err)
	}
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var line struct{ Host, Cell string }
		if err := json.Unmarshal([]byte(l), &line); err != nil || line.Cell != c2.Name || inv.Host(line.Host).Cell != c2.Name {
			t.Errorf("logs --cell %s line %q: %v", c2.Name, l, err)
		}
	}

	if r = belay(t, "exec", "shop", "--", "id", "-un"); r.err == nil || !strings.Contains(r.stderr, "--cell: required") {
		t.Errorf("exec without --cell on an app with cells: %v %s", r.err, r.stderr)
	}
	if r = belay(t, "exec", "shop", "--cell", c2.Name, "--", "id", "-un"); r.err != nil || strings.TrimSpace(r.stdout) != "belay-app" ||
		!strings.Contains(r.stderr, "(cell "+c2.Name+")") {
		t.Errorf("exec --cell %s: %v %q %s", c2.Name, r.err, r.stdout, r.stderr)
	}

	if r = belay(t, "maintenance", "on", "shop", "--cell", c2.Name, "--retry-after", "30s"); r.err != nil {
		t.Fatalf("maintenance on --cell: %v", r.err)
	}
	t.Cleanup(func() { belay(t, "maintenance", "off", "shop") })
	if got := statusAt(t, c2.VIP); got != 503 {
		t.Errorf("cell %s in maintenance answers %d, want 503", c2.Name, got)
	}
	if got := statusAt(t, c1.VIP); got != 200 {
		t.Errorf("cell %s (not in maintenance) answers %d, want 200", c1.Name, got)
	}
	if r = belay(t, "maintenance", "off", "shop"); r.err != nil {
		t.Fatalf("maintenance off (every cell): %v", r.err)
	}
	if got := statusAt(t, c2.VIP); got != 200 {
		t.Errorf("cell %s after maintenance off answers %d, want 200", c2.Name, got)
	}
}

type mismatch struct{ got map[string]string }

func (m *mismatch) Error() string {
	b, _ := json.Marshal(m.got)
	return "releases per cell " + string(b)
}

func statusAt(t *testing.T, vip string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+vip+"/", nil)
	req.Host = app.Domains[0]
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", vip, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestLabEnvOnlyPerCell: with the cells on different releases, `belay deploy
// --env-only` gives each cell its own release with the new env (c1 v2.env1,
// c2 v1.env1), answering with it through each cell's VIP; a config that fails
// the health check on the canary cell rolls back and no other cell gets it.
func TestLabEnvOnlyPerCell(t *testing.T) {
	c1, c2 := app.Cells[0], app.Cells[1]
	v1, v2 := runID+"-envc1", runID+"-envc2"
	dir := t.TempDir()
	deployRel := func(rel string, cells ...string) {
		t.Helper()
		args := []string{"deploy", "--app", "shop", "--artifact", artifact(t, rel), "--release", rel, "--env-dir", dir,
			"--steps", "none", "--pause", "0", "--health-timeout", "20s"}
		if len(cells) > 0 {
			args = append(args, "--cells", strings.Join(cells, ","))
		}
		if r := belay(t, args...); r.err != nil {
			t.Fatalf("deploy %s: %v", rel, r.err)
		}
	}
	envSet := func(kv ...string) {
		t.Helper()
		if r := belay(t, append([]string{"env", "set", "shop", "--env-dir", dir}, kv...)...); r.err != nil {
			t.Fatalf("env set: %v", r.err)
		}
	}
	envOnly := func() result {
		t.Helper()
		return belay(t, "deploy", "--app", "shop", "--env-only", "--env-dir", dir, "--steps", "none", "--pause", "0", "--health-timeout", "20s", "--json")
	}
	colour := func(vip string) string {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+vip+"/env?key=LAB_COLOR", nil)
		req.Host = app.Domains[0]
		resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", vip, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.TrimSpace(string(b))
	}
	deployRel(v1)
	deployRel(v2, c1.Name)

	envSet("LAB_COLOR=blue")
	if r := envOnly(); r.err != nil {
		t.Fatalf("env-only on cells: %v", r.err)
	}
	want := map[string]string{c1.Name: v2 + ".env1", c2.Name: v1 + ".env1"}
	eventually(t, time.Minute, "each cell on its own release with the env", func() error {
		for _, c := range cellStatus(t) {
			if c.Release != want[c.Cell] || !c.Healthy {
				return fmt.Errorf("cell %s: release %q (want %s), problems %v", c.Cell, c.Release, want[c.Cell], c.Problems)
			}
		}
		return nil
	})
	for _, c := range []inventory.Cell{c1, c2} {
		if got := colour(c.VIP); got != "LAB_COLOR=blue" {
			t.Errorf("cell %s answers %q, want LAB_COLOR=blue", c.Name, got)
		}
	}

	envSet("LAB_COLOR=green", "LAB_HEALTH=fail")
	r := envOnly()
	if r.err == nil {
		t.Fatal("a config failing the health check was deployed to the cells")
	}
	var out deploy.CellsOutcome
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("deploy --json: %v", err)
	}
	if out.Result != "rolled-back" || strings.Join(out.Touched, ",") != c1.Name || len(out.Untouched) != 1 {
		t.Fatalf("bad env: outcome %s, touched %v, untouched %v", out.Result, out.Touched, out.Untouched)
	}
	for _, c := range cellStatus(t) {
		if c.Release != want[c.Cell] || !c.Healthy {
			t.Errorf("after the rollback, cell %s: release %q (want %s), problems %v", c.Cell, c.Release, want[c.Cell], c.Problems)
		}
	}
	for _, c := range []inventory.Cell{c1, c2} {
		if got := colour(c.VIP); got != "LAB_COLOR=blue" {
			t.Errorf("after the rollback, cell %s answers %q, want the previous env", c.Name, got)
		}
	}
}
