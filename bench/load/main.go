// Command load sends requests to one app through its VIP until it is stopped
// (SIGTERM/SIGINT) or --duration ends, every other one naming a shop (?shop=),
// so a whitelist canary and the stable release both see traffic and the canary
// analysis has samples on each side. Each worker is a keep-alive client on its
// own connection (bench/load/loadgen). It is a bench helper
// (scripts/bench-deploy.sh measures the rollback after a canary verdict with
// it), not part of the belay CLI.
//
//	load --inventory FILE [--app NAME] --shop SHOP [--workers 4] [--gap 20ms]
//	     [--slow 0 --slow-path /sleep?d=1500ms] [--duration 1h] [--requests 0]
//
// On exit it prints the counts: by status, transport errors, failures the app
// did not answer on purpose, and per pool and release (the lab app echoes them).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/belay-sh/belay/bench/load/loadgen"
	"github.com/belay-sh/belay/inventory"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(2)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	invPath := fs.String("inventory", "/var/lib/belay/lab/inventory.json", "belay inventory JSON")
	appName := fs.String("app", "", "app name (default: the only app)")
	shop := fs.String("shop", "", "shop named in every other request (?shop=); required")
	workers := fs.Int("workers", 4, "keep-alive clients sending request after request")
	gap := fs.Duration("gap", 20*time.Millisecond, "pause between one client's requests")
	slow := fs.Int("slow", 0, "extra clients holding slow requests open on --slow-path")
	slowPath := fs.String("slow-path", "/sleep?d=1500ms", "path of the slow clients' requests (the lab app sleeps d)")
	duration := fs.Duration("duration", time.Hour, "stop after this long")
	requests := fs.Int64("requests", 0, "stop after this many requests (0: no bound)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *shop == "" {
		return errors.New("--shop: required (the whitelisted shop the canary gets)")
	}
	if *workers < 1 {
		return fmt.Errorf("--workers %d: at least 1", *workers)
	}
	inv, err := inventory.Load(*invPath)
	if err != nil {
		return err
	}
	app, err := pick(inv, *appName)
	if err != nil {
		return err
	}
	if app.VIP == "" || len(app.Domains) == 0 {
		return fmt.Errorf("app %s: the inventory gives no VIP or domain to send requests to", app.Name)
	}
	o := loadgen.Options{
		Target: "http://" + app.VIP, Host: app.Domains[0], Clients: *workers, Gap: *gap,
		SlowClients: *slow, SlowPath: *slowPath, Shops: []string{*shop, ""},
		Timeout: 3 * time.Second, MaxRequests: *requests, MaxDuration: *duration,
	}
	if *slow == 0 {
		o.SlowPath = ""
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	rep, err := loadgen.Run(ctx, o)
	if err != nil {
		return err
	}
	fmt.Printf("load: to %s: %s", app.VIP, rep)
	return nil
}

func pick(inv *inventory.Inventory, name string) (*inventory.App, error) {
	if name != "" {
		if a := inv.App(name); a != nil {
			return a, nil
		}
		return nil, fmt.Errorf("app %q: not in the inventory", name)
	}
	if len(inv.Apps) != 1 {
		return nil, fmt.Errorf("the inventory has %d apps: pass --app", len(inv.Apps))
	}
	return &inv.Apps[0], nil
}
