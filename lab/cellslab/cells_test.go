//go:build lab

// Package cellslab_test brings up lab/cells-stack.yaml (one app in two cells
// behind a router pair) and checks that each cell answers at its own floating
// address, that the provisioned routers route with no manual step (the
// router role's files and belay-router-sync@shop, docs/cells.md): an
// unknown shop gets the router's 404 page on every router, a shop mapped in
// the database reaches its cell through the router VIP; and that each cell
// has its own database. Run as root, with no other lab up:
//
//	go test -tags lab -count=1 -timeout 40m ./lab/cellslab/
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
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/belay-sh/belay/internal/labtest"
	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/lab"
)

var (
	paths = lab.DefaultPaths
	inv   *inventory.Inventory
	// belayBin is the belay the machines carry, for the CLI's own checks.
	belayBin string
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) (code int) {
	ctx := context.Background()
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "lab tests need root")
		return 1
	}
	if _, err := os.Stat(paths.InventoryPath()); err == nil {
		// Another stack's lab would be reused by `lab up`: refuse rather than test the wrong stack.
		fmt.Fprintln(os.Stderr, "a lab is already up: run `belay lab down` first (this test brings up the cells stack)")
		return 1
	}
	release, err := lab.Reserve(paths, "go test ./lab/cellslab")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer release()
	dir, err := os.MkdirTemp("", "belay-cellslab")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	bin, err := labtest.Build(dir, "belay", labtest.BelayPackage, "")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	belayBin = bin
	_, here, _, _ := runtime.Caller(0)
	stack := filepath.Join(filepath.Dir(here), "..", "cells-stack.yaml")
	code = 1
	defer func() {
		if os.Getenv("BELAY_LAB_KEEP") == "1" {
			return
		}
		if _, err := lab.Down(ctx, paths, nil, os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, "lab down:", err)
			code = 1
		}
	}()
	sum, upErr := lab.Up(ctx, lab.UpOptions{Paths: paths, Stack: lab.StackInput{File: stack}, BelayBinary: bin, Progress: os.Stderr, CloudInitTimeout: 8 * time.Minute})
	if sum == nil || upErr != nil {
		fmt.Fprintln(os.Stderr, "lab up:", upErr)
		return 1
	}
	fmt.Fprintf(os.Stderr, "lab up (cells): %d machines in %.1fs\n", len(sum.Machines), sum.Seconds)
	if inv, err = inventory.Load(paths.InventoryPath()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

func sshRun(t *testing.T, name, command string) string {
	t.Helper()
	h := inv.Host(name)
	if h == nil {
		t.Fatalf("no host %s", name)
	}
	var err error
	for i := 0; i < 30; i++ {
		c, derr := lab.Dial(context.Background(), paths, *h)
		if err = derr; err == nil {
			out, rerr := lab.Run(c, command)
			c.Close()
			if rerr != nil {
				t.Fatalf("%s: %v\n%s", name, rerr, out)
			}
			return strings.TrimSpace(string(out))
		}
		time.Sleep(time.Second)
	}
	t.Fatalf("ssh %s: %v", name, err)
	return ""
}

// console runs a root command through the lab console (not SSH: the deploy
// user cannot write what root parses, by design).
func console(t *testing.T, name string, argv ...string) string {
	t.Helper()
	out, err := lab.Console(context.Background(), paths, nil, name, argv...)
	if err != nil {
		t.Fatalf("%s: %v: %v\n%s", name, argv, err, out)
	}
	return strings.TrimSpace(string(out))
}

func eventually(t *testing.T, timeout time.Duration, what string, f func() error) {
	t.Helper()
	labtest.Eventually(t, timeout, 500*time.Millisecond, what, f)
}

// get requests url with Host host and returns the status, the router's
// own-answer header (X-Belay-Router) and the body.
func get(url, host string) (int, string, string, error) {
	req, _ := http.NewRequest("GET", url, nil)
	req.Host = host
	c := &http.Client{Timeout: 3 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("X-Belay-Router"), string(b), nil
}

// deployStandIn starts a tiny HTTP app as the cell's release, as the deploy
// user: it serves /cell, the cell's name, so a request shows where it went,
// and /up, the health path keepalived's check and nginx's routing ask for.
func deployStandIn(t *testing.T, host, app, cell string) {
	t.Helper()
	cmd := fmt.Sprintf(`set -e; d=/srv/%[1]s/releases/labtest; mkdir -p $d/www; printf %%s %[2]s > $d/www/cell; printf ok > $d/www/up; cat >$d/start <<'EOF'
#!/bin/sh
exec python3 -m http.server "$PORT" --directory "$(dirname "$0")/www"
EOF
chmod 755 $d/start; ln -sfn $d /srv/%[1]s/current; sudo -n systemctl restart belay-app@%[1]s.service`, app, cell)
	sshRun(t, host, cmd)
}

func TestCellsServe(t *testing.T) {
	a := inv.App("shop")
	if a == nil || a.Router == nil || len(a.Cells) != 2 {
		t.Fatalf("inventory app shop = %+v", a)
	}
	for _, c := range a.Cells {
		for _, h := range c.Hosts {
			deployStandIn(t, h, a.Name, c.Name)
		}
	}
	for _, c := range a.Cells {
		t.Run("cell "+c.Name+" answers at its VIP", func(t *testing.T) {
			eventually(t, 60*time.Second, "cell "+c.Name, func() error {
				code, _, body, err := get("http://"+c.VIP+"/cell", a.Domains[0])
				if err != nil {
					return err
				}
				if code != 200 || body != c.Name {
					return fmt.Errorf("GET %s/cell: %d %q, want 200 %q", c.VIP, code, body, c.Name)
				}
				return nil
			})
		})
	}
}

// psqlPrimary runs sql as postgres on whichever data node accepts writes.
func psqlPrimary(db, sql string) error {
	var errs []string
	for _, n := range inv.Database.Nodes {
		out, err := lab.Console(context.Background(), paths, nil, n, "runuser", "-u", "postgres", "--", "psql", "-h", "/var/run/postgresql", "-d", db, "-v", "ON_ERROR_STOP=1", "-AtXc", sql)
		if err == nil {
			return nil
		}
		errs = append(errs, fmt.Sprintf("%s: %v: %s", n, err, strings.TrimSpace(string(out))))
	}
	return fmt.Errorf("no data node ran it: %s", strings.Join(errs, "; "))
}

func TestRouters(t *testing.T) {
	a := inv.App("shop")
	t.Run("router-sync runs on the primary routers", func(t *testing.T) {
		for _, h := range a.Router.Hosts {
			eventually(t, 60*time.Second, "belay-router-sync@shop on "+h, func() error {
				out, _ := lab.Console(context.Background(), paths, nil, h, "systemctl", "is-active", "belay-router-sync@shop.service")
				if s := strings.TrimSpace(string(out)); s != "active" {
					return fmt.Errorf("belay-router-sync@shop.service is %q", s)
				}
				return nil
			})
		}
	})
	t.Run("every router answers an unknown shop with its 404 page", func(t *testing.T) {
		for _, h := range append(append([]string{}, a.Router.Hosts...), a.Router.Standby) {
			addr := inv.Host(h).PrivateAddress
			eventually(t, 30*time.Second, "router "+h, func() error {
				code, rh, body, err := get("http://"+addr+"/", "nobody.shops.lab.belay.test")
				if err != nil {
					return err
				}
				if code != 404 || rh != "unknown" || !strings.Contains(body, "No shop is served") {
					return fmt.Errorf("GET %s: %d, X-Belay-Router %q, body %q; want the router's 404 (unknownShop: 404)", addr, code, rh, body)
				}
				return nil
			})
		}
		code, rh, _, err := get("http://"+a.Router.VIP+"/", "nobody.shops.lab.belay.test")
		if err != nil || code != 404 || rh != "unknown" {
			t.Errorf("unknown shop via the router VIP: %d %q %v, want 404 unknown", code, rh, err)
		}
	})
	t.Run("a shop mapped in the database reaches its cell through the router VIP", func(t *testing.T) {
		for shop, cell := range map[string]string{"acme.shops.lab.belay.test": "c2", "bolt.shops.lab.belay.test": "c1"} {
			// router-sync creates the schema at its start: retry until it exists.
			eventually(t, 60*time.Second, "map "+shop, func() error {
				return psqlPrimary(inv.Database.Name, "INSERT INTO belay_router.shops (domain, app, cell) VALUES ('"+shop+"', 'shop', '"+cell+"') ON CONFLICT (domain) DO UPDATE SET cell = EXCLUDED.cell")
			})
			eventually(t, 30*time.Second, shop+" via the router VIP", func() error {
				code, _, body, err := get("http://"+a.Router.VIP+"/cell", shop)
				if err != nil {
					return err
				}
				if code != 200 || body != cell {
					return fmt.Errorf("GET %s/cell for %s: %d %q, want 200 from %s", a.Router.VIP, shop, code, body, cell)
				}
				return nil
			})
		}
	})
}

// TestCellDatabases: c1's database is on the stack's cluster, c2's on its own
// pair (a primary and a secondary in formation shop_c2 on the stack's
// monitor), restored on the standby site by c2's own standby database from
// stanza shop_c2; `belay cells` (over SSH and sudo, as a user runs it)
// reports both databases up.
func TestCellDatabases(t *testing.T) {
	a := inv.App("shop")
	c1, c2 := a.Cells[0], a.Cells[1]
	if c1.Dedicated() || !c2.Dedicated() || len(c2.DBNodes) != 2 || c2.StandbyDB == "" {
		t.Fatalf("cells %+v: want c1 shared and c2 with its own pair and standby database", a.Cells)
	}
	psql := func(host, db, sql string) (string, error) {
		out, err := lab.Console(context.Background(), paths, nil, host, "runuser", "-u", "postgres", "--", "psql", "-h", "/var/run/postgresql", "-d", db, "-AtXc", sql)
		return strings.TrimSpace(string(out)), err
	}
	t.Run("the stack's cluster holds c1's database only", func(t *testing.T) {
		var found string
		for _, n := range inv.Database.Nodes {
			if out, err := psql(n, "postgres", "SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database WHERE datname LIKE 'shop\\_%'"); err == nil && out != "" {
				found = out
				break
			}
		}
		if found != c1.Database {
			t.Errorf("cell databases on the stack's cluster = %q, want %q", found, c1.Database)
		}
	})
	t.Run("c2's pair: a primary and a secondary holding c2's database", func(t *testing.T) {
		eventually(t, 5*time.Minute, "c2's pair", func() error {
			var roles []string
			for _, n := range c2.DBNodes {
				rec, err := psql(n, "postgres", "SELECT pg_is_in_recovery()")
				if err != nil {
					return fmt.Errorf("%s: %v: %s", n, err, rec)
				}
				owner, err := psql(n, "postgres", "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '"+c2.Database+"'")
				if err != nil || owner != c2.Database {
					return fmt.Errorf("%s: database %s owned by %q (%v), want the cell's role", n, c2.Database, owner, err)
				}
				roles = append(roles, rec)
			}
			if strings.Join(roles, ",") != "f,t" && strings.Join(roles, ",") != "t,f" {
				return fmt.Errorf("in recovery on %v: %v, want one primary and one secondary", c2.DBNodes, roles)
			}
			return nil
		})
	})
	t.Run("c2's standby database restored c2's stanza and replays it", func(t *testing.T) {
		// Its first backup is taken once the pair's primary answers.
		eventually(t, 8*time.Minute, c2.StandbyDB+" restored", func() error {
			rec, err := psql(c2.StandbyDB, c2.Database, "SELECT pg_is_in_recovery()")
			if err != nil || rec != "t" {
				return fmt.Errorf("%s: in recovery %q (%v)", c2.StandbyDB, rec, err)
			}
			return nil
		})
		if out, err := psql(inv.Database.Standby, "postgres", "SELECT count(*) FROM pg_database WHERE datname = '"+c2.Database+"'"); err != nil || out != "0" {
			t.Errorf("the stack's standby database holds %s: %q (%v), want it only on c2's own standby", c2.Database, out, err)
		}
	})
	t.Run("belay cells reports both databases up", func(t *testing.T) {
		eventually(t, 2*time.Minute, "belay cells shop --json", func() error {
			cmd := exec.Command(belayBin, "cells", "shop", "--json")
			cmd.Env = append(os.Environ(), "BELAY_INVENTORY=lab")
			out, err := cmd.Output()
			var res struct {
				Cells []struct {
					Name     string
					Database *struct{ Kind, Formation, Health string }
				}
			}
			if jerr := json.Unmarshal(out, &res); jerr != nil {
				return fmt.Errorf("belay cells: %v (%v): %s", err, jerr, out)
			}
			for _, c := range res.Cells {
				if c.Database == nil || c.Database.Health != "up" {
					return fmt.Errorf("cell %s database %+v, want up (exit: %v)", c.Name, c.Database, err)
				}
			}
			if len(res.Cells) != 2 || err != nil {
				return fmt.Errorf("%d cells, exit %v", len(res.Cells), err)
			}
			return nil
		})
	})
}
