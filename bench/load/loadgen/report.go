package loadgen

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Report is what a run saw. Every request is in Total and in exactly one
// entry of each By map.
type Report struct {
	Elapsed time.Duration
	// Conns is how many connections the clients opened: with keep-alive far
	// fewer than requests (one per client, plus one per connection the server
	// closed).
	Conns int64
	Total Counts
	// Slow are the slow clients' requests (also in Total and the maps).
	Slow Counts
	// ByPool is keyed by the pool the app echoed (stable, canary), NoApp when
	// no app answered, "(direct)" when the app answered without nginx.
	ByPool map[string]*Counts
	// ByRelease is keyed by the release that answered, NoApp when none.
	ByRelease map[string]*Counts
	// ByShop is keyed by the shop the request named, "" for none.
	ByShop map[string]*Counts
	// Failures are the first MaxSamples failures that were not deliberate.
	Failures []Failure
}

// Failure is one failed request that the app did not fail on purpose.
type Failure struct {
	At                  time.Duration // since the start of the run
	Shop                string
	Status              int // 0: no answer (Err says why)
	Err                 string
	Pool, Release, Body string
}

func (f Failure) String() string {
	what := f.Err
	if what == "" {
		what = fmt.Sprintf("%d %q", f.Status, f.Body)
	}
	return fmt.Sprintf("+%s shop=%q pool=%s release=%s: %s", f.At.Round(time.Millisecond), f.Shop, f.Pool, f.Release, what)
}

func newReport() Report {
	return Report{ByPool: map[string]*Counts{}, ByRelease: map[string]*Counts{}, ByShop: map[string]*Counts{}}
}

func (r *Report) bucket(m map[string]*Counts, key string) *Counts {
	c := m[key]
	if c == nil {
		c = &Counts{}
		m[key] = c
	}
	return c
}

// Get returns the counts under key of m, zero when there are none.
func Get(m map[string]*Counts, key string) Counts {
	if c := m[key]; c != nil {
		return *c
	}
	return Counts{}
}

func (r Report) clone() Report {
	out := r
	out.Total, out.Slow = r.Total.clone(), r.Slow.clone()
	out.Failures = append([]Failure(nil), r.Failures...)
	for _, m := range []*map[string]*Counts{&out.ByPool, &out.ByRelease, &out.ByShop} {
		n := make(map[string]*Counts, len(*m))
		for k, v := range *m {
			c := v.clone()
			n[k] = &c
		}
		*m = n
	}
	return out
}

// RPS is the request rate over the run.
func (r Report) RPS() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Total.Requests) / r.Elapsed.Seconds()
}

// String is a multi-line summary: the totals, per pool and per release, and
// the sampled failures.
func (r Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s in %s (%.0f/s, %d connections)\n", r.Total, r.Elapsed.Round(time.Millisecond), r.RPS(), r.Conns)
	if r.Slow.Requests > 0 {
		fmt.Fprintf(&b, "  slow clients: %s\n", r.Slow)
	}
	for _, by := range []struct {
		name string
		m    map[string]*Counts
	}{{"pool", r.ByPool}, {"release", r.ByRelease}} {
		keys := make([]string, 0, len(by.m))
		for k := range by.m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(&b, "  %s %s: %s\n", by.name, k, by.m[k])
		}
	}
	for _, f := range r.Failures {
		fmt.Fprintf(&b, "  failure %s\n", f)
	}
	return b.String()
}
