package drill

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/belay-sh/belay/router"
)

// CellClass is how the cell drill counts one answer.
type CellClass string

// The classes of an answer.
const (
	// CellOK is an answer below 500 that the cell gave (not the router).
	CellOK CellClass = "ok"
	// CellDown is the router's clean 503 for a cell it cannot reach
	// (X-Belay-Router: cell-down).
	CellDown CellClass = "cell-down"
	// CellError is anything else: a 5xx of the app, another router answer
	// (frozen, unknown shop), a shop served by the wrong cell, a timeout, a
	// refused or reset connection.
	CellError CellClass = "error"
)

// HeaderCell is the response header a router role may add naming the cell
// that served (checked when present).
const HeaderCell = "X-Belay-Cell"

// CellResult is one request of the load.
type CellResult struct {
	Start, End time.Time
	Shop, Cell string
	Class      CellClass
	Status     int
	// Reason says why an answer is an error ("HTTP 500", "timeout", ...).
	Reason string
}

// ClassifyCellAnswer classifies an HTTP answer to a request for a shop of
// cell want: status and the X-Belay-Router / X-Belay-Cell headers.
func ClassifyCellAnswer(status int, h http.Header, want string) (CellClass, string) {
	marker := h.Get(router.HeaderRouter)
	switch {
	case status == http.StatusServiceUnavailable && marker == "cell-down":
		return CellDown, ""
	case marker != "":
		return CellError, fmt.Sprintf("router %s (HTTP %d)", marker, status)
	case status >= 500:
		return CellError, fmt.Sprintf("HTTP %d", status)
	}
	if got := h.Get(HeaderCell); got != "" && got != want {
		return CellError, "served by cell " + got
	}
	return CellOK, ""
}

// classifyErr names a transport error the way failureReasons does.
func classifyErr(err error) string {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() || strings.Contains(err.Error(), "deadline exceeded") {
		return "timeout"
	}
	return "connection error"
}

// cellLoad sends one request every interval to url, with each shop's Host
// in turn, each on its own goroutine (a request the dead cell holds does not
// delay the next). Unlike the app-node probe it keeps no browser's six
// connections: each shop is a different client, and a cell that holds its
// requests for the router's connect timeout must not queue the other cells'.
type cellLoad struct {
	url      string
	shops    []CellShop
	interval time.Duration
	timeout  time.Duration

	mu      sync.Mutex
	results []CellResult
}

func newCellClient(timeout time.Duration) *http.Client {
	d := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         d.DialContext,
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     90 * time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// run sends requests until stop is closed or ctx ends, then waits for every
// request it started (ending ctx abandons them: their results are dropped).
func (l *cellLoad) run(ctx context.Context, stop <-chan struct{}) {
	client := newCellClient(l.timeout)
	defer client.CloseIdleConnections()
	var wg sync.WaitGroup
	defer wg.Wait()
	t := time.NewTicker(l.interval)
	defer t.Stop()
	for i := 0; ; i++ {
		shop := l.shops[i%len(l.shops)]
		start := time.Now()
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.one(ctx, client, shop, start)
		}()
		select {
		case <-ctx.Done():
			return
		case <-stop:
			return
		case <-t.C:
		}
	}
}

func (l *cellLoad) one(ctx context.Context, client *http.Client, shop CellShop, start time.Time) {
	r := CellResult{Start: start, Shop: shop.Domain, Cell: shop.Cell}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, l.url, nil)
	if err == nil {
		req.Host = shop.Domain
		var resp *http.Response
		if resp, err = client.Do(req); err == nil {
			_, err = drain(resp)
			r.Status = resp.StatusCode
			if err == nil {
				r.Class, r.Reason = ClassifyCellAnswer(resp.StatusCode, resp.Header, shop.Cell)
			}
		}
	}
	if err != nil {
		r.Class, r.Reason = CellError, classifyErr(err)
	}
	r.End = time.Now()
	if ctx.Err() != nil {
		return // cut short by the end of the drill, not by the cells
	}
	l.mu.Lock()
	l.results = append(l.results, r)
	l.mu.Unlock()
}

// Results returns the results so far in the order the requests started.
func (l *cellLoad) Results() []CellResult {
	l.mu.Lock()
	out := append([]CellResult(nil), l.results...)
	l.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
	return out
}

// loadRun is a running load and its lifetime.
type loadRun struct {
	l      *cellLoad
	stop   chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
}

func startCellLoad(ctx context.Context, l *cellLoad) *loadRun {
	ctx, cancel := context.WithCancel(ctx)
	lr := &loadRun{l: l, stop: make(chan struct{}), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(lr.done)
		l.run(ctx, lr.stop)
	}()
	return lr
}

// finish stops starting requests and waits for those in flight (at most the timeout).
func (lr *loadRun) finish() {
	select {
	case <-lr.stop:
	default:
		close(lr.stop)
	}
	<-lr.done
}

// abandon stops the load and drops the requests in flight.
func (lr *loadRun) abandon() {
	lr.cancel()
	lr.finish()
}

// cellBaseline waits until every cell answered its last 10 requests, then
// loads BaselineWindow more: before the fault every request must succeed.
func cellBaseline(ctx context.Context, l *cellLoad, cells []string) error {
	var since time.Time
	err := poll(ctx, 50*time.Millisecond, 30*time.Second, func(context.Context) (bool, error) {
		res := l.Results()
		for _, c := range cells {
			n := 0
			for i := len(res) - 1; i >= 0 && n < 10; i-- {
				if res[i].Cell != c {
					continue
				}
				if res[i].Class == CellDown {
					return false, fatal(fmt.Errorf("cell %s is down before the fault: the router answers its shop %s with the clean 503", c, res[i].Shop))
				}
				if res[i].Class != CellOK {
					return false, fmt.Errorf("cell %s: %s %s: %s", c, res[i].Shop, res[i].Class, res[i].Reason)
				}
				n++
			}
			if n < 10 {
				return false, fmt.Errorf("cell %s: %d answers so far", c, n)
			}
		}
		since = time.Now()
		return true, nil
	})
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(BaselineWindow):
	}
	for _, r := range l.Results() {
		if !r.Start.Before(since) && r.Class != CellOK {
			return fmt.Errorf("cell %s: %s %s (%s) during the %s baseline: the stack is not healthy before the fault", r.Cell, r.Shop, r.Class, r.Reason, BaselineWindow)
		}
	}
	return nil
}
