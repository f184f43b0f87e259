package analysis

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// FuzzParseLine: no input panics; whatever parses formats back to a line that
// parses to the same Entry; the streaming reader agrees with ParseLine.
func FuzzParseLine(f *testing.F) {
	f.Add([]byte(logLine(1, 200, 12, PoolStable)))
	f.Add([]byte(logLine(59, 503, 2500, PoolCanary)))
	f.Add([]byte("2026-11-22T03:10:19-05:30\t::1\t499\t0.000\t-\t-\t-\t-\t\"\""))
	f.Add([]byte("2026-11-22T03:10:19+00:00\t1\t200\t1.\t\t\t\t\t\"x\""))
	f.Add([]byte("\t\t\t\t\t\t\t\t"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := ParseLine(b)
		rep, rerr := Analyze(Window{}, bytes.NewReader(append(append([]byte(nil), b...), '\n')))
		if rerr != nil {
			t.Fatalf("Analyze: %v", rerr)
		}
		trimmed := bytes.TrimSuffix(b, []byte{'\r'})
		if bytes.IndexByte(b, '\n') < 0 && len(trimmed) > 0 && len(b) < MaxLineBytes {
			counted := rep.Stable.Requests + rep.Canary.Requests + rep.Other.Requests
			if len(trimmed) == len(b) && (err == nil) != (counted == 1) {
				t.Fatalf("ParseLine err=%v but Analyze counted %d (garbage %d)", err, counted, rep.Garbage)
			}
			if rep.Lines != 1 || counted+rep.Garbage != 1 {
				t.Fatalf("one line: lines %d counted %d garbage %d", rep.Lines, counted, rep.Garbage)
			}
		}
		if err != nil {
			return
		}
		if e.Status != 0 && e.Status < 100 || e.Status > 599 || e.RequestTime < 0 {
			t.Fatalf("out of range: %+v", e)
		}
		again, err := ParseLine([]byte(e.Format()))
		if err != nil {
			t.Fatalf("Format output %q does not parse: %v", e.Format(), err)
		}
		if !again.Time.Equal(e.Time) || again.Status != e.Status || again.RequestTime != e.RequestTime ||
			again.Pool != e.Pool || again.Request != e.Request || again.RemoteAddr != e.RemoteAddr {
			t.Fatalf("round trip changed %+v into %+v", e, again)
		}
	})
}

// FuzzAnalyze: any byte stream is read without error or panic, and every
// newline-terminated non-blank line is accounted for exactly once.
func FuzzAnalyze(f *testing.F) {
	f.Add([]byte(logLine(1, 200, 1, PoolStable) + "junk\n" + logLine(2, 500, 3, PoolCanary)))
	f.Add([]byte("\n\n\r\n" + logLine(1, 200, 1, "")))
	f.Fuzz(func(t *testing.T, b []byte) {
		w := Window{Since: t0.Add(30 * time.Second)}
		rep, err := Analyze(w, bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		counted := rep.Stable.Requests + rep.Canary.Requests + rep.Other.Requests
		if counted+rep.Garbage+rep.Outside != rep.Lines {
			t.Fatalf("lines %d != counted %d + garbage %d + outside %d", rep.Lines, counted, rep.Garbage, rep.Outside)
		}
		want := int64(0)
		lines := strings.Split(string(b), "\n")
		for _, l := range lines[:len(lines)-1] {
			if strings.TrimSuffix(l, "\r") != "" {
				want++
			}
		}
		if len(b) < MaxLineBytes && rep.Lines != want {
			t.Fatalf("lines %d, want %d", rep.Lines, want)
		}
		if last := lines[len(lines)-1]; len(b) < MaxLineBytes && (last != "") != (rep.Partial == 1) {
			t.Fatalf("partial %d for trailing %q", rep.Partial, last)
		}
		if rep.Canary.Errors > rep.Canary.Requests || rep.Canary.Latency.Count() != rep.Canary.Requests {
			t.Fatalf("inconsistent canary stats %+v", rep.Canary)
		}
	})
}

// BenchmarkAnalyze reports parsing throughput in lines/s (a realistic mix of
// pools, statuses and latencies).
func BenchmarkAnalyze(b *testing.B) {
	var buf bytes.Buffer
	const n = 100000
	for i := 0; i < n; i++ {
		l := Entry{
			Time: t0.Add(time.Duration(i%3600) * time.Second), RemoteAddr: "203.0.113.77", Status: []int{200, 200, 200, 304, 404, 502}[i%6],
			RequestTime: time.Duration(i%1500) * time.Millisecond, UpstreamAddr: "10.213.0.12:3001", UpstreamStatus: "200",
			UpstreamResponseTime: "0.042", Pool: []string{PoolStable, PoolStable, PoolStable, PoolCanary}[i%4],
			Request: "GET /admin/products?shop=some-shop.example.com&page=2 HTTP/1.1",
		}.Format()
		buf.WriteString(l)
		buf.WriteByte('\n')
	}
	data := buf.Bytes()
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rep, err := Analyze(Window{Since: t0}, bytes.NewReader(data))
		if err != nil || rep.Lines != n {
			b.Fatalf("%v, %d lines", err, rep.Lines)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "lines/s")
}
