//go:build lab

// Package cellslab_test deploys to the cells lab stack with the real belay
// binary: a bad release on the canary cell rolls back without any other
// cell ever serving it (or even receiving its files). It needs the cells
// stack up (run as root, as the lead):
//
//	belay lab up --stack lab/cells-stack.yaml
//	go test -tags lab -count=1 -timeout 30m ./deploy/cellslab/
package cellslab_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/belay-sh/belay/deploy"
	"github.com/belay-sh/belay/hostrelease"
	"github.com/belay-sh/belay/hostrelease/journal"
	"github.com/belay-sh/belay/internal/cli"
	"github.com/belay-sh/belay/internal/labtest"
	"github.com/belay-sh/belay/internal/shq"
	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/lab"
)

var (
	belayBin string
	inv      *inventory.Inventory
	app      *inventory.App
	runID    = fmt.Sprintf("c%d", time.Now().Unix()%1000000)
)

func TestMain(m *testing.M) {
	var err error
	inv, err = inventory.Load(cli.DefaultInventory)
	if err != nil {
		fmt.Fprintf(os.Stderr, "these lab tests need `belay lab up --stack lab/cells-stack.yaml` (%v)\n", err)
		os.Exit(1)
	}
	app = inv.App("shop")
	if app == nil || len(app.Cells) < 2 {
		fmt.Fprintln(os.Stderr, "the lab is not the cells stack (app shop with 2 cells): run `belay lab down`, then `belay lab up --stack lab/cells-stack.yaml`")
		os.Exit(1)
	}
	os.Setenv("BELAY_INVENTORY", "lab")
	dir, err := os.MkdirTemp("", "belay-cells-deploy-lab")
	if err != nil {
		panic(err)
	}
	if belayBin, err = labtest.Build(dir, "belay", labtest.BelayPackage, ""); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// artifact builds the lab app with its release id (and behaviour switches).
func artifact(t *testing.T, id string, ldflags ...string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "labapp-"+id)
	flags := append([]string{"-X main.buildID=" + id}, ldflags...)
	cmd := exec.Command("go", "build", "-o", out, "-ldflags", strings.Join(flags, " "), "github.com/belay-sh/belay/deploy/testdata/labapp")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build lab app: %v\n%s", err, b)
	}
	return out
}

type result struct {
	stdout, stderr string
	err            error
}

func belay(t *testing.T, args ...string) result {
	t.Helper()
	r := labtest.Belay(t, belayBin, 10*time.Minute, args...)
	return result{r.Stdout, r.Stderr, r.Err}
}

// watch sends requests to a cell's VIP (half naming the whitelisted shop)
// until stopped, counting the answers by the release that served them
// (X-Belay-Release).
type watch struct {
	mu    sync.Mutex
	seen  map[string]int
	done  chan struct{}
	wg    sync.WaitGroup
	cell  string
	total int
}

