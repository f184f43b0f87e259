//go:build lab

// Package cellslab_test brings up lab/cells-stack.yaml (one app in two cells
// behind a router pair) and checks that each cell answers at its own floating
// address, that the routers run nginx and route a mapped shop to its cell,
// and that each cell has its own database. Run as root, with no other lab up:
//
//	go test -tags lab -count=1 -timeout 40m ./lab/cellslab/
package cellslab_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

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
	bin := filepath.Join(dir, "belay")
	build := exec.Command("go", "build", "-o", bin, "github.com/belay-sh/belay/cmd/belay")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build belay:", err)
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
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, timeout, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// get requests url with Host host and returns the status, the X-Belay-Cell
// header and the Server header.
func get(url, host string) (int, string, string, error) {
	req, _ := http.NewRequest("GET", url, nil)
	req.Host = host
	c := &http.Client{Timeout: 3 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", "", err
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("X-Belay-Cell"), resp.Header.Get("Server"), nil
}

// deployStandIn starts a tiny HTTP app as the cell's release, as the deploy user.
func deployStandIn(t *testing.T, host, app string) {
	t.Helper()
	cmd := fmt.Sprintf(`set -e; d=/srv/%[1]s/releases/labtest; mkdir -p $d; cat >$d/start <<'EOF'
#!/bin/sh
exec python3 -m http.server "$PORT" --directory /tmp
EOF
chmod 755 $d/start; ln -sfn $d /srv/%[1]s/current; sudo -n systemctl restart belay-app@%[1]s.service`, app)
	sshRun(t, host, cmd)
}

func TestCellsServe(t *testing.T) {
	a := inv.App("shop")
	if a == nil || a.Router == nil || len(a.Cells) != 2 {
		t.Fatalf("inventory app shop = %+v", a)
	}
	for _, c := range a.Cells {
		for _, h := range c.Hosts {
			deployStandIn(t, h, a.Name)
		}
	}
	for _, c := range a.Cells {
		t.Run("cell "+c.Name+" answers at its VIP", func(t *testing.T) {
			eventually(t, 60*time.Second, "cell "+c.Name, func() error {
				code, _, server, err := get("http://"+c.VIP+"/", a.Domains[0])
				if err != nil {
					return err
				}
				if code != 200 || !strings.HasPrefix(server, "nginx") {
					return fmt.Errorf("GET %s: %d, Server %q", c.VIP, code, server)
				}
				return nil
			})
		})
	}
}

func TestRouters(t *testing.T) {
	a := inv.App("shop")
	t.Run("every router runs nginx and refuses an unknown shop", func(t *testing.T) {
		for _, h := range append(append([]string{}, a.Router.Hosts...), a.Router.Standby) {
			addr := inv.Host(h).PrivateAddress
			eventually(t, 30*time.Second, "nginx on "+h, func() error {
				code, _, server, err := get("http://"+addr+"/", "nobody.shops.lab.belay.test")
				if err != nil {
					return err
				}
				if code != 404 || !strings.HasPrefix(server, "nginx") {
					return fmt.Errorf("GET %s: %d, Server %q, want nginx's 404", addr, code, server)
				}
				return nil
			})
		}
	})
	t.Run("a mapped shop reaches its cell through the router VIP", func(t *testing.T) {
		// The sync service (belay host router-sync) owns map.conf; it is
		// stopped so this test's entry stays put while it checks nginx's part.
		entry := `"acme.shops.lab.belay.test" c2;`
		for _, h := range a.Router.Hosts {
			console(t, h, "sh", "-c", "systemctl stop belay-router-sync.service; printf '%s\\n' '"+entry+"' > /etc/belay/router/shop/map.conf && nginx -t && systemctl reload nginx")
		}
		eventually(t, 60*time.Second, "acme via the router VIP", func() error {
			code, cell, _, err := get("http://"+a.Router.VIP+"/", "acme.shops.lab.belay.test")
			if err != nil {
				return err
			}
			if code != 200 || cell != "c2" {
				return fmt.Errorf("GET %s: %d, cell %q, want 200 from c2", a.Router.VIP, code, cell)
			}
			return nil
		})
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
