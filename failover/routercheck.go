package failover

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/belay-sh/belay/router/admin"
	"github.com/belay-sh/belay/router/store"
)

// routerCheck runs a KindRouter step: it asks the router's root helper for
// the cells request until the router's own row in the routers table
// (router-sync reports under the host name, roles sets it to the inventory
// name) shows a report newer than the first answer's — router-sync runs and
// reaches the database now, whatever the clocks say — with no error: its
// last read of the mapping was valid and pushed into nginx. Every cell must
// also be reachable from the router (a TCP connect to the addresses in its
// cells.conf: on the standby router, the cells' standby servers).
func (x *executor) routerCheck(ctx context.Context, s Step) (string, bool, error) {
	if len(s.Commands) != 1 {
		return "", false, fmt.Errorf("router step %s: %d commands, expected one", s.ID, len(s.Commands))
	}
	timeout := s.Timeout
	if timeout == 0 {
		timeout = 2 * time.Minute
	}
	deadline := x.env.Now().Add(timeout)
	var first *time.Time
	var last error
	tries := 0
	for {
		tries++
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		out, err := x.env.Hosts.Run(cctx, s.Host, s.Commands[0])
		cancel()
		if err == nil {
			var note string
			note, err = judgeRouter(s.Host, out, &first)
			if err == nil {
				return note, false, nil
			}
		}
		last = err
		if ctx.Err() != nil {
			return "", false, ctx.Err()
		}
		if !x.env.Now().Before(deadline) {
			return "", false, fmt.Errorf("not routing after %s (%d tries): %w", timeout, tries, last)
		}
		if x.env.Sleep != nil {
			x.env.Sleep(time.Second)
		} else {
			time.Sleep(time.Second)
		}
	}
}

// errNotYet is a router answer that may change on the next try.
var errNotYet = errors.New("not yet")

// judgeRouter reads one answer of the cells request on router host. first
// keeps the time of the router's report in the first answer that had one.
func judgeRouter(host string, out []byte, first **time.Time) (string, error) {
	var res admin.Response
	if err := json.Unmarshal(out, &res); err != nil {
		return "", fmt.Errorf("router %s: shop-db answered no JSON (%v): %.200s", host, err, out)
	}
	if res.Error != "" {
		return "", fmt.Errorf("router %s: shop-db: %s", host, res.Error)
	}
	var down []string
	for _, c := range res.Cells {
		if c.Health != "up" {
			down = append(down, fmt.Sprintf("cell %s (%s) %s", c.Name, strings.Join(c.Addrs, ","), c.Health))
		}
	}
	if len(res.Cells) == 0 {
		return "", fmt.Errorf("router %s: its cells.conf lists no cell", host)
	}
	if len(down) > 0 {
		return "", fmt.Errorf("router %s cannot reach %s", host, strings.Join(down, "; "))
	}
	var me *store.Router
	for i := range res.Routers {
		if res.Routers[i].Name == host {
			me = &res.Routers[i]
		}
	}
	if me == nil {
		return "", fmt.Errorf("router %s has not reported to the database yet (router-sync starting? it reports under the host's hostname, which the roles set to %s): %w", host, host, errNotYet)
	}
	if me.Error != "" {
		return "", fmt.Errorf("router %s: router-sync refused the mapping or could not load it: %s", host, me.Error)
	}
	if *first == nil {
		t := me.SeenAt
		*first = &t
		return "", fmt.Errorf("router %s last reported %s: waiting for a report after this one: %w", host, me.SeenAt.Format(time.RFC3339), errNotYet)
	}
	if !me.SeenAt.After(**first) {
		return "", fmt.Errorf("router %s has not reported since %s (router-sync not running?): %w", host, (*first).Format(time.RFC3339), errNotYet)
	}
	if me.AppliedAt.IsZero() {
		return "", fmt.Errorf("router %s has not loaded a mapping yet: %w", host, errNotYet)
	}
	shops := 0
	for _, c := range res.Cells {
		shops += c.Shops
	}
	note := fmt.Sprintf("routes mapping version %d (%d shops on %d cells, every cell reachable)", me.Version, shops, len(res.Cells))
	if res.Unplaced > 0 {
		note += fmt.Sprintf("; %d shops on cells this router does not know", res.Unplaced)
	}
	return note, nil
}
