package deploy

import (
	"time"

	"github.com/belay-sh/belay/deploy/run"
)

// Detection says how fast a failed rollout was undone: from the first bad
// sign and from its detection to the start and the end of the rollback.
// Times are RFC 3339 with milliseconds; durations strings like "1.234s".
type Detection struct {
	// FirstBad is when the trouble began, by the hosts' clocks: the canary
	// unit's exit (systemd, µs) or the first canary 5xx (nginx's
	// $time_iso8601: whole seconds, so up to 1 s early). Empty when unknown
	// (a failed health check before any traffic, a slow canary, a lost host).
	FirstBad string `json:"firstBad,omitempty"`
	// What names the first bad sign ("first canary 5xx", "canary unit exited on shop-1").
	What string `json:"what,omitempty"`
	// Detected is when the deployer saw the failure; RollbackStarted and
	// RollbackEnded bracket the rollback (this machine's clock).
	Detected        string `json:"detected"`
	RollbackStarted string `json:"rollbackStarted"`
	RollbackEnded   string `json:"rollbackEnded"`
	// FirstBadToRollbackStart and FirstBadToRollbackEnd compare a host clock
	// with this machine's: they are as exact as the clocks agree (NTP).
	FirstBadToRollbackStart string `json:"firstBadToRollbackStart,omitempty"`
	FirstBadToRollbackEnd   string `json:"firstBadToRollbackEnd,omitempty"`
	// DetectedToRollbackEnd is from the detection until every host was back.
	DetectedToRollbackEnd string `json:"detectedToRollbackEnd"`
}

const stamp = "2006-01-02T15:04:05.000Z07:00"

// detection builds the report for err, seen at seen (when the runner
// returned it), rolled back from start to end.
func detection(err error, seen, start, end time.Time) *Detection {
	d := &Detection{Detected: seen.UTC().Format(stamp), RollbackStarted: start.UTC().Format(stamp), RollbackEnded: end.UTC().Format(stamp)}
	if ce := run.FirstCanaryError(err); ce != nil {
		if !ce.Detected.IsZero() {
			seen = ce.Detected
			d.Detected = seen.UTC().Format(stamp)
		}
		if !ce.FirstBad.IsZero() {
			d.FirstBad, d.What = ce.FirstBad.UTC().Format(stamp), ce.FirstBadWhat
			d.FirstBadToRollbackStart = dur(start.Sub(ce.FirstBad))
			d.FirstBadToRollbackEnd = dur(end.Sub(ce.FirstBad))
		}
	}
	d.DetectedToRollbackEnd = dur(end.Sub(seen))
	return d
}

func dur(d time.Duration) string { return d.Round(time.Millisecond).String() }

// Summary is the detection for one line of text: "; first canary 5xx at
// 03:00:07.000Z, rollback started 1.2s and ended 1.4s after it" ("" if nil).
func (d *Detection) Summary() string {
	if d == nil {
		return ""
	}
	if d.FirstBad == "" {
		return "; every host back " + d.DetectedToRollbackEnd + " after the failure was seen"
	}
	return "; " + d.What + " at " + d.FirstBad + ": rollback started " + d.FirstBadToRollbackStart + " and ended " + d.FirstBadToRollbackEnd + " after it"
}
