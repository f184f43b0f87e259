package appcmd

import (
	"bufio"
	"io"
	"regexp"
	"sort"
	"sync"
	"time"
)

// Filter decides which lines are shown.
type Filter struct {
	Since time.Time
	Grep  *regexp.Regexp
}

// Keep reports whether l passes the filter (--since, --grep on the message).
func (f Filter) Keep(l Line) bool {
	if !f.Since.IsZero() && l.Time.Before(f.Since) {
		return false
	}
	return f.Grep == nil || f.Grep.MatchString(l.Message)
}

// Merge sorts lines by time (stable: one source's order is kept for equal
// times) and keeps the last n when n > 0.
func Merge(lines []Line, n int) []Line {
	sort.SliceStable(lines, func(i, j int) bool { return lines[i].Time.Before(lines[j].Time) })
	if n > 0 && len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines
}

// Reorder merges live streams from several hosts by time: a line is held for
// Window after it arrived, and what is due goes out sorted by its own time,
// so lines written within Window of each other on different hosts come out in
// order. Lines older than one already printed are printed as they come.
type Reorder struct {
	Window time.Duration
	Emit   func(Line)
	Now    func() time.Time

	mu  sync.Mutex
	buf []held
}

type held struct {
	l  Line
	at time.Time
}

// Add queues a line.
func (r *Reorder) Add(l Line) {
	r.mu.Lock()
	r.buf = append(r.buf, held{l, r.Now()})
	r.mu.Unlock()
}

// Flush emits every line held at least Window (all with force).
func (r *Reorder) Flush(force bool) {
	r.mu.Lock()
	cut := r.Now().Add(-r.Window)
	var due, keep []held
	for _, h := range r.buf {
		if force || !h.at.After(cut) {
			due = append(due, h)
		} else {
			keep = append(keep, h)
		}
	}
	r.buf = keep
	r.mu.Unlock()
	sort.SliceStable(due, func(i, j int) bool { return due[i].l.Time.Before(due[j].l.Time) })
	for _, h := range due {
		r.Emit(h.l)
	}
}

// lineWriter splits a stream into lines and hands each to fn (a partial last
// line when closed). It is the stdout of one remote log command.
func lineWriter(fn func(string)) io.WriteCloser {
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			fn(sc.Text())
		}
		// A line over 1 MiB: drain the rest so the SSH session is not blocked.
		_, _ = io.Copy(io.Discard, pr)
	}()
	return &closeWaiter{pw, done}
}

type closeWaiter struct {
	*io.PipeWriter
	done chan struct{}
}

func (c *closeWaiter) Close() error {
	err := c.PipeWriter.Close()
	<-c.done
	return err
}
