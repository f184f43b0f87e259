// Command load sends requests to one app through its VIP until it is stopped
// (SIGTERM/SIGINT), every other one naming a shop (?shop=), so a whitelist
// canary and the stable release both see traffic and the canary analysis has
// samples on each side. It is a bench helper (scripts/bench-deploy.sh measures
// the rollback after a canary verdict with it), not part of the belay CLI.
//
//	load --inventory FILE [--app NAME] --shop SHOP [--workers 4] [--gap 20ms]
//
// On exit it prints one line: requests sent, answers by status class, errors.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

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
	workers := fs.Int("workers", 4, "concurrent request loops")
	gap := fs.Duration("gap", 20*time.Millisecond, "pause between one loop's requests")
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
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	var sent, ok2, err5, other, failed atomic.Int64
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 3 * time.Second}
	for w := 0; w < *workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ctx.Err() == nil; n++ {
				target := "http://" + app.VIP + "/"
				if n%2 == 0 {
					target += "?shop=" + url.QueryEscape(*shop)
				}
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
				req.Host = app.Domains[0]
				sent.Add(1)
				resp, err := client.Do(req)
				switch {
				case err != nil:
					if ctx.Err() == nil {
						failed.Add(1)
					}
				default:
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					switch resp.StatusCode / 100 {
					case 2:
						ok2.Add(1)
					case 5:
						err5.Add(1)
					default:
						other.Add(1)
					}
				}
				select {
				case <-ctx.Done():
				case <-time.After(*gap):
				}
			}
		}()
	}
	wg.Wait()
	fmt.Printf("load: %d requests to %s: %d 2xx, %d 5xx, %d other, %d errors\n", sent.Load(), app.VIP, ok2.Load(), err5.Load(), other.Load(), failed.Load())
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
