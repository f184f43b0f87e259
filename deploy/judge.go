package deploy

import (
	"bytes"
	"fmt"
	"io"
	"sort"

	"github.com/belay-sh/belay/deploy/analysis"
	"github.com/belay-sh/belay/deploy/run"
)

// Judge returns the run.Judge that merges every host's access-log window and
// asks analysis.Evaluate for a verdict (canary against stable).
func Judge(th analysis.Thresholds) run.Judge {
	return func(stage string, logs map[string][]byte) (run.Verdict, error) {
		var hosts []string
		for h := range logs {
			hosts = append(hosts, h)
		}
		sort.Strings(hosts)
		var srcs []io.Reader
		for _, h := range hosts {
			srcs = append(srcs, bytes.NewReader(logs[h]))
		}
		// The window is the bytes written since the stage began (log offsets), so
		// no clock comparison between deployer and hosts is needed.
		rep, err := analysis.Analyze(analysis.Window{}, srcs...)
		if err != nil {
			return run.Verdict{}, err
		}
		v := analysis.Evaluate(rep.Canary, rep.Stable, th)
		reason := v.Reason
		if rep.Garbage > 0 {
			reason += fmt.Sprintf(" (%d unparsable log lines ignored)", rep.Garbage)
		}
		switch v.Decision {
		case analysis.Pass:
			return run.Verdict{Decision: run.Pass, Reason: reason}, nil
		case analysis.Rollback:
			return run.Verdict{Decision: run.Fail, Reason: reason}, nil
		}
		return run.Verdict{Decision: run.Wait, Reason: reason}, nil
	}
}
