package drill

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		var out []time.Duration
		for _, x := range v {
			out = append(out, time.Duration(x)*time.Millisecond)
		}
		return out
	}
	tests := []struct {
		in   []time.Duration
		p    float64
		want time.Duration
	}{
		{nil, 50, 0},
		{ms(300), 50, 300 * time.Millisecond},
		{ms(500, 100, 300, 200, 400), 50, 300 * time.Millisecond},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 95, 10 * time.Millisecond},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 100, 10 * time.Millisecond},
		{ms(4, 1, 3, 2), 50, 2 * time.Millisecond},
	}
	for _, tt := range tests {
		if got := Percentile(tt.in, tt.p); got != tt.want {
			t.Errorf("Percentile(%v, %v) = %v, want %v", tt.in, tt.p, got, tt.want)
		}
	}
}

func TestSummaryIgnoresFailedRunsForTimings(t *testing.T) {
	r := &Report{Drill: "app-node", Target: "lab", Runs: []Run{
		{OK: true, Detection: 100 * time.Millisecond, Recovery: 400 * time.Millisecond, Acked: 10},
		{OK: false, Error: "VIP never answered", Recovery: time.Hour, Acked: 5, Missing: 2},
		{OK: true, Detection: 200 * time.Millisecond, Recovery: 600 * time.Millisecond, Acked: 10},
	}}
	r.Summarize()
	s := r.Summary
	if s.Runs != 3 || s.Failed != 1 || s.RecoveryMax != 600*time.Millisecond || s.MissingTotal != 2 || s.AckedWrites != 25 {
		t.Fatalf("summary = %+v", s)
	}
	md, _, back := renderReport(t, r)
	for _, want := range []string{"# Drill: app-node on lab", "| acknowledged writes missing | 2 |", "FAILED: VIP never answered"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	if back.Summary != r.Summary {
		t.Fatalf("JSON round trip: %+v", back.Summary)
	}
}

// renderReport writes r as markdown and JSON and reads the JSON back.
func renderReport(t *testing.T, r *Report) (md, js string, back Report) {
	t.Helper()
	var mb, jb bytes.Buffer
	if err := r.WriteMarkdown(&mb); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteJSON(&jb); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(jb.Bytes(), &back); err != nil {
		t.Fatalf("JSON round trip: %v", err)
	}
	return mb.String(), jb.String(), back
}

func TestMissingWrites(t *testing.T) {
	got := MissingWrites([]int64{5, 1, 2, 3}, map[int64]bool{1: true, 3: true, 9: true})
	if len(got) != 2 || got[0] != 2 || got[1] != 5 {
		t.Fatalf("MissingWrites = %v, want [2 5]", got)
	}
}

func TestMarkdownKeepsMultilineNotesInOneRow(t *testing.T) {
	r := &Report{Drill: "restore/corrupt", Target: "lab", Runs: []Run{{OK: true, Notes: []string{"caught: WARN a\nERROR: b | c"}}}}
	r.Summarize()
	var b bytes.Buffer
	if err := r.WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "| 1 | 0s | 0s | 0 | 0 | ok (caught: WARN a / ERROR: b / c) |\n") {
		t.Errorf("markdown:\n%s", b.String())
	}
}

// An app-node report carries the VIP figures per run and over runs, in
// markdown (with the targets) and in JSON.
func TestReportVIPFigures(t *testing.T) {
	ms := func(v int) time.Duration { return time.Duration(v) * time.Millisecond }
	fig := func(first, sus int, slow int) *VIPFigures {
		return &VIPFigures{Answered: true, FirstAnswer: ms(first), SustainedOK: true, Sustained: ms(sus), SlowAfter: slow,
			Before: LatencyStats{Probes: 100, Answered: 100, P50: ms(1), P99: ms(2)},
			After:  LatencyStats{Probes: 280, Answered: 280, P50: ms(1), P99: ms(302)}, AddedP99: ms(300)}
	}
	never := fig(300, 0, 0)
	never.SustainedOK = false
	r := &Report{Drill: "app-node", Target: "lab", Runs: []Run{
		{OK: true, Recovery: ms(300), VIP: fig(300, 900, 4)},
		{OK: true, Recovery: ms(700), VIP: fig(700, 1400, 40)},
		{OK: false, Error: "not sustainably back", Recovery: ms(300), VIP: never},
	}}
	r.Summarize()
	v := r.Summary.VIP
	if v == nil || v.FirstAnswer != (Spread[time.Duration]{ms(300), ms(700)}) || v.Sustained != (Spread[time.Duration]{ms(900), ms(1400)}) || v.SlowAfter != (Spread[int]{4, 40}) {
		t.Fatalf("summary VIP = %+v (failed runs must not count)", v)
	}
	md, js, back := renderReport(t, r)
	for _, want := range []string{
		"## VIP as clients felt it",
		"| first answer | 300ms | 700ms | p50 <= 500ms: met |",
		"| sustainably back | 900ms | 1.4s | p50 <= 1s: met |",
		"| latency added, request p99 | 300ms | 300ms | |",
		"| requests over 300ms after the failover | 4 | 40 | |",
		"| 2 | 700ms | 1.4s | 0 | 1ms -> 1ms | 2ms -> 302ms | 40 of 280 |",
		"| 3 | 300ms | never | 0 |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	if !reflect.DeepEqual(back.Summary, r.Summary) || !reflect.DeepEqual(back.Runs[1].VIP, r.Runs[1].VIP) {
		t.Fatalf("JSON round trip: %+v", back.Summary)
	}
	for _, key := range []string{`"vip": {`, `"firstAnswerNs": {`, `"sustainedNs": 900000000`, `"slowAfter": 40`} {
		if !strings.Contains(js, key) {
			t.Errorf("JSON lacks %s:\n%s", key, js)
		}
	}
}
