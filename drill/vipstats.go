package drill

import (
	"cmp"
	"math"
	"slices"
	"sort"
	"time"
)

// How an app-node run reads its probe timeline (docs/drills.md explains the choices).
const (
	// SustainWindow and SustainRatio define "sustainably back": from that moment,
	// at least SustainRatio of the probes started in the next SustainWindow answered.
	SustainWindow = 2 * time.Second
	SustainRatio  = 0.99
	// SlowThreshold is what counts as a slow request after the failover: nginx's
	// connect timeout to a dead upstream (300 ms) is what a request pays when the
	// surviving node still tries its dead peer first.
	SlowThreshold = 300 * time.Millisecond
	// DisturbMargin is how much slower than the slowest 1 % before the fault a
	// probe must be to count as hit by the fault (a failed probe always is).
	DisturbMargin = 50 * time.Millisecond
)

// VIPFigures are one app-node run's figures as a client of the VIP felt them.
type VIPFigures struct {
	// Answered is false when no probe sent after the fault hit was answered.
	Answered bool `json:"answered"`
	// FirstAnswer is from the fault to the first answer to a probe sent once the
	// fault had hit (the first probe that failed or was slow): the run's Recovery.
	FirstAnswer time.Duration `json:"firstAnswerNs"`
	// SustainedOK is false when the observation ended before any moment from
	// which SustainRatio of the probes of the next SustainWindow answered.
	SustainedOK bool `json:"sustainedReached"`
	// Sustained is from the fault to the first such moment (>= FirstAnswer).
	Sustained time.Duration `json:"sustainedNs"`
	// FailedProbes counts the probes started after the fault that got no answer
	// (an error, a timeout or an HTTP 5xx).
	FailedProbes int `json:"failedProbes"`
	// Before is every probe started before the fault; After every probe started
	// from the first answer on (the failover's aftermath, not the blip itself).
	Before LatencyStats `json:"before"`
	After  LatencyStats `json:"after"`
	// AddedP50 and AddedP99 are After's percentiles minus Before's (negative is noise).
	AddedP50 time.Duration `json:"addedP50Ns"`
	AddedP99 time.Duration `json:"addedP99Ns"`
	// SlowAfter counts the probes of After answered in more than SlowThreshold.
	SlowAfter int `json:"slowAfter"`
}

// LatencyStats describes the latency of a set of probes; percentiles are over
// the answered ones (a failure has no latency a user would call one).
type LatencyStats struct {
	Probes   int           `json:"probes"`
	Answered int           `json:"answered"`
	P50      time.Duration `json:"p50Ns"`
	P99      time.Duration `json:"p99Ns"`
}

func latencyStats(res []ProbeResult) LatencyStats {
	s := LatencyStats{Probes: len(res)}
	var lat []time.Duration
	for _, r := range res {
		if r.OK {
			lat = append(lat, r.End.Sub(r.Start))
		}
	}
	s.Answered = len(lat)
	s.P50, s.P99 = Percentile(lat, 50), Percentile(lat, 99)
	return s
}

// AnalyzeVIP reads a finished probe timeline around a fault at t0: res holds
// every probe started before until (the end of probing), each with its outcome.
// Pure: the drill and the tests feed it timelines.
func AnalyzeVIP(res []ProbeResult, t0, until time.Time) VIPFigures {
	res = slices.Clone(res)
	sort.SliceStable(res, func(i, j int) bool { return res[i].Start.Before(res[j].Start) })
	var f VIPFigures
	cut := sort.Search(len(res), func(i int) bool { return !res[i].Start.Before(t0) })
	f.Before = latencyStats(res[:cut])
	after := res[cut:]
	for _, r := range after {
		if !r.OK {
			f.FailedProbes++
		}
	}
	answerAt, hit, ok := firstAnswer(after, disturbedOver(f.Before))
	if !ok {
		return f
	}
	f.Answered = true
	if answerAt.IsZero() {
		// Nothing after the fault failed or slowed down: no blip to measure.
		answerAt = t0
	}
	f.FirstAnswer = answerAt.Sub(t0)
	from := sort.Search(len(res), func(i int) bool { return !res[i].Start.Before(answerAt) })
	f.After = latencyStats(res[from:])
	for _, r := range res[from:] {
		if r.OK && r.End.Sub(r.Start) > SlowThreshold {
			f.SlowAfter++
		}
	}
	if f.After.Answered > 0 && f.Before.Answered > 0 {
		f.AddedP50 = f.After.P50 - f.Before.P50
		f.AddedP99 = f.After.P99 - f.Before.P99
	}
	// Candidate moments: the fault itself when nothing was hit, else each
	// answer to a probe sent after the fault hit, in time order.
	cands := []time.Time{answerAt}
	for _, r := range after[hit:] {
		if r.OK && r.End.After(answerAt) {
			cands = append(cands, r.End)
		}
	}
	slices.SortFunc(cands, func(a, b time.Time) int { return a.Compare(b) })
	for _, c := range cands {
		if c.Add(SustainWindow).After(until) {
			break // the window would reach past the observation: not known
		}
		lo := sort.Search(len(res), func(i int) bool { return !res[i].Start.Before(c) })
		hi := sort.Search(len(res), func(i int) bool { return !res[i].Start.Before(c.Add(SustainWindow)) })
		if hi == lo {
			continue
		}
		okN := 0
		for _, r := range res[lo:hi] {
			if r.OK {
				okN++
			}
		}
		if float64(okN) >= SustainRatio*float64(hi-lo)-1e-9 { // exactly 99 of 100 is >= 99 %
			f.SustainedOK, f.Sustained = true, c.Sub(t0)
			break
		}
	}
	return f
}

