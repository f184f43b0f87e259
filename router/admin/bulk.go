package admin

import (
	"context"
	"fmt"

	"github.com/belay-sh/belay/router"
	"github.com/belay-sh/belay/router/store"
)

// MaxBatch bounds the shops of one bulk assignment: one transaction locks
// every row it names, and the request must fit the helper's stdin bound
// (MaxBatch domains of 253 characters are about 2.6 MB).
const MaxBatch = 10000

// checkBatch validates a bulk assignment's domains as stored (the client
// normalizes them): every one, before anything changes, naming the first bad
// one by its index.
func checkBatch(domains []string) error {
	if len(domains) == 0 {
		return fmt.Errorf("domains: empty, expected 1-%d shops", MaxBatch)
	}
	if len(domains) > MaxBatch {
		return fmt.Errorf("domains: %d shops, at most %d in one request (split the list)", len(domains), MaxBatch)
	}
	seen := make(map[string]int, len(domains))
	for i, d := range domains {
		if err := router.CheckDomain(d); err != nil {
			return fmt.Errorf("domains[%d]: %w", i, err)
		}
		if j, ok := seen[d]; ok {
			return fmt.Errorf("domains[%d] %q: the same shop as domains[%d]", i, d, j)
		}
		seen[d] = i
	}
	return nil
}

// AssignMany maps domains to cell in one request and one transaction.
func (c *Client) AssignMany(ctx context.Context, domains []string, cell, actor string) ([]store.Assigned, int64, error) {
	res, err := c.call(ctx, Request{Op: OpAssignMany, Domains: domains, Cell: cell, Actor: actor})
	return res.Assigned, res.Version, err
}
