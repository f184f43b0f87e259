package analysis

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"
)

// MaxLineBytes bounds one log line. nginx's request line is at most 8 KiB by
// default (large_client_header_buffers) and escaping can make it 4× longer; longer
// lines are skipped and counted as garbage, so memory stays bounded.
const MaxLineBytes = 64 << 10

// Window selects the lines of one stage. $time_iso8601 has one-second resolution,
// so the window is shrunk to whole seconds: a line stamped T counts when
// T >= Since rounded up to a whole second, and T+1s <= Until. Lines of the second
// in which a stage began are dropped rather than risk counting the previous
// stage's traffic. Zero times leave that side open.
type Window struct {
	Since time.Time
	Until time.Time
}

// Contains reports whether a line stamped t belongs to the window.
func (w Window) Contains(t time.Time) bool {
	if !w.Since.IsZero() {
		since := w.Since.Truncate(time.Second)
		if since.Before(w.Since) {
			since = since.Add(time.Second)
		}
		if t.Before(since) {
			return false
		}
	}
	if !w.Until.IsZero() && t.Add(time.Second).After(w.Until) {
		return false
	}
	return true
}

// Report is the per-pool result of reading one or more logs.
type Report struct {
	Stable Stats
	Canary Stats
	// Other counts lines without a known pool (requests routing.conf did not handle).
	Other Stats
	// Lines counts complete lines read; Garbage those that did not parse (counted,
	// never fatal); Outside those outside the window; Partial unterminated last
	// lines (nginx may be mid-write), which are ignored.
	Lines, Garbage, Outside, Partial int64
	// GarbageSample holds the first few unparsable lines (cut to 200 bytes) for diagnosis.
	GarbageSample []string
	// First and Last are the earliest and latest timestamps counted.
	First, Last time.Time
}

const garbageSamples = 3

// Merge adds o (another load balancer's log) into r.
func (r *Report) Merge(o *Report) {
	r.Stable.Merge(&o.Stable)
	r.Canary.Merge(&o.Canary)
	r.Other.Merge(&o.Other)
	r.Lines += o.Lines
	r.Garbage += o.Garbage
	r.Outside += o.Outside
	r.Partial += o.Partial
	for _, g := range o.GarbageSample {
		if len(r.GarbageSample) < garbageSamples {
			r.GarbageSample = append(r.GarbageSample, g)
		}
	}
	if !o.First.IsZero() && (r.First.IsZero() || o.First.Before(r.First)) {
		r.First = o.First
	}
	if o.Last.After(r.Last) {
		r.Last = o.Last
	}
}

// Pool returns the stats of a pool name ("stable", "canary", anything else: Other).
func (r *Report) Pool(name string) *Stats {
	switch name {
	case PoolStable:
		return &r.Stable
	case PoolCanary:
		return &r.Canary
	}
	return &r.Other
}

// Analyze reads every source (one log per load balancer) and merges them into a
// single Report. Unparsable lines are counted, not fatal; only a read error is.
func Analyze(w Window, sources ...io.Reader) (Report, error) {
	var rep Report
	for i, src := range sources {
		if err := rep.Read(w, src); err != nil {
			return rep, fmt.Errorf("log source %d: %w", i+1, err)
		}
	}
	return rep, nil
}

// Read streams one log into r through a fixed MaxLineBytes buffer.
func (r *Report) Read(w Window, src io.Reader) error {
	br := bufio.NewReaderSize(src, MaxLineBytes)
	for {
		line, err := br.ReadSlice('\n')
		switch {
		case err == nil:
			r.line(w, line[:len(line)-1])
		case errors.Is(err, bufio.ErrBufferFull):
			// Too long: count once, drop the rest of it without buffering.
			r.Lines++
			r.garbage(line)
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
			if err != nil && err != io.EOF {
				return err
			}
			if err == io.EOF {
				return nil
			}
		case err == io.EOF:
			if len(line) > 0 {
				r.Partial++
			}
			return nil
		default:
			return err
		}
	}
}

func (r *Report) line(w Window, line []byte) {
	line = bytes.TrimSuffix(line, []byte{'\r'})
	if len(line) == 0 {
		return // blank lines are not log lines
	}
	r.Lines++
	var f [Fields][]byte
	if !split(line, &f) {
		r.garbage(line)
		return
	}
	t, err := parseTime(f[0])
	if err != nil {
		r.garbage(line)
		return
	}
	status, err := parseStatus(f[2])
	if err != nil {
		r.garbage(line)
		return
	}
	rt, err := parseSeconds(f[3])
	if err != nil {
		r.garbage(line)
		return
	}
	if req := f[8]; len(req) < 2 || req[0] != '"' || req[len(req)-1] != '"' {
		r.garbage(line)
		return
	}
	if !w.Contains(t) {
		r.Outside++
		return
	}
	var s *Stats
	switch string(f[7]) { // no allocation: the compiler compares in place
	case PoolStable:
		s = &r.Stable
	case PoolCanary:
		s = &r.Canary
	default:
		s = &r.Other
	}
	s.Add(status, rt)
	if status >= 500 && status <= 599 && (s.FirstError.IsZero() || t.Before(s.FirstError)) {
		s.FirstError = t
	}
	if r.First.IsZero() || t.Before(r.First) {
		r.First = t
	}
	if t.After(r.Last) {
		r.Last = t
	}
}

func (r *Report) garbage(line []byte) {
	r.Garbage++
	if len(r.GarbageSample) < garbageSamples {
		if len(line) > 200 {
			line = line[:200]
		}
		r.GarbageSample = append(r.GarbageSample, string(line))
	}
}
