// Package streamcount counts the bytes of a stream as they pass, so a long
// copy (a replaced server's data, a cell's database dump) can report its
// progress from another goroutine while it runs.
package streamcount

import (
	"io"
	"sync/atomic"
	"time"
)

// Writer passes writes to W and counts the bytes W accepted.
type Writer struct {
	W io.Writer
	n atomic.Int64
}

// Write writes p to W and adds what W accepted to the count.
func (c *Writer) Write(p []byte) (int, error) {
	n, err := c.W.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// N is the number of bytes written so far; safe from any goroutine.
func (c *Writer) N() int64 { return c.n.Load() }

// Report calls report with the count every interval until done is closed:
// the progress line of a long copy.
func (c *Writer) Report(done <-chan struct{}, every time.Duration, report func(n int64)) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			report(c.N())
		}
	}
}