func watchCell(c inventory.Cell) *watch {
	w := &watch{seen: map[string]int{}, done: make(chan struct{}), cell: c.Name}
	for i := 0; i < 3; i++ {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			hc := &http.Client{Timeout: 3 * time.Second}
			for n := 0; ; n++ {
				select {
				case <-w.done:
					return
				default:
				}
				path := "/"
				if n%2 == 0 {
					path = "/?shop=alpha.lab.belay.test"
				}
				req, _ := http.NewRequest("GET", "http://"+c.VIP+path, nil)
				req.Host = app.Domains[0]
				if resp, err := hc.Do(req); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					w.mu.Lock()
					w.seen[resp.Header.Get("X-Belay-Release")]++
					w.total++
					w.mu.Unlock()
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	return w
}

func (w *watch) stop() map[string]int {
	close(w.done)
	w.wg.Wait()
	return w.seen
}

func sshRun(t *testing.T, name, command string) (string, error) {
	t.Helper()
	h := inv.Host(name)
	if h == nil {
		t.Fatalf("no host %s", name)
	}
	c, err := lab.Dial(context.Background(), lab.DefaultPaths, *h)
	if err != nil {
		return "", err
	}
	defer c.Close()
	out, err := lab.Run(c, command)
	return strings.TrimSpace(string(out)), err
}

func cellStatus(t *testing.T) []deploy.CellState {
	t.Helper()
	r := belay(t, "status", "--app", "shop", "--json")
	var doc struct{ Cells []deploy.CellState }
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		t.Fatalf("status --json: %v (%v)", err, r.err)
	}
	return doc.Cells
}

// TestLabBadCanaryCellNeverReachesOtherCells: every cell on a good release
// (wave strategy, two at a time); then a release that answers 500 to real
// requests, canary cell c1: c1's whitelist verdict fails, c1 rolls back,
// and no other cell ever serves it, has its files, or gets a journal entry.
func TestLabBadCanaryCellNeverReachesOtherCells(t *testing.T) {
	good := runID + "-good"
	r := belay(t, "deploy", "--app", "shop", "--artifact", artifact(t, good), "--release", good,
		"--steps", "none", "--pause", "0", "--health-timeout", "20s", "--wave-size", "2", "--json")
	if r.err != nil {
		t.Fatalf("baseline deploy to every cell: %v", r.err)
	}
	eventually(t, 60*time.Second, "every cell healthy on "+good, func() error {
		for _, c := range cellStatus(t) {
			if c.Release != good || !c.Healthy {
				return fmt.Errorf("cell %s: release %q, problems %v", c.Cell, c.Release, c.Problems)
			}
		}
		return nil
	})

	canary := app.Cells[0]
	watches := map[string]*watch{}
	for _, c := range app.Cells {
		watches[c.Name] = watchCell(c) // the canary cell's is also the verdict's traffic
	}
	bad := runID + "-bad"
	start := time.Now()
	r = belay(t, "deploy", "--app", "shop", "--artifact", artifact(t, bad, "-X main.canaryErrors=yes"), "--release", bad,
		"--canary-cell", canary.Name, "--whitelist-shops", "alpha.lab.belay.test", "--steps", "50",
		"--pause", "4s", "--max-wait", "20s", "--min-requests", "20", "--json")
	took := time.Since(start)
	time.Sleep(2 * time.Second) // keep watching after the rollback
	seen := map[string]map[string]int{}
	for n, w := range watches {
		seen[n] = w.stop()
	}
	if r.err == nil {
		t.Fatal("a release answering 500 passed the canary cell")
	}
	var out deploy.CellsOutcome
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("deploy --json: %v", err)
	}
	t.Logf("bad release on the canary cell: %s in %s (deployer wall time %s); answers seen per cell: %v", out.Result, out.Duration, took.Round(time.Millisecond), seen)
	if out.Result != "rolled-back" || out.CanaryCell != canary.Name || strings.Join(out.Touched, ",") != canary.Name ||
		strings.Join(out.RolledBack, ",") != canary.Name || len(out.Untouched) != len(app.Cells)-1 {
		t.Fatalf("outcome %s, canary %s, touched %v, rolled back %v, untouched %v", out.Result, out.CanaryCell, out.Touched, out.RolledBack, out.Untouched)
	}
	if seen[canary.Name][bad] == 0 {
		t.Errorf("the canary cell never served %s (the verdict had no canary traffic?): %v", bad, seen[canary.Name])
	}
	for _, c := range app.Cells[1:] {
		if seen[c.Name][bad] > 0 {
			t.Errorf("cell %s served %s %d times", c.Name, bad, seen[c.Name][bad])
		}
		if seen[c.Name][good] == 0 {
			t.Errorf("cell %s: no answers from %s while watched: %v", c.Name, good, seen[c.Name])
		}
		servers := append([]string(nil), c.Hosts...)
		if c.Standby != "" {
			servers = append(servers, c.Standby)
		}
		for _, h := range servers {
			// No trace of the bad release: no files, no audit line, no journal.
			l := hostrelease.Layout{App: "shop"}
			q := shq.Quote(bad)
			cmd := "test -e " + shq.Quote(l.Release(bad)) + " && echo files; grep -qF " + q + " " + shq.Quote(journal.AuditPath(l)) + " && echo audit; grep -qF " + q + " " + shq.Quote(journal.Path(l)) + " && echo journal; true"
			got, err := sshRun(t, h, cmd)
			if err != nil {
				t.Fatalf("%s: %v", h, err)
			}
			if got != "" {
				t.Errorf("cell %s server %s has traces of %s: %s", c.Name, h, bad, strings.Join(strings.Fields(got), ", "))
			}
		}
	}
	for _, c := range cellStatus(t) {
		if c.Release != good || !c.Healthy {
			t.Errorf("after the rollback, cell %s: release %q, problems %v", c.Cell, c.Release, c.Problems)
		}
	}
}

func eventually(t *testing.T, timeout time.Duration, what string, f func() error) {
	t.Helper()
	labtest.Eventually(t, timeout, time.Second, what, f)
}
