package run

import (
	"bytes"
	"fmt"
	"io"
)

// prefixed returns a writer that prints each complete line of a streamed step
// to Progress as "[host] line" (partial lines wait for their newline; the rest
// is flushed when the step's session closes its writer, or dropped if none).
func (r *Runner) prefixed(host string) io.Writer {
	if r.Progress == nil {
		return io.Discard
	}
	return &lineWriter{r: r, host: host}
}

type lineWriter struct {
	r    *Runner
	host string
	buf  []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.line(w.buf[:i])
		w.buf = w.buf[i+1:]
	}
	// A command that never ends a line must not grow the buffer without bound.
	if len(w.buf) > 64<<10 {
		w.line(w.buf)
		w.buf = nil
	}
	return len(p), nil
}

func (w *lineWriter) line(b []byte) {
	w.r.mu.Lock()
	defer w.r.mu.Unlock()
	fmt.Fprintf(w.r.Progress, "[%s] %s\n", w.host, bytes.TrimRight(b, "\r"))
}
