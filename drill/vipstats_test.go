package drill

import (
	"testing"
	"time"
)

var vipT0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func msAt(ms int) time.Time { return vipT0.Add(time.Duration(ms) * time.Millisecond) }

// timeline is a probe every 20 ms from 2 s before the fault (t0 = 0 ms) to
// until ms, each answered (or not) after the latency shape gives it.
func timeline(until int, shape func(ms int) (ok bool, lat time.Duration)) []ProbeResult {
	var out []ProbeResult
	for ms := -2000; ms < until; ms += 20 {
		ok, lat := shape(ms)
		out = append(out, ProbeResult{Start: msAt(ms), End: msAt(ms).Add(lat), OK: ok})
	}
	return out
}

const fast = 2 * time.Millisecond

func TestAnalyzeVIP(t *testing.T) {
	ms := func(v int) time.Duration { return time.Duration(v) * time.Millisecond }
	tests := []struct {
		name  string
		until int
		shape func(ms int) (bool, time.Duration)
		want  VIPFigures // Before/After are checked through the added figures
	}{
		{"blip: kept-alive connections hang until the VIP moved, then all answer", 6000,
			func(m int) (bool, time.Duration) {
				if m >= 0 && m < 450 {
					return true, ms(450 - m)
				}
				return true, fast
			},
			VIPFigures{Answered: true, FirstAnswer: ms(450), SustainedOK: true, Sustained: ms(450)}},
		{"refused until the VIP moved", 6000,
			func(m int) (bool, time.Duration) { return !(m >= 0 && m < 300), fast },
			VIPFigures{Answered: true, FirstAnswer: ms(302), SustainedOK: true, Sustained: ms(302), FailedProbes: 15}},
		{"an answer from the old holder right after t0 is not the recovery", 6000,
			func(m int) (bool, time.Duration) { return !(m >= 20 && m < 300), fast },
			VIPFigures{Answered: true, FirstAnswer: ms(302), SustainedOK: true, Sustained: ms(302), FailedProbes: 14}},
		{"flapping: every other probe fails for a second", 6000,
			func(m int) (bool, time.Duration) {
				if m >= 0 && m < 200 {
					return false, fast
				}
				if m >= 200 && m < 1200 && (m/20)%2 == 1 {
					return false, fast
				}
				return true, fast
			},
			// The last failure starts at 1180 ms: from the answer at 1162 ms on, 99 of
			// the next 100 probes answer (exactly 99 %).
			VIPFigures{Answered: true, FirstAnswer: ms(202), SustainedOK: true, Sustained: ms(1162), FailedProbes: 35}},
		{"slow tail: every other request pays nginx's connect timeout to the dead peer", 6000,
			func(m int) (bool, time.Duration) {
				if m >= 0 && m < 300 {
					return false, fast
				}
				if m >= 300 && m < 2300 && (m/20)%2 == 0 {
					return true, fast + SlowThreshold
				}
				return true, fast
			},
			// From 302 ms: 284 probes, 50 of them at 302 ms: p50 unchanged, p99 +300 ms.
			VIPFigures{Answered: true, FirstAnswer: ms(302), SustainedOK: true, Sustained: ms(302), FailedProbes: 15,
				AddedP99: SlowThreshold, SlowAfter: 50}},
		{"never sustained: 5 % keep failing", 6000,
			func(m int) (bool, time.Duration) { return !(m >= 0 && m < 200 || m >= 200 && (m/20)%20 == 19), fast },
			VIPFigures{Answered: true, FirstAnswer: ms(202), FailedProbes: 10 + 15}},
		{"observation too short to know", 1000,
			func(m int) (bool, time.Duration) { return !(m >= 0 && m < 300), fast },
			VIPFigures{Answered: true, FirstAnswer: ms(302), FailedProbes: 15}},
		{"no blip at all", 6000,
			func(int) (bool, time.Duration) { return true, fast },
			VIPFigures{Answered: true, SustainedOK: true}},
		{"never answered", 6000,
			func(m int) (bool, time.Duration) { return m < 0, fast },
			VIPFigures{FailedProbes: 300}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := AnalyzeVIP(timeline(tt.until, tt.shape), vipT0, msAt(tt.until))
			g := got
			g.Before, g.After = LatencyStats{}, LatencyStats{}
			if g != tt.want {
				t.Errorf("AnalyzeVIP =\n %#v\nwant\n %#v", g, tt.want)
			}
			if got.Before.Probes != 100 || got.Before.P50 != fast {
				t.Errorf("baseline = %+v, want 100 probes at %s", got.Before, fast)
			}
		})
	}
}

func TestAnalyzeVIPAfterWindow(t *testing.T) {
	res := timeline(6000, func(m int) (bool, time.Duration) {
		if m >= 0 && m < 300 {
			return false, fast
		}
		if m >= 300 && m < 2300 && (m/20)%2 == 0 {
			return true, fast + SlowThreshold
		}
		return true, fast
	})
	f := AnalyzeVIP(res, vipT0, msAt(6000))
	want := LatencyStats{Probes: 284, Answered: 284, P50: fast, P99: fast + SlowThreshold}
	if f.After != want {
		t.Errorf("After = %+v, want %+v (the probes started from the first answer on)", f.After, want)
	}
	if f.String() == "" || f.SlowAfter != 50 {
		t.Errorf("figures %+v", f)
	}
}

func TestFirstAnswerSoFar(t *testing.T) {
	tests := []struct {
		name  string
		res   []ProbeResult
		want  time.Duration
		found bool
	}{
		{"only the baseline", timeline(0, func(int) (bool, time.Duration) { return true, fast }), 0, false},
		{"still down", timeline(400, func(m int) (bool, time.Duration) { return m < 0, fast }), 0, false},
		{"answered", timeline(400, func(m int) (bool, time.Duration) { return m < 0 || m >= 300, fast }), 302 * time.Millisecond, true},
		{"nothing hit yet", timeline(100, func(int) (bool, time.Duration) { return true, fast }), 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, found := FirstAnswerSoFar(tt.res, vipT0)
			if got != tt.want || found != tt.found {
				t.Errorf("FirstAnswerSoFar = %s, %v; want %s, %v", got, found, tt.want, tt.found)
			}
		})
	}
}

func TestSummarizeVIP(t *testing.T) {
	if SummarizeVIP(nil) != nil {
		t.Error("no runs: want nil")
	}
	ms := func(v int) time.Duration { return time.Duration(v) * time.Millisecond }
	v := SummarizeVIP([]VIPFigures{
		{FirstAnswer: ms(300), Sustained: ms(900), AddedP99: ms(1), SlowAfter: 0},
		{FirstAnswer: ms(500), Sustained: ms(1500), AddedP99: ms(300), SlowAfter: 40, FailedProbes: 3},
		{FirstAnswer: ms(400), Sustained: ms(400), AddedP99: ms(2), SlowAfter: 1},
	})
	if v.FirstAnswer != (Spread[time.Duration]{ms(400), ms(500)}) || v.Sustained != (Spread[time.Duration]{ms(900), ms(1500)}) ||
		v.AddedP99 != (Spread[time.Duration]{ms(2), ms(300)}) || v.SlowAfter != (Spread[int]{1, 40}) || v.Failed != (Spread[int]{0, 3}) {
		t.Errorf("SummarizeVIP = %+v", v)
	}
}
