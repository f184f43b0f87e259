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
	"fmt"
	"io"
	"net/http"
	"os"
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

func TestCellDatabases(t *testing.T) {
	a := inv.App("shop")
	var found string
	for _, n := range inv.Database.Nodes {
		out, err := lab.Console(context.Background(), paths, nil, n, "runuser", "-u", "postgres", "--", "psql", "-h", "/var/run/postgresql", "-d", "postgres", "-AtXc",
			"SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database WHERE datname LIKE 'shop\\_%'")
		if err == nil && strings.TrimSpace(string(out)) != "" {
			found = strings.TrimSpace(string(out))
			break
		}
	}
	want := a.Cells[0].Database + "," + a.Cells[1].Database
	if found != want {
		t.Errorf("cell databases = %q, want %q", found, want)
	}
}
