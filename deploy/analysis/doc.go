// Package analysis judges a canary from the nginx access logs of the app
// servers. It streams the `belay` log format (see the host layout contract and
// docs/canary.md), keeps per-pool counts and a bounded latency histogram, and
// compares the canary pool with the stable pool:
//
//	rep, err := analysis.Analyze(analysis.Window{Since: stageStart}, logOfLB1, logOfLB2)
//	v := analysis.Evaluate(rep.Canary, rep.Stable, analysis.Thresholds{})
//	switch v.Decision { case analysis.Rollback: ...; case analysis.Wait: ...; case analysis.Pass: ... }
//
// Memory is bounded whatever the input: lines are read through a fixed buffer
// (longer lines are skipped and counted as garbage) and latencies go into a
// log-linear histogram of a few thousand counters per pool.
//
// The defaults follow Sivko's canary rules: roll back when the canary's 5xx rate
// exceeds the stable one by more than 1 percentage point, or its share of slow
// requests by more than 5 points; never pass on too few canary requests.
package analysis
