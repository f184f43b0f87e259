package analysis

import (
	"math"
	"math/bits"
	"time"
)

// Histogram counts latencies in milliseconds: exactly below 1024 ms, in 64
// log-linear sub-buckets per power of two above (each bucket at most 1/64 ≈ 1.6 %
// wide), capped at 2^40 ms. It holds at most a few thousand counters whatever the
// number of requests. The zero value is empty and ready.
type Histogram struct {
	counts []int64
	n      int64
}

const (
	exactMS = 1024 // values below are counted exactly
	subBits = 6    // 64 sub-buckets per power of two above exactMS
	maxExp  = 40   // values at or above 2^40 ms go to the last bucket
	nBucket = exactMS + (maxExp-10)<<subBits
)

func bucketOf(ms int64) int {
	if ms < 0 {
		ms = 0
	}
	if ms < exactMS {
		return int(ms)
	}
	e := bits.Len64(uint64(ms)) - 1 // 2^e <= ms < 2^(e+1), e >= 10
	if e >= maxExp {
		return nBucket - 1
	}
	sub := int(ms>>(e-subBits)) & (1<<subBits - 1)
	return exactMS + (e-10)<<subBits + sub
}

// bucketBounds is the [lo, hi) range in ms of bucket i.
func bucketBounds(i int) (lo, hi int64) {
	if i < exactMS {
		return int64(i), int64(i) + 1
	}
	e := 10 + (i-exactMS)>>subBits
	sub := int64((i - exactMS) & (1<<subBits - 1))
	width := int64(1) << (e - subBits)
	lo = (1<<subBits + sub) * width
	return lo, lo + width
}

// Add counts one latency.
func (h *Histogram) Add(d time.Duration) {
	if h.counts == nil {
		h.counts = make([]int64, nBucket)
	}
	h.counts[bucketOf(d.Milliseconds())]++
	h.n++
}

// Count is the number of latencies added.
func (h *Histogram) Count() int64 { return h.n }

// Merge adds o's counts to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	if h.counts == nil {
		h.counts = make([]int64, nBucket)
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
}

// Quantile is the nearest-rank q-quantile (0 < q <= 1): exact below 1024 ms, the
// upper edge of its bucket above (an overestimate of at most 1.6 %). 0 when empty.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(h.n)))
	if rank < 1 {
		rank = 1
	}
	var cum int64
	for i, c := range h.counts {
		cum += c
		if cum >= rank {
			lo, hi := bucketBounds(i)
			if i < exactMS {
				return time.Duration(lo) * time.Millisecond
			}
			return time.Duration(hi-1) * time.Millisecond
		}
	}
	return 0 // unreachable: cum ends at n
}

// Over counts latencies strictly above d: exact when d < 1024 ms; above that,
// requests in the bucket that holds d are not counted (an undercount within that
// bucket's 1.6 %, the same for both pools compared with one threshold).
func (h *Histogram) Over(d time.Duration) int64 {
	if h.n == 0 {
		return 0
	}
	t := d.Milliseconds()
	var n int64
	for i := bucketOf(t) + 1; i < nBucket; i++ {
		n += h.counts[i]
	}
	return n
}

// Stats is what one pool did in a time window.
type Stats struct {
	Requests int64
	// Errors counts responses with status 500-599 ($status, what the client got).
	Errors int64
	// Latency is the histogram of $request_time.
	Latency Histogram
	// FirstError is the timestamp of the earliest 5xx counted (zero if none):
	// where a bad canary began, for the time-to-rollback report.
	FirstError time.Time
}

// Add counts one request.
func (s *Stats) Add(status int, requestTime time.Duration) {
	s.Requests++
	if status >= 500 && status <= 599 {
		s.Errors++
	}
	s.Latency.Add(requestTime)
}

// Merge adds o (e.g. the other load balancer's log) to s.
func (s *Stats) Merge(o *Stats) {
	s.Requests += o.Requests
	s.Errors += o.Errors
	s.Latency.Merge(&o.Latency)
	if !o.FirstError.IsZero() && (s.FirstError.IsZero() || o.FirstError.Before(s.FirstError)) {
		s.FirstError = o.FirstError
	}
}

// ErrorRate is Errors/Requests (0 without requests).
func (s *Stats) ErrorRate() float64 {
	if s.Requests == 0 {
		return 0
	}
	return float64(s.Errors) / float64(s.Requests)
}

// P95 is the 95th percentile of request time.
func (s *Stats) P95() time.Duration { return s.Latency.Quantile(0.95) }

// SlowerThan counts requests whose request time exceeds d.
func (s *Stats) SlowerThan(d time.Duration) int64 { return s.Latency.Over(d) }
