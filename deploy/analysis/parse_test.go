package analysis

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// line builds a log line from its nine fields.
func line(fields ...string) string { return strings.Join(fields, "\t") }

func TestParseLine(t *testing.T) {
	ok := line("2026-11-22T03:10:19+00:00", "203.0.113.9", "502", "1.234", "10.213.0.12:3001", "502", "1.230", "canary", `"GET /x?shop=a.example.com HTTP/1.1"`)
	e, err := ParseLine([]byte(ok))
	if err != nil {
		t.Fatal(err)
	}
	want := Entry{
		Time: time.Date(2026, 11, 22, 3, 10, 19, 0, time.UTC), RemoteAddr: "203.0.113.9", Status: 502,
		RequestTime: 1234 * time.Millisecond, UpstreamAddr: "10.213.0.12:3001", UpstreamStatus: "502",
		UpstreamResponseTime: "1.230", Pool: "canary", Request: "GET /x?shop=a.example.com HTTP/1.1",
	}
	if !e.Time.Equal(want.Time) {
		t.Errorf("time %v, want %v", e.Time, want.Time)
	}
	e.Time = want.Time
	if e != want {
		t.Errorf("got  %+v\nwant %+v", e, want)
	}
	if got := e.Format(); got != ok {
		t.Errorf("Format:\n%q\nwant\n%q", got, ok)
	}
}

func TestParseLineVariants(t *testing.T) {
	base := []string{"2026-11-22T03:10:19+00:00", "127.0.0.1", "200", "0.005", "-", "-", "-", "stable", `"GET / HTTP/1.1"`}
	with := func(i int, v string) string {
		f := append([]string(nil), base...)
		f[i] = v
		return line(f...)
	}
	tests := []struct {
		name string
		in   string
		err  string // "" = parses
		chk  func(Entry) bool
	}{
		{"offset +02:00", with(0, "2026-11-22T05:10:19+02:00"), "", func(e Entry) bool { return e.Time.Equal(time.Date(2026, 11, 22, 3, 10, 19, 0, time.UTC)) }},
		{"offset -05:30", with(0, "2026-11-21T21:40:19-05:30"), "", func(e Entry) bool { return e.Time.Equal(time.Date(2026, 11, 22, 3, 10, 19, 0, time.UTC)) }},
		{"whole seconds", with(3, "2"), "", func(e Entry) bool { return e.RequestTime == 2*time.Second }},
		{"one decimal", with(3, "0.5"), "", func(e Entry) bool { return e.RequestTime == 500*time.Millisecond }},
		{"no pool", with(7, "-"), "", func(e Entry) bool { return e.Pool == "" }},
		{"empty pool", with(7, ""), "", func(e Entry) bool { return e.Pool == "" }},
		{"escaped request", with(8, `"GET /\x22a\x09b HTTP/1.1"`), "", func(e Entry) bool { return e.Request == `GET /\x22a\x09b HTTP/1.1` }},
		{"empty request", with(8, `""`), "", func(e Entry) bool { return e.Request == "" }},
		{"retried upstream", with(5, "502, 200"), "", func(e Entry) bool { return e.UpstreamStatus == "502, 200" }},
		{"status 499", with(2, "499"), "", func(e Entry) bool { return e.Status == 499 }},
		{"status 000", with(2, "000"), "", func(e Entry) bool { return e.Status == 0 }},
		{"status 099", with(2, "099"), "status", nil},
		{"8 fields", line(base[:8]...), "9 tab-separated", nil},
		{"10 fields", line(append(base, "x")...), "9 tab-separated", nil},
		{"spaces not tabs", strings.Join(base, " "), "9 tab-separated", nil},
		{"bad time", with(0, "22/Nov/2026:03:10:19 +0000"), "time", nil},
		{"bad month", with(0, "2026-13-22T03:10:19+00:00"), "time", nil},
		{"Z time", with(0, "2026-11-22T03:10:19Z"), "time", nil},
		{"bad status", with(2, "20x"), "status", nil},
		{"status 600", with(2, "600"), "status", nil},
		{"status 4 digits", with(2, "2000"), "status", nil},
		{"negative time", with(3, "-0.1"), "request time", nil},
		{"4 decimals", with(3, "0.1234"), "request time", nil},
		{"dot only", with(3, "."), "request time", nil},
		{"trailing dot", with(3, "1."), "request time", nil},
		{"huge time", with(3, "99999999999999"), "request time", nil},
		{"unquoted request", with(8, "GET / HTTP/1.1"), "quoted request", nil},
		{"empty line", "", "9 tab-separated", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := ParseLine([]byte(tt.in))
			if tt.err == "" {
				if err != nil {
					t.Fatalf("error: %v", err)
				}
				if !tt.chk(e) {
					t.Errorf("parsed %+v", e)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("error %v, want one mentioning %q", err, tt.err)
			}
		})
	}
	if _, err := ParseLine([]byte("a\tb")); !errors.Is(err, ErrFields) {
		t.Errorf("short line: %v, want ErrFields", err)
	}
}
