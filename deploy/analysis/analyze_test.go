package analysis

import (
	"bytes"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)

// logLine renders one valid line at t0+sec.
func logLine(sec int, status int, ms int, pool string) string {
	return Entry{
		Time: t0.Add(time.Duration(sec) * time.Second), RemoteAddr: "203.0.113.1", Status: status,
		RequestTime: time.Duration(ms) * time.Millisecond, UpstreamAddr: "10.213.0.11:3000",
		UpstreamStatus: fmt.Sprint(status), UpstreamResponseTime: "0.001", Pool: pool, Request: "GET / HTTP/1.1",
	}.Format() + "\n"
}

func TestAnalyzeCountsPerPool(t *testing.T) {
	var b strings.Builder
	for i := 0; i < 100; i++ {
		b.WriteString(logLine(i, 200, 10+i, PoolStable))
	}
	for i := 0; i < 10; i++ {
		st := 200
		if i < 3 {
			st = 503
		}
		b.WriteString(logLine(i, st, 5, PoolCanary))
	}
	b.WriteString(logLine(1, 404, 1, ""))
	b.WriteString("garbage line\n")
	b.WriteString("\n") // blank: not a line
	b.WriteString(logLine(2, 200, 1, PoolStable)[:30])
	rep, err := Analyze(Window{}, strings.NewReader(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Stable.Requests != 100 || rep.Stable.Errors != 0 {
		t.Errorf("stable %d/%d", rep.Stable.Errors, rep.Stable.Requests)
	}
	if rep.Canary.Requests != 10 || rep.Canary.Errors != 3 {
		t.Errorf("canary %d/%d", rep.Canary.Errors, rep.Canary.Requests)
	}
	if rep.Other.Requests != 1 {
		t.Errorf("other %d", rep.Other.Requests)
	}
	if rep.Lines != 112 || rep.Garbage != 1 || rep.Partial != 1 || rep.Outside != 0 {
		t.Errorf("lines %d garbage %d partial %d outside %d", rep.Lines, rep.Garbage, rep.Partial, rep.Outside)
	}
	if len(rep.GarbageSample) != 1 || rep.GarbageSample[0] != "garbage line" {
		t.Errorf("garbage sample %q", rep.GarbageSample)
	}
	// p95 of 10..109 ms by nearest rank is the 95th value: 104 ms.
	if p := rep.Stable.P95(); p != 104*time.Millisecond {
		t.Errorf("stable p95 %v, want 104ms", p)
	}
	if !rep.First.Equal(t0) || !rep.Last.Equal(t0.Add(99*time.Second)) {
		t.Errorf("first %v last %v", rep.First, rep.Last)
	}
}

func TestWindow(t *testing.T) {
	var b strings.Builder
	for i := 0; i < 10; i++ {
		b.WriteString(logLine(i, 200, 1, PoolCanary))
	}
	tests := []struct {
		name string
		w    Window
		want int64
	}{
		{"open", Window{}, 10},
		{"since whole second is inclusive", Window{Since: t0.Add(5 * time.Second)}, 5},
		{"since mid-second drops that second", Window{Since: t0.Add(5*time.Second + time.Millisecond)}, 4},
		{"until whole second", Window{Until: t0.Add(5 * time.Second)}, 5},
		{"until mid-second drops that second", Window{Until: t0.Add(5*time.Second + 500*time.Millisecond)}, 5},
		{"both", Window{Since: t0.Add(2 * time.Second), Until: t0.Add(4 * time.Second)}, 2},
		{"after everything", Window{Since: t0.Add(time.Hour)}, 0},
		{"other zone, same instant", Window{Since: t0.Add(5 * time.Second).In(time.FixedZone("x", 7200))}, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep, err := Analyze(tt.w, strings.NewReader(b.String()))
			if err != nil {
				t.Fatal(err)
			}
			if rep.Canary.Requests != tt.want || rep.Outside != 10-tt.want {
				t.Errorf("counted %d outside %d, want %d and %d", rep.Canary.Requests, rep.Outside, tt.want, 10-tt.want)
			}
		})
	}
}

func TestAnalyzeMergesSources(t *testing.T) {
	lb1 := logLine(1, 200, 10, PoolStable) + logLine(1, 500, 10, PoolCanary)
	lb2 := logLine(2, 200, 20, PoolStable) + logLine(2, 200, 2000, PoolCanary) + "junk\n"
	rep, err := Analyze(Window{}, strings.NewReader(lb1), strings.NewReader(lb2))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Stable.Requests != 2 || rep.Canary.Requests != 2 || rep.Canary.Errors != 1 || rep.Garbage != 1 {
		t.Errorf("merged: %+v", rep)
	}
	// Merging two separately read reports gives the same numbers.
	r1, _ := Analyze(Window{}, strings.NewReader(lb1))
	r2, _ := Analyze(Window{}, strings.NewReader(lb2))
	r1.Merge(&r2)
	if r1.Canary.Requests != rep.Canary.Requests || r1.Canary.P95() != rep.Canary.P95() || r1.Garbage != rep.Garbage ||
		!r1.First.Equal(rep.First) || !r1.Last.Equal(rep.Last) {
		t.Errorf("Report.Merge differs: %+v vs %+v", r1, rep)
	}
}

func TestAnalyzeCRLFAndNoTrailingNewline(t *testing.T) {
	in := strings.TrimSuffix(logLine(1, 200, 1, PoolStable), "\n") + "\r\n" + strings.TrimSuffix(logLine(2, 200, 1, PoolStable), "\n")
	rep, err := Analyze(Window{}, strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Stable.Requests != 1 || rep.Partial != 1 {
		t.Errorf("stable %d partial %d", rep.Stable.Requests, rep.Partial)
	}
}

// endless yields n bytes of 'a' without a newline, then a valid line.
type endless struct {
	n    int64
	tail *strings.Reader
}

func (e *endless) Read(p []byte) (int, error) {
	if e.n > 0 {
		k := int64(len(p))
		if k > e.n {
			k = e.n
		}
		for i := range p[:k] {
			p[i] = 'a'
		}
		e.n -= k
		return int(k), nil
	}
	return e.tail.Read(p)
}

func TestOverlongLineIsGarbageAndMemoryStaysBounded(t *testing.T) {
	const size = 64 << 20
	src := &endless{n: size, tail: strings.NewReader("\n" + logLine(1, 200, 1, PoolCanary))}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	rep, err := Analyze(Window{}, src)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Garbage != 1 || rep.Canary.Requests != 1 || rep.Lines != 2 {
		t.Errorf("garbage %d canary %d lines %d", rep.Garbage, rep.Canary.Requests, rep.Lines)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4<<20 {
		t.Errorf("reading a %d MiB line allocated %d bytes; the buffer should bound it", size>>20, alloc)
	}
	// The same overlong line at the very end (no newline): garbage, and no partial.
	rep, err = Analyze(Window{}, &endless{n: MaxLineBytes * 3, tail: strings.NewReader("")})
	if err != nil || rep.Garbage != 1 || rep.Partial != 0 {
		t.Errorf("trailing overlong: %v garbage %d partial %d", err, rep.Garbage, rep.Partial)
	}
}

type failing struct{ r io.Reader }

func (f failing) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, fmt.Errorf("ssh: connection lost")
	}
	return n, err
}

func TestAnalyzeReadError(t *testing.T) {
	_, err := Analyze(Window{}, strings.NewReader(logLine(1, 200, 1, PoolStable)), failing{strings.NewReader(logLine(1, 200, 1, PoolStable))})
	if err == nil || !strings.Contains(err.Error(), "log source 2: ssh: connection lost") {
		t.Errorf("error %v", err)
	}
}

func TestHistogram(t *testing.T) {
	var h Histogram
	if h.Quantile(0.95) != 0 || h.Over(0) != 0 {
		t.Error("empty histogram not zero")
	}
	for ms := 1; ms <= 2000; ms++ {
		h.Add(time.Duration(ms) * time.Millisecond)
	}
	if got := h.Quantile(0.5); got != 1000*time.Millisecond {
		t.Errorf("p50 %v, want 1s (exact below 1024 ms)", got)
	}
	p95 := h.Quantile(0.95) // true value 1900 ms
	if p95 < 1900*time.Millisecond || p95 > 1900*time.Millisecond*1016/1000 {
		t.Errorf("p95 %v, want 1900ms within +1.6%%", p95)
	}
	if got := h.Over(500 * time.Millisecond); got != 1500 {
		t.Errorf("over 500ms: %d, want 1500", got)
	}
	if got := h.Over(1500 * time.Millisecond); got < 500*984/1000 || got > 500 {
		t.Errorf("over 1500ms: %d, want 500 within -1.6%%", got)
	}
	// Bucket bounds tile the range without gaps.
	for i := 0; i < nBucket-1; i++ {
		_, hi := bucketBounds(i)
		lo, _ := bucketBounds(i + 1)
		if hi != lo {
			t.Fatalf("bucket %d ends at %d, bucket %d starts at %d", i, hi, i+1, lo)
		}
		if bucketOf(lo) != i+1 {
			t.Fatalf("bucketOf(%d) = %d, want %d", lo, bucketOf(lo), i+1)
		}
	}
	h.Add(1000 * time.Hour) // beyond the cap: counted, last bucket
	if h.Count() != 2001 || h.Quantile(1) <= 1000*time.Hour/2 {
		t.Errorf("huge value: count %d max %v", h.Count(), h.Quantile(1))
	}
}

func TestRequestsEqualsFormattedRoundTrip(t *testing.T) {
	// A buffer of many lines parses back exactly.
	var buf bytes.Buffer
	for i := 0; i < 5000; i++ {
		buf.WriteString(logLine(i%60, 200+i%4*100, i%3000, []string{PoolStable, PoolCanary}[i%2]))
	}
	rep, err := Analyze(Window{}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Stable.Requests+rep.Canary.Requests != 5000 || rep.Garbage != 0 {
		t.Errorf("%+v", rep)
	}
	if rep.Canary.Errors+rep.Stable.Errors != 1250 { // status 500 every 4th line
		t.Errorf("errors %d", rep.Canary.Errors+rep.Stable.Errors)
	}
}
