package streamcount

import (
	"bytes"
	"errors"
	"sync"
	"testing"
	"time"
)

type shortWriter struct{ max int }

func (s shortWriter) Write(p []byte) (int, error) {
	if len(p) > s.max {
		return s.max, errors.New("short write")
	}
	return len(p), nil
}

func TestCountsWhatTheWriterAccepted(t *testing.T) {
	var b bytes.Buffer
	c := &Writer{W: &b}
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); _ = c.N() }() // read while writing (go test -race)
	}
	for i := 0; i < 100; i++ {
		if _, err := c.Write([]byte("0123456789")); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if c.N() != 1000 || b.Len() != 1000 {
		t.Fatalf("counted %d, buffer %d, want 1000", c.N(), b.Len())
	}
	s := &Writer{W: shortWriter{max: 3}}
	if n, err := s.Write([]byte("abcdef")); err == nil || n != 3 || s.N() != 3 {
		t.Fatalf("short write: n %d err %v counted %d, want 3 counted and the error", n, err, s.N())
	}
}

func TestReportUntilDone(t *testing.T) {
	c := &Writer{W: &bytes.Buffer{}}
	c.Write([]byte("abc"))
	got := make(chan int64, 100)
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() { c.Report(done, time.Millisecond, func(n int64) { got <- n }); close(finished) }()
	if n := <-got; n != 3 {
		t.Fatalf("reported %d, want 3", n)
	}
	close(done)
	<-finished // Report returns once done is closed
}
