package drill

import (
	"bytes"
	"encoding/json"
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
	var md bytes.Buffer
	if err := r.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"# Drill: app-node on lab", "| acknowledged writes missing | 2 |", "FAILED: VIP never answered"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("markdown lacks %q:\n%s", want, md.String())
		}
	}
	var js bytes.Buffer
	if err := r.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || back.Summary != r.Summary {
		t.Fatalf("JSON round trip: %v, %+v", err, back.Summary)
	}
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
