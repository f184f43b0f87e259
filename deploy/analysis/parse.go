package analysis

import (
	"bytes"
	"errors"
	"fmt"
	"time"
)

// Fields is the number of tab-separated fields of a `belay` log line:
// $time_iso8601 $remote_addr $status $request_time $upstream_addr $upstream_status
// $upstream_response_time $belay_pool "$request".
const Fields = 9

// LogFormat is the nginx log_format definition the roles install (http level, once).
const LogFormat = `log_format belay escape=default '$time_iso8601\t$remote_addr\t$status\t$request_time\t$upstream_addr\t$upstream_status\t$upstream_response_time\t$belay_pool\t"$request"';`

// The pools routing.conf assigns.
const (
	PoolStable = "stable"
	PoolCanary = "canary"
)

// Entry is one parsed access log line.
type Entry struct {
	Time       time.Time
	RemoteAddr string
	Status     int
	// RequestTime is $request_time (millisecond resolution).
	RequestTime          time.Duration
	UpstreamAddr         string
	UpstreamStatus       string
	UpstreamResponseTime string
	// Pool is $belay_pool: stable, canary, or "" where routing.conf did not run.
	Pool string
	// Request is the request line without the surrounding quotes.
	Request string
}

// ErrFields means a line does not have the nine tab-separated fields.
var ErrFields = errors.New("not a belay log line: expected 9 tab-separated fields")

// ParseLine parses one line (without its newline) of the `belay` format.
func ParseLine(line []byte) (Entry, error) {
	var f [Fields][]byte
	if !split(line, &f) {
		return Entry{}, ErrFields
	}
	var e Entry
	var err error
	if e.Time, err = parseTime(f[0]); err != nil {
		return Entry{}, err
	}
	if e.Status, err = parseStatus(f[2]); err != nil {
		return Entry{}, err
	}
	if e.RequestTime, err = parseSeconds(f[3]); err != nil {
		return Entry{}, err
	}
	e.RemoteAddr = string(f[1])
	e.UpstreamAddr = string(f[4])
	e.UpstreamStatus = string(f[5])
	e.UpstreamResponseTime = string(f[6])
	e.Pool = string(f[7])
	if e.Pool == "-" {
		e.Pool = ""
	}
	req := f[8]
	if len(req) < 2 || req[0] != '"' || req[len(req)-1] != '"' {
		return Entry{}, fmt.Errorf("request %q: expected a quoted request line", truncate(req))
	}
	e.Request = string(req[1 : len(req)-1])
	return e, nil
}

// split cuts line into exactly Fields tab-separated fields. nginx escapes tabs
// inside variables (\x09), so a tab is always a separator.
func split(line []byte, f *[Fields][]byte) bool {
	for i := 0; i < Fields-1; i++ {
		j := bytes.IndexByte(line, '\t')
		if j < 0 {
			return false
		}
		f[i] = line[:j]
		line = line[j+1:]
	}
	if bytes.IndexByte(line, '\t') >= 0 {
		return false
	}
	f[Fields-1] = line
	return true
}

// parseTime reads $time_iso8601 ("2006-01-02T15:04:05+07:00") without allocating.
func parseTime(b []byte) (time.Time, error) {
	bad := func() (time.Time, error) {
		return time.Time{}, fmt.Errorf("time %q: expected ISO 8601 like 2006-01-02T15:04:05+00:00", truncate(b))
	}
	if len(b) != 25 || b[4] != '-' || b[7] != '-' || b[10] != 'T' || b[13] != ':' || b[16] != ':' ||
		(b[19] != '+' && b[19] != '-') || b[22] != ':' {
		return bad()
	}
	num := func(s []byte) (int, bool) {
		n := 0
		for _, c := range s {
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + int(c-'0')
		}
		return n, true
	}
	var v [7]int
	for i, r := range [7][2]int{{0, 4}, {5, 7}, {8, 10}, {11, 13}, {14, 16}, {17, 19}, {20, 22}} {
		n, ok := num(b[r[0]:r[1]])
		if !ok {
			return bad()
		}
		v[i] = n
	}
	om, ok := num(b[23:25])
	if !ok || v[1] < 1 || v[1] > 12 || v[2] < 1 || v[2] > 31 || v[3] > 23 || v[4] > 59 || v[5] > 60 || v[6] > 23 || om > 59 {
		return bad()
	}
	off := time.Duration(v[6])*time.Hour + time.Duration(om)*time.Minute
	if b[19] == '-' {
		off = -off
	}
	return time.Date(v[0], time.Month(v[1]), v[2], v[3], v[4], v[5], 0, time.UTC).Add(-off), nil
}

// parseStatus reads $status: 100-599, or 000 (nginx logs it for a request that
// ended before any status was set).
func parseStatus(b []byte) (int, error) {
	if string(b) == "000" {
		return 0, nil
	}
	if len(b) != 3 || b[0] < '1' || b[0] > '5' || b[1] < '0' || b[1] > '9' || b[2] < '0' || b[2] > '9' {
		return 0, fmt.Errorf("status %q: expected a 3-digit HTTP status", truncate(b))
	}
	return int(b[0]-'0')*100 + int(b[1]-'0')*10 + int(b[2]-'0'), nil
}

// parseSeconds reads $request_time ("0.123": seconds, millisecond resolution).
func parseSeconds(b []byte) (time.Duration, error) {
	bad := func() (time.Duration, error) {
		return 0, fmt.Errorf("request time %q: expected seconds like 0.123", truncate(b))
	}
	if len(b) == 0 || len(b) > 16 {
		return bad()
	}
	var sec, ms int64
	i := 0
	for ; i < len(b) && b[i] != '.'; i++ {
		if b[i] < '0' || b[i] > '9' {
			return bad()
		}
		sec = sec*10 + int64(b[i]-'0')
	}
	if i == 0 {
		return bad()
	}
	if i < len(b) {
		frac := b[i+1:]
		if len(frac) == 0 || len(frac) > 3 {
			return bad()
		}
		for k := 0; k < 3; k++ {
			ms *= 10
			if k < len(frac) {
				if frac[k] < '0' || frac[k] > '9' {
					return bad()
				}
				ms += int64(frac[k] - '0')
			}
		}
	}
	if sec > 1<<30 {
		return bad()
	}
	return time.Duration(sec)*time.Second + time.Duration(ms)*time.Millisecond, nil
}

// Format renders an Entry as a `belay` log line (without newline), the inverse of
// ParseLine; tests and the lab's log generators use it.
func (e Entry) Format() string {
	pool := e.Pool
	if pool == "" {
		pool = "-"
	}
	ms := e.RequestTime.Milliseconds()
	return fmt.Sprintf("%s\t%s\t%03d\t%d.%03d\t%s\t%s\t%s\t%s\t\"%s\"",
		e.Time.Format("2006-01-02T15:04:05-07:00"), e.RemoteAddr, e.Status, ms/1000, ms%1000,
		e.UpstreamAddr, e.UpstreamStatus, e.UpstreamResponseTime, pool, e.Request)
}

func truncate(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "..."
	}
	return string(b)
}
