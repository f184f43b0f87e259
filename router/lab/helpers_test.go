//go:build lab

package lab_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/belay-sh/belay/hostspec"
	"github.com/belay-sh/belay/internal/cli"
	"github.com/belay-sh/belay/internal/cli/cells"
	"github.com/belay-sh/belay/internal/labapp"
	"github.com/belay-sh/belay/internal/labtest"
	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/lab"
	"github.com/belay-sh/belay/router"
)

func appName() string {
	if a := os.Getenv("BELAY_LAB_CELLS_APP"); a != "" {
		return a
	}
	return "shop"
}

func labInventory(t *testing.T) *inventory.Inventory {
	t.Helper()
	inv, err := inventory.Load(cli.DefaultInventory)
	if err != nil {
		t.Fatalf("lab tests need `belay lab up` with the cells stack: %v", err)
	}
	if len(inv.WithRole(cells.RoleRouter)) < 2 {
		t.Fatalf("the lab inventory has no router pair (role %q): start the cells stack", cells.RoleRouter)
	}
	return inv
}

// appRouters are app's router hosts on the primary site (the standby
// site's router has its own role, maps from the standby database and routes
// to the standby servers).
func appRouters(inv *inventory.Inventory, app string) []inventory.Host {
	var out []inventory.Host
	for _, h := range inv.WithRole(cells.RoleRouter) {
		if h.Site == inventory.Primary && (h.App == app || h.App == "") {
			out = append(out, h)
		}
	}
	return out
}

var client = &http.Client{Timeout: 5 * time.Second}

// get asks addr for shop (Host header) and returns the status, the
// X-Belay-Cell the app echoed and the body.
func get(addr, shop, path string) (int, string, string, error) {
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
	req.Host = shop
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get(labapp.HeaderCell), string(b), nil
}

// send PUTs or POSTs body for shop's /data through addr.
func send(method, addr, shop string, body []byte) error {
	req, _ := http.NewRequest(method, "http://"+addr+"/data?shop="+shop, bytes.NewReader(body))
	req.Host = shop
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s %d bytes for %s: %d %s", method, len(body), shop, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return nil
}

// routerAnswer asks addr for shop and returns the status and X-Belay-Router.
func routerAnswer(addr, shop string) (int, string, error) {
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
	req.Host = shop
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get(router.HeaderRouter), nil
}

// belayRun runs a belay shop/cells command in process.
func belayRun(args ...string) (string, error) {
	var out, errb bytes.Buffer
	f := cli.New()
	f.IO = cli.IO{In: strings.NewReader(""), Out: &out, ErrOut: &errb}
	var cmd = cells.NewCmdShop(f)
	if args[0] == "cells" {
		cmd = cells.NewCmdCells(f)
		args = args[1:]
	}
	// The root command's target resolution (BELAY_INVENTORY, belay.yaml), as cmd/belay wires it.
	cmd.PersistentPreRunE = func(c *cobra.Command, _ []string) error { return f.Prepare(cmd, c) }
	cmd.SetArgs(args)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := cmd.ExecuteContext(ctx); err != nil {
		return out.String() + errb.String(), err
	}
	return out.String(), nil
}

func belay(t *testing.T, args ...string) string {
	t.Helper()
	out, err := belayRun(args...)
	if err != nil {
		t.Fatalf("belay %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// goBuild builds pkg into dir/name (static).
func goBuild(t *testing.T, dir, name, pkg string, ldflags ...string) string {
	t.Helper()
	out, err := labtest.Build(dir, name, pkg, strings.Join(ldflags, " "), "CGO_ENABLED=0")
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// belayBinary runs the real belay binary (built once per test).
func belayBinary(t *testing.T) func(args ...string) (string, error) {
	t.Helper()
	bin := labtest.BuildBelay(t)
	return func(args ...string) (string, error) {
		r := labtest.Belay(t, bin, 15*time.Minute, args...)
		return r.Stdout, r.Err
	}
}

// eventually retries f every 500 ms until it succeeds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, f func() error) time.Duration {
	t.Helper()
	return labtest.Eventually(t, timeout, 500*time.Millisecond, what, f)
}

// dbBlock is the nft table that cuts a router off PostgreSQL (its own table,
// so deleting it restores exactly what was there).
const dbBlock = "belay_labtest_dbdown"

func blockDB(host string) error {
	script := fmt.Sprintf("nft delete table inet %[1]s 2>/dev/null; nft add table inet %[1]s && "+
		"nft add chain inet %[1]s out '{ type filter hook output priority 0; policy accept; }' && "+
		"nft add rule inet %[1]s out tcp dport %[2]d drop", dbBlock, hostspec.DBPort)
	return console(host, "sh", "-c", script)
}

func unblockDB(host string) error {
	return console(host, "sh", "-c", fmt.Sprintf("nft delete table inet %s 2>/dev/null; true", dbBlock))
}

func console(host string, argv ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := lab.Console(ctx, lab.DefaultPaths, nil, host, argv...)
	if err != nil {
		return fmt.Errorf("%s: %s: %w: %s", host, strings.Join(argv, " "), err, out)
	}
	return nil
}

// nginxWorkers lists the PIDs of host's nginx workers (children of the
// master): unchanged across mapping changes, since routes are pushed into
// nginx's shared dict without a reload.
func nginxWorkers(host string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := lab.Console(ctx, lab.DefaultPaths, nil, host, "sh", "-c",
		// /proc, not pgrep: the image need not carry procps. comm is "(nginx)", no spaces.
		`m=$(cat /run/nginx.pid) && for d in /proc/[0-9]*; do read -r _ _ _ pp _ < "$d/stat" 2>/dev/null && [ "$pp" = "$m" ] && echo "${d#/proc/}"; done | sort -n | tr '\n' ' '`)
	if err != nil {
		return "", fmt.Errorf("%s: nginx workers: %w: %s", host, err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

// pct returns the p-th percentile (0-100) of ds (sorted in place).
func pct(ds []time.Duration, p int) time.Duration {
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[(len(ds)-1)*p/100]
}
