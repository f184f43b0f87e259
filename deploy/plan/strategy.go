package plan

// Checking a Strategy and filling its defaults (normalize), and the one-line
// summary the plan prints (describe).

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/belay-sh/belay/deploy/traffic"
)

func normalize(s Strategy) (Strategy, error) {
	if s.KeepReleases == 0 {
		s.KeepReleases = 5
	}
	if s.KeepReleases < 2 {
		return s, fmt.Errorf("keep releases: %d, at least 2 (the running one and one to roll back to)", s.KeepReleases)
	}
	if s.HealthTimeout == 0 {
		s.HealthTimeout = 30 * time.Second
	}
	if s.HealthTimeout < 0 {
		return s, fmt.Errorf("health timeout: %s, expected > 0", s.HealthTimeout)
	}
	if s.HealthMaxInterval == 0 {
		s.HealthMaxInterval = time.Second
	}
	if s.HealthMaxInterval < firstHealthPoll {
		return s, fmt.Errorf("health max interval: %s, expected at least %s", s.HealthMaxInterval, firstHealthPoll)
	}
	if s.DrainTimeout == 0 {
		s.DrainTimeout = DefaultDrainTimeout
	}
	if s.DrainTimeout < 0 || s.DrainTimeout > time.Hour {
		return s, fmt.Errorf("drain timeout: %s, expected 1ms-1h", s.DrainTimeout)
	}
	if s.Pause < 0 {
		return s, fmt.Errorf("pause: %s, expected >= 0", s.Pause)
	}
	if s.MaxWait == 0 {
		s.MaxWait = 3 * s.Pause
	}
	if s.MaxWait < s.Pause {
		return s, fmt.Errorf("max wait %s is shorter than the pause %s", s.MaxWait, s.Pause)
	}
	last := 0
	for _, p := range s.Steps {
		if p < 1 || p > 100 || p <= last {
			return s, fmt.Errorf("steps: %v, expected ascending percentages in 1-100 (e.g. 10,50)", s.Steps)
		}
		last = p
	}
	if n := len(s.Steps); n > 0 && s.Steps[n-1] == 100 {
		s.Steps = s.Steps[:n-1] // 100 % is the promotion itself
	}
	if s.Direct {
		s.Rules, s.Steps, s.Pause, s.StopAfter = traffic.Rules{}, nil, 0, ""
	} else if s.CanaryServes {
		return s, errors.New("canary serves: only for a direct plan (rollback, recovery)")
	}
	if s.StopAfter != "" {
		var stages []string
		if !s.Rules.Empty() {
			stages = append(stages, "whitelist")
		}
		for _, p := range s.Steps {
			stages = append(stages, strconv.Itoa(p)+"%")
		}
		found := false
		for _, st := range stages {
			found = found || st == s.StopAfter
		}
		if !found {
			return s, fmt.Errorf("stop after %q: not a stage of this rollout (stages: %s)", s.StopAfter, strings.Join(stages, ", "))
		}
	}
	return s, nil
}

func describe(s Strategy) string {
	if s.Direct {
		return "direct: canary on the release, all traffic to it, switch current, back to stable (no analysis)"
	}
	var stages []string
	if !s.Rules.Empty() {
		stages = append(stages, "whitelist")
	}
	for _, p := range s.Steps {
		stages = append(stages, strconv.Itoa(p)+"%")
	}
	var parts []string
	for _, st := range stages {
		parts = append(parts, st)
		if st == s.StopAfter {
			break
		}
	}
	if s.StopAfter != "" {
		parts = append(parts, "pause for approval")
	} else {
		parts = append(parts, "100%")
	}
	a := "no analysis"
	if s.Pause > 0 {
		a = "analysis " + s.Pause.String() + " per stage"
	}
	return strings.Join(parts, " -> ") + " (" + a + ")"
}
