package deploy

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/belay-sh/belay/deploy/analysis"
	"github.com/belay-sh/belay/deploy/run"
)

// Judge returns the run.Judge that counts every host's new access-log lines
// into one report per stage and asks analysis.Evaluate for a verdict (canary
// against stable) on everything counted so far. Lines are counted once, as the
// runner reads them: a verdict costs the same at the end of a long stage as at
// its start.
func Judge(th analysis.Thresholds) run.Judge {
	return func(string) run.Judgement { return &judgement{th: th} }
}

type judgement struct {
	th analysis.Thresholds
	// rep counts the stage's lines. The window is the bytes written since the
	// stage began (log offsets), so no clock comparison between deployer and
	// hosts is needed.
	rep analysis.Report
}

func (j *judgement) Add(host string, lines []byte) error {
	if err := j.rep.Read(analysis.Window{}, bytes.NewReader(lines)); err != nil {
		return fmt.Errorf("%s: %w", host, err)
	}
	return nil
}

func (j *judgement) Verdict() (run.Verdict, error) {
	v := analysis.Evaluate(j.rep.Canary, j.rep.Stable, j.th)
	reason := v.Reason
	if j.rep.Garbage > 0 {
		reason += fmt.Sprintf(" (%d unparsable log lines ignored)", j.rep.Garbage)
	}
	switch v.Decision {
	case analysis.Pass:
		return run.Verdict{Decision: run.Pass, Reason: reason, Numbers: v}, nil
	case analysis.Rollback:
		out := run.Verdict{Decision: run.Fail, Reason: reason, Numbers: v}
		// A slow canary has no single "first bad" request in the counts (the
		// slow threshold is only known now); 5xx have a timestamp.
		if slices.Contains(v.Failed, analysis.CheckErrors) && !j.rep.Canary.FirstError.IsZero() {
			out.FirstBad, out.FirstBadWhat = j.rep.Canary.FirstError, "first canary 5xx"
		}
		return out, nil
	}
	return run.Verdict{Decision: run.Wait, Reason: reason, Numbers: v}, nil
}
