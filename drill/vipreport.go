package drill

import (
	"fmt"
	"strings"
	"time"
)

// The app-node drill's targets (issue 8): what the report checks the p50 over runs against.
const (
	TargetFirstAnswerP50 = 500 * time.Millisecond
	TargetSustainedP50   = time.Second
)

func verdict(got, target time.Duration) string {
	if got <= target {
		return fmt.Sprintf("p50 <= %s: met", target)
	}
	return fmt.Sprintf("p50 <= %s: MISSED", target)
}

// writeVIPSummary writes the VIP figures over runs, then each run's.
func writeVIPSummary(b *strings.Builder, v *VIPSummary, runs []Run) {
	b.WriteString("## VIP as clients felt it\n\n")
	fmt.Fprintf(b, "A browser-like client (up to %d kept-alive connections, timeout %s) sent GET / every %s. ", BrowserConns, ProbeTimeout, ProbeInterval)
	fmt.Fprintf(b, "Sustainably back: from then on >= %.0f %% of the probes of the next %s answered. ", SustainRatio*100, SustainWindow)
	b.WriteString("Latency added: the percentiles of the probes sent from the first answer on, minus those before the fault.\n\n")
	b.WriteString("| figure | p50 over runs | max | target |\n|---|---|---|---|\n")
	fmt.Fprintf(b, "| first answer | %s | %s | %s |\n", round(v.FirstAnswer.P50), round(v.FirstAnswer.Max), verdict(v.FirstAnswer.P50, TargetFirstAnswerP50))
	fmt.Fprintf(b, "| sustainably back | %s | %s | %s |\n", round(v.Sustained.P50), round(v.Sustained.Max), verdict(v.Sustained.P50, TargetSustainedP50))
	fmt.Fprintf(b, "| latency added, request p50 | %s | %s | |\n", roundLat(v.AddedP50.P50), roundLat(v.AddedP50.Max))
	fmt.Fprintf(b, "| latency added, request p99 | %s | %s | |\n", roundLat(v.AddedP99.P50), roundLat(v.AddedP99.Max))
	fmt.Fprintf(b, "| requests over %s after the failover | %d | %d | |\n", SlowThreshold, v.SlowAfter.P50, v.SlowAfter.Max)
	fmt.Fprintf(b, "| probes failed after the fault | %d | %d | |\n", v.Failed.P50, v.Failed.Max)
	b.WriteString("\n| # | first answer | sustainably back | failed | p50 before -> after | p99 before -> after | over " + SlowThreshold.String() + " |\n|---|---|---|---|---|---|---|\n")
	for i, r := range runs {
		f := r.VIP
		if f == nil {
			continue
		}
		sus := "never"
		if f.SustainedOK {
			sus = round(f.Sustained).String()
		}
		fmt.Fprintf(b, "| %d | %s | %s | %d | %s -> %s | %s -> %s | %d of %d |\n", i+1, round(f.FirstAnswer), sus, f.FailedProbes,
			roundLat(f.Before.P50), roundLat(f.After.P50), roundLat(f.Before.P99), roundLat(f.After.P99), f.SlowAfter, f.After.Probes)
	}
	b.WriteString("\n")
}
