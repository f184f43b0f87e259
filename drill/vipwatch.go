package drill

import (
	"context"
	"fmt"
	"time"
)

// BaselineWindow is how long the VIP is probed before the fault: the
// "before" latency the aftermath is compared with (about 100 probes).
const BaselineWindow = 2 * time.Second

// VIPWatch is how long the probe keeps going after the first answer: the
// sustained recovery must start within VIPWatch-SustainWindow of it.
const VIPWatch = SustainWindow + 4*time.Second

// probeRun is one run's prober and its lifetime.
type probeRun struct {
	p      *Prober
	stop   chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
}

func startProbe(ctx context.Context, p *Prober) *probeRun {
	ctx, cancel := context.WithCancel(ctx)
	pr := &probeRun{p: p, stop: make(chan struct{}), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(pr.done)
		p.Run(ctx, pr.stop)
	}()
	return pr
}

// finish stops starting probes and waits until every probe started has its
// outcome (at most the probe timeout).
func (pr *probeRun) finish() {
	select {
	case <-pr.stop:
	default:
		close(pr.stop)
	}
	<-pr.done
}

// abandon stops the prober and drops the probes in flight.
func (pr *probeRun) abandon() {
	pr.cancel()
	pr.finish()
}

// waitBaseline waits for 10 answers in a row, then probes BaselineWindow more:
// before the fault, the VIP must answer like it should afterwards.
func waitBaseline(ctx context.Context, p *Prober) error {
	err := poll(ctx, 50*time.Millisecond, 10*time.Second, func(context.Context) (bool, error) {
		res := p.Results()
		if len(res) > 0 && !res[len(res)-1].OK {
			last := res[len(res)-1]
			return false, fmt.Errorf("VIP probe: status %d %s", last.Status, last.Err)
		}
		return okStreak(res, 10), nil
	})
	if err != nil {
		return err
	}
	from := time.Now()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(BaselineWindow):
	}
	n, ok := 0, 0
	for _, r := range p.Results() {
		if r.Start.Before(from) {
			continue
		}
		n++
		if r.OK {
			ok++
		}
	}
	if n == 0 || float64(ok) < SustainRatio*float64(n) {
		return fmt.Errorf("only %d of %d probes answered over %s: fix the app first", ok, n, BaselineWindow)
	}
	return nil
}

// watchRecovery waits for the first answer after the fault at t0, probes
// watch more (VIPWatch in the drill), stops the prober and reads the whole
// timeline. The error says what a client saw when the app was not sustainably back.
func watchRecovery(ctx context.Context, pr *probeRun, t0 time.Time, watch time.Duration) (VIPFigures, error) {
	var first time.Duration
	err := poll(ctx, 20*time.Millisecond, 30*time.Second, func(context.Context) (bool, error) {
		d, ok := FirstAnswerSoFar(pr.p.Results(), t0)
		first = d
		return ok, nil
	})
	if err != nil {
		pr.finish()
		f := AnalyzeVIP(pr.p.Results(), t0, pr.p.Stopped())
		return f, fmt.Errorf("the VIP did not answer after the fault (%d probes failed): %w", f.FailedProbes, err)
	}
	select {
	case <-ctx.Done():
		return VIPFigures{}, ctx.Err()
	case <-time.After(time.Until(t0.Add(first + watch))):
	}
	pr.finish()
	f := AnalyzeVIP(pr.p.Results(), t0, pr.p.Stopped())
	if !f.SustainedOK {
		return f, fmt.Errorf("the VIP answered at +%s but was not sustainably back (%.0f %% of probes answered over %s) within %s after that: %d probes failed after the fault",
			round(f.FirstAnswer), SustainRatio*100, SustainWindow, watch-SustainWindow, f.FailedProbes)
	}
	return f, nil
}

// okStreak reports whether the last n results all succeeded.
func okStreak(results []ProbeResult, n int) bool {
	if len(results) < n {
		return false
	}
	for _, r := range results[len(results)-n:] {
		if !r.OK {
			return false
		}
	}
	return true
}

// String is the run's VIP figures in one line (report notes, progress).
func (f VIPFigures) String() string {
	if !f.Answered {
		return fmt.Sprintf("never answered; %d probes failed", f.FailedProbes)
	}
	sus := "never sustained"
	if f.SustainedOK {
		sus = fmt.Sprintf("sustained from +%s", round(f.Sustained))
	}
	return fmt.Sprintf("first answer +%s, %s; %d probes failed; latency after/before p50 %s/%s, p99 %s/%s; %d of %d requests after the failover over %s",
		round(f.FirstAnswer), sus, f.FailedProbes, roundLat(f.After.P50), roundLat(f.Before.P50), roundLat(f.After.P99), roundLat(f.Before.P99),
		f.SlowAfter, f.After.Probes, SlowThreshold)
}

// roundLat rounds a request latency for people: 0.1 ms steps below 10 ms.
func roundLat(d time.Duration) time.Duration {
	if d < 10*time.Millisecond && d > -10*time.Millisecond {
		return d.Round(100 * time.Microsecond)
	}
	return round(d)
}
