package sshx

import (
	"context"
	"fmt"
	"sync"
)

// Dialer opens one connection to a named host; Pool calls it at most once per host.
type Dialer func(ctx context.Context, host string) (*Client, error)

// Pool holds ONE connection per host, opened on first use and reused by every
// step, so a deploy pays one handshake per host however many steps it runs.
type Pool struct {
	dial  Dialer
	mu    sync.Mutex
	conns map[string]*poolEntry
}

type poolEntry struct {
	once sync.Once
	c    *Client
	err  error
}

// NewPool returns a pool dialing with d.
func NewPool(d Dialer) *Pool {
	return &Pool{dial: d, conns: map[string]*poolEntry{}}
}

// Get returns the host's connection, dialing it the first time. A failed dial is
// remembered: the deploy must not half-succeed by retrying a refused host key.
// A connection that died (keepalive) is redialled once on the next Get.
func (p *Pool) Get(ctx context.Context, host string) (*Client, error) {
	p.mu.Lock()
	e := p.conns[host]
	if e != nil && e.c != nil && e.c.Err() != nil {
		delete(p.conns, host)
		e = nil
	}
	if e == nil {
		e = &poolEntry{}
		p.conns[host] = e
	}
	p.mu.Unlock()
	e.once.Do(func() { e.c, e.err = p.dial(ctx, host) })
	return e.c, e.err
}

// Close closes every connection.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range p.conns {
		if e.c != nil {
			e.c.Close()
		}
	}
	p.conns = map[string]*poolEntry{}
}

// Parallel runs fn for each host with at most limit running at once, and returns
// the errors by host (nil entries for successes). limit <= 0 means all at once.
func Parallel(ctx context.Context, hosts []string, limit int, fn func(ctx context.Context, host string) error) map[string]error {
	if limit <= 0 || limit > len(hosts) {
		limit = len(hosts)
	}
	sem := make(chan struct{}, max(limit, 1))
	var mu sync.Mutex
	out := make(map[string]error, len(hosts))
	var wg sync.WaitGroup
	for _, h := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				mu.Lock()
				out[h] = fmt.Errorf("host %s: %w", h, ctx.Err())
				mu.Unlock()
				return
			}
			err := fn(ctx, h)
			<-sem
			mu.Lock()
			out[h] = err
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}