// disturbedOver is the latency above which a probe counts as hit by the fault.
func disturbedOver(before LatencyStats) time.Duration {
	if before.Answered == 0 {
		return SlowThreshold
	}
	return before.P99 + DisturbMargin
}

// firstAnswer finds, among probes started after the fault (sorted by start),
// the first hit by it (failed, or slower than over) and the earliest answer to
// any probe started from that one on. hit is that probe's index; answerAt is
// zero (and ok true) when no probe was hit; ok is false when probes were hit
// and none of them or later ones has been answered.
func firstAnswer(after []ProbeResult, over time.Duration) (answerAt time.Time, hit int, ok bool) {
	hit = slices.IndexFunc(after, func(r ProbeResult) bool { return !r.OK || r.End.Sub(r.Start) > over })
	if hit < 0 {
		return time.Time{}, len(after), len(after) > 0
	}
	for _, r := range after[hit:] {
		if r.OK && (answerAt.IsZero() || r.End.Before(answerAt)) {
			answerAt = r.End
		}
	}
	return answerAt, hit, !answerAt.IsZero()
}

// FirstAnswerSoFar is the live view the drill polls while it waits: the time
// from t0 to the first answer after the fault hit, if there is one yet.
func FirstAnswerSoFar(res []ProbeResult, t0 time.Time) (time.Duration, bool) {
	res = slices.Clone(res)
	sort.SliceStable(res, func(i, j int) bool { return res[i].Start.Before(res[j].Start) })
	cut := sort.Search(len(res), func(i int) bool { return !res[i].Start.Before(t0) })
	at, _, ok := firstAnswer(res[cut:], disturbedOver(latencyStats(res[:cut])))
	if !ok {
		return 0, false
	}
	if at.IsZero() {
		return 0, true
	}
	return at.Sub(t0), true
}

// Spread is a figure over runs: its median and its worst.
type Spread[T cmp.Ordered] struct {
	P50 T `json:"p50"`
	Max T `json:"max"`
}

func spreadOf[T cmp.Ordered](xs []T) Spread[T] {
	return Spread[T]{P50: nearestRank(xs, 50), Max: nearestRank(xs, 100)}
}

// VIPSummary aggregates the VIP figures of the app-node runs that completed.
type VIPSummary struct {
	FirstAnswer Spread[time.Duration] `json:"firstAnswerNs"`
	Sustained   Spread[time.Duration] `json:"sustainedNs"`
	AddedP50    Spread[time.Duration] `json:"addedP50Ns"`
	AddedP99    Spread[time.Duration] `json:"addedP99Ns"`
	SlowAfter   Spread[int]           `json:"slowAfter"`
	Failed      Spread[int]           `json:"failedProbes"`
}

// SummarizeVIP aggregates figs (one per completed run); nil for none.
func SummarizeVIP(figs []VIPFigures) *VIPSummary {
	if len(figs) == 0 {
		return nil
	}
	var first, sus, a50, a99 []time.Duration
	var slow, failed []int
	for _, f := range figs {
		first, sus = append(first, f.FirstAnswer), append(sus, f.Sustained)
		a50, a99 = append(a50, f.AddedP50), append(a99, f.AddedP99)
		slow, failed = append(slow, f.SlowAfter), append(failed, f.FailedProbes)
	}
	return &VIPSummary{
		FirstAnswer: spreadOf(first), Sustained: spreadOf(sus),
		AddedP50: spreadOf(a50), AddedP99: spreadOf(a99),
		SlowAfter: spreadOf(slow), Failed: spreadOf(failed),
	}
}

// nearestRank is the p-th percentile (nearest rank) of xs, or the zero value for none.
func nearestRank[T cmp.Ordered](xs []T, p float64) T {
	var zero T
	if len(xs) == 0 {
		return zero
	}
	sorted := slices.Clone(xs)
	slices.Sort(sorted)
	rank := max(int(math.Ceil(p/100*float64(len(sorted)))), 1)
	return sorted[rank-1]
}
