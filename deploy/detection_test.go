package deploy

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/belay-sh/belay/deploy/run"
)

func TestDetection(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)
	seen, start, end := t0.Add(9*time.Second), t0.Add(9100*time.Millisecond), t0.Add(9400*time.Millisecond)
	tests := []struct {
		name string
		err  error
		want Detection
	}{
		{"canary crash", fmt.Errorf("x: %w", &run.StepError{ByHost: map[string]error{"shop-2": &run.CanaryError{Host: "shop-2",
			FirstBad: t0.Add(8250 * time.Millisecond), FirstBadWhat: "canary unit exited on shop-2", Detected: t0.Add(8900 * time.Millisecond)}}}),
			Detection{FirstBad: "2026-11-22T03:00:08.250Z", What: "canary unit exited on shop-2", Detected: "2026-11-22T03:00:08.900Z",
				RollbackStarted: "2026-11-22T03:00:09.100Z", RollbackEnded: "2026-11-22T03:00:09.400Z",
				FirstBadToRollbackStart: "850ms", FirstBadToRollbackEnd: "1.15s", DetectedToRollbackEnd: "500ms"}},
		{"health check failed: nothing known before the failure", errors.New("step 04-canary-health failed"),
			Detection{Detected: "2026-11-22T03:00:09.000Z", RollbackStarted: "2026-11-22T03:00:09.100Z", RollbackEnded: "2026-11-22T03:00:09.400Z", DetectedToRollbackEnd: "400ms"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := detection(tc.err, seen, start, end); *got != tc.want {
				t.Errorf("got  %+v\nwant %+v", *got, tc.want)
			}
		})
	}
}
