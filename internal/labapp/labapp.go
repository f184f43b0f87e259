// Package labapp is the behaviour of the lab app (deploy/testdata/labapp): the
// release the lab tests and the bench ship. It is an ordinary HTTP app that can
// be told to misbehave the ways real apps do — answer 503 to a share of
// requests, be slow, crash after passing its health check, crash-loop — so the
// tests can prove belay loses no request of its own around such apps.
//
// The command sets Config from -ldflags "-X main.name=value" strings (a release
// is one executable, it takes no flags); Parse checks them and names the bad
// one. This package is importable so the behaviours are unit-tested by `go test
// ./...` (Go skips testdata directories).
//
// Every answer from the app carries HeaderRelease, HeaderSlot and, when nginx
// sent it, HeaderPool echoed back, so a client through the VIP can tell which
// pool and release answered — and that the app answered at all (nginx's own
// error pages carry none of them). A failure the app gives on purpose carries
// HeaderDeliberate: a load generator tells the app's own errors from the
// ones belay would cause.
package labapp

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Response headers of every app answer; see the package doc.
const (
	HeaderRelease = "X-Belay-Release"
	HeaderSlot    = "X-Belay-Slot"
	// HeaderPool is the request header nginx sets ($belay_pool), echoed back.
	HeaderPool = "X-Belay-Pool"
	// HeaderCell is the request header the cell router sets (the cell it
	// routed to), echoed back like HeaderPool.
	HeaderCell = "X-Belay-Cell"
	// HeaderDeliberate marks an error answered on purpose; the value says which switch.
	HeaderDeliberate = "X-Deliberate-Failure"
)

// HealthPath is the health endpoint the lab stack's app is configured with.
const HealthPath = "/up"

// Switches are the raw -ldflags strings of the command, one field per
// `-X main.<name>=` switch (the name in the field's comment). The zero value is
// the ordinary app: healthy, fast, no faults, and it exits at once on SIGTERM
// (no drain), as an app that never thought about signals does.
type Switches struct {
	Health       string // health: "" or "ok"; "fail" (health check always 500); "fail-stable" (500 only in the stable slot)
	CanaryErrors string // canaryErrors: "yes": 500 on every app request in the canary slot
	// ErrorsSpare is canaryErrorsSpare: a shop (the ?shop= value) spared by
	// canaryErrors, so a canary passes its whitelist stage on that shop and
	// fails the first % stage.
	ErrorsSpare string
	StartDelay  string // startDelay: listen only after this duration (a slow start that holds the lease)
	Drain       string // drain: on SIGTERM, stop accepting and finish in-flight requests for up to this duration; "" exits at once
	ErrorsOneIn string // errorsOneIn: N answers 503 to every Nth app request (per-process counter; 25 = 4 %)
	SlowRoot    string // slowRoot: delay every app request by this duration (a slow release)
	CrashAfter  string // crashAfter: exit with status 2 this long after the first passed health check
	CrashLoop   string // crashLoop: "yes" exits with status 1 at once at start, before listening
	// FaultSlot is faultSlot: "stable" or "canary" limits errorsOneIn, slowRoot,
	// crashAfter and crashLoop to that slot; "" applies them in both.
	FaultSlot string
}

// Config is the checked form of Switches for one process.
type Config struct {
	Release, Slot, BuildID string
	// HealthFails: /up answers 500 (the health switch, for this slot).
	HealthFails bool
	// CanaryErrors: every app request answers 500 except those naming ErrorsSpare.
	CanaryErrors bool
	ErrorsSpare  string
	StartDelay   time.Duration
	Drain        time.Duration
	ErrorsOneIn  int
	SlowRoot     time.Duration
	CrashAfter   time.Duration
	CrashLoop    bool
}

// Parse checks the switches for a process in slot (BELAY_SLOT) running release
// (BELAY_RELEASE); an error names the switch and what was expected.
func Parse(sw Switches, release, slot, buildID string) (Config, error) {
	c := Config{Release: release, Slot: slot, BuildID: buildID}
	switch sw.Health {
	case "", "ok":
	case "fail":
		c.HealthFails = true
	case "fail-stable":
		c.HealthFails = slot == "stable"
	default:
		return c, fmt.Errorf("-X main.health=%q: expected ok, fail or fail-stable", sw.Health)
	}
	switch sw.CanaryErrors {
	case "", "no":
	case "yes":
		c.CanaryErrors = slot == "canary"
	default:
		return c, fmt.Errorf("-X main.canaryErrors=%q: expected yes or nothing", sw.CanaryErrors)
	}
	if sw.ErrorsSpare != "" && sw.CanaryErrors != "yes" {
		return c, fmt.Errorf("-X main.canaryErrorsSpare=%q: only meaningful with -X main.canaryErrors=yes", sw.ErrorsSpare)
	}
	c.ErrorsSpare = sw.ErrorsSpare
	switch sw.FaultSlot {
	case "", "stable", "canary":
	default:
		return c, fmt.Errorf("-X main.faultSlot=%q: expected stable, canary or nothing (both slots)", sw.FaultSlot)
	}
	faults := sw.FaultSlot == "" || sw.FaultSlot == slot
	durations := []struct {
		name, v string
		to      *time.Duration
		fault   bool
	}{
		{"startDelay", sw.StartDelay, &c.StartDelay, false},
		{"drain", sw.Drain, &c.Drain, false},
		{"slowRoot", sw.SlowRoot, &c.SlowRoot, true},
		{"crashAfter", sw.CrashAfter, &c.CrashAfter, true},
	}
	for _, d := range durations {
		if d.v == "" {
			continue
		}
		v, perr := time.ParseDuration(d.v)
		if perr != nil || v < 0 {
			return c, fmt.Errorf("-X main.%s=%q: expected a duration such as 300ms or 8s", d.name, d.v)
		}
		if !d.fault || faults {
			*d.to = v
		}
	}
	if sw.ErrorsOneIn != "" {
		n, perr := strconv.Atoi(sw.ErrorsOneIn)
		if perr != nil || n < 2 {
			return c, fmt.Errorf("-X main.errorsOneIn=%q: expected a whole number of at least 2 (25 = 4 %%)", sw.ErrorsOneIn)
		}
		if faults {
			c.ErrorsOneIn = n
		}
	}
	switch strings.ToLower(sw.CrashLoop) {
	case "", "no":
	case "yes":
		c.CrashLoop = faults
	default:
		return c, fmt.Errorf("-X main.crashLoop=%q: expected yes or nothing", sw.CrashLoop)
	}
	return c, nil
}
