// Package plan turns (inventory, app, release, strategy) into a deploy plan:
// ordered steps, each a remote shell command (or a local analysis pause) for a
// set of hosts, as plain data. It is a pure function — no SSH, no clock — so
// `belay deploy --dry-run` prints exactly what would run and tests pin it with
// golden files. deploy/run executes plans.
package plan

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/belay-sh/belay/deploy/traffic"
	"github.com/belay-sh/belay/hostrelease"
	"github.com/belay-sh/belay/inventory"
)

// Stage groups steps for progress output and the journal.
type Stage string

// The stages of a rollout, in order.
const (
	Upload  Stage = "upload"
	Unpack  Stage = "unpack"
	Verify  Stage = "verify"
	Release Stage = "release"
	Canary  Stage = "canary"
	Health  Stage = "health"
	Route   Stage = "route"
	Analyze Stage = "analyze"
	Promote Stage = "promote"
	Stop    Stage = "stop"
	Cleanup Stage = "cleanup"
)

// Duration is a time.Duration that prints as "2m0s" in JSON.
type Duration time.Duration

// MarshalJSON renders the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// Step is one thing done on a set of hosts, in parallel.
type Step struct {
	ID    string   `json:"id"`
	Stage Stage    `json:"stage"`
	Title string   `json:"title"`
	Hosts []string `json:"hosts"`
	// Command is a POSIX shell script run on every host of the step.
	Command string `json:"command,omitempty"`
	// Skip, if set, runs first: exit 0 means the step is already done on that host.
	Skip string `json:"skip,omitempty"`
	// Stdin "artifact" streams the release artifact into Command, "env" the
	// app's env (never part of the plan: it holds secrets).
	Stdin string `json:"stdin,omitempty"`
	// Stream sends the command's output to the progress log, prefixed by host.
	Stream  bool     `json:"stream,omitempty"`
	Timeout Duration `json:"timeout"`
	// Analyze, for Analyze steps, is the local pause-and-judge the runner performs.
	Analyze *AnalyzeSpec `json:"analyze,omitempty"`
	// Traffic is the canary's share once this step is done ("0%", "whitelist", "10%", "100%").
	Traffic string `json:"traffic,omitempty"`
	// Switches marks the step that points `current` at the target release: once it
	// ran on a host, undoing it needs a swap, not just a traffic change.
	Switches bool `json:"switches,omitempty"`
	// Pipeline groups consecutive steps that each host runs back to back without
	// waiting for the other hosts (none of them changes what another host's
	// nginx sends traffic to); all hosts finish the group before the next step.
	Pipeline string `json:"pipeline,omitempty"`
}

// AnalyzeSpec is a canary judgement: every Tick, probe each host (the access
// log written since the stage began, read on from the last probe's offset, and
// the canary unit's state) and judge canary against stable; roll back as soon
// as the verdict fails or a canary unit crashed, pass once the whole Pause was
// observed, wait on for enough canary requests up to MaxWait.
type AnalyzeSpec struct {
	Stage   string   `json:"stage"`
	Pause   Duration `json:"pause"`
	MaxWait Duration `json:"maxWait"`
	Tick    Duration `json:"tick"`
	// ProbeCommand takes $1 (log offset, -1: start the window now) and $2 (the
	// canary unit's restart count at the stage's start, -1: take it now); see
	// ProbeArgs and ParseProbe.
	ProbeCommand string `json:"probeCommand"`
	// Unit is the canary unit the probe watches.
	Unit string `json:"unit"`
}

// Plan is a whole rollout.
type Plan struct {
	App     string   `json:"app"`
	Release string   `json:"release"`
	Kind    string   `json:"kind"`
	Hosts   []string `json:"hosts"`
	// Standby is the standby site's app server: it receives the release and
	// follows `current` (restarted only if its unit runs, i.e. after a site switch).
	Standby  string `json:"standby,omitempty"`
	Strategy string `json:"strategy"`
	Steps    []Step `json:"steps"`
	// PausedAfter names the stage the plan stops after (Strategy.StopAfter); the
	// canary keeps its traffic until a later deploy of the same release resumes.
	PausedAfter string `json:"pausedAfter,omitempty"`
}

// Strategy is how traffic moves to the new release.
type Strategy struct {
	// Rules select the whitelist canary's requests; empty skips the whitelist stage.
	Rules traffic.Rules
	Keys  traffic.Keys
	// Steps are the canary percentages after the whitelist (ascending, 1-99).
	Steps  []int
	Sticky traffic.Sticky
	// Pause is how long each traffic stage is observed before the verdict; 0 skips analysis.
	Pause time.Duration
	// MaxWait bounds waiting for enough canary requests (default 3 x Pause).
	MaxWait time.Duration
	// Direct moves straight to the release with no canary stages (rollback, recovery).
	Direct bool
	// CanaryServes (Direct only) says every app host's nginx already sends all
	// traffic to the canary pool (a rollout stopped after route-full): the
	// canary must not be restarted under that traffic, so the plan starts at
	// switch-current, and the serving canary carries the stable restart.
	CanaryServes bool
	// StopAfter ends the plan after this stage ("whitelist" or "10%"): a manual
	// approval point. A later deploy of the same release continues from there.
	StopAfter string
	// KeepReleases is how many releases stay on disk (default 5, at least 2).
	KeepReleases int
	// Protect are releases cleanup never deletes (previous, known-good).
	Protect []string
	// HealthTimeout bounds the health check (default 30 s). It polls from 50 ms
	// apart, doubling up to HealthMaxInterval (default 1 s): an app that listens
	// 80 ms after its restart is seen at once, not a whole interval later.
	HealthTimeout     time.Duration
	HealthMaxInterval time.Duration
	// DrainTimeout bounds the wait, after a route change that takes all
	// traffic off one side, for nginx's requests in flight to that side to
	// finish before the side is stopped or restarted (default 30 s).
	DrainTimeout time.Duration
}

// Input is everything a plan depends on.
type Input struct {
	Inventory *inventory.Inventory
	App       string
	Release   string
	// Artifact is the verified artifact to ship; nil means the release must
	// already be on every host (rollback, recovery).
	Artifact *hostrelease.Artifact
	Strategy Strategy
	// SkipStandby leaves the standby site's app server out (it is unreachable,
	// say); it then keeps its old release until the next deploy reaches it.
	SkipStandby bool
	// Base overrides /srv (tests).
	Base string
	// Env writes the app's env (streamed by the runner) into the new release
	// before anything starts from it.
	Env bool
	// CopyFrom, instead of an artifact, makes the release a copy of this one
	// already on every host (env-only deploys).
	CopyFrom string
	// ReleaseCommand (words, see ParseReleaseCommand) runs once on the first
	// app host before the canary; ReleaseTimeout bounds it (default 10 min).
	ReleaseCommand []string
	ReleaseTimeout time.Duration
}

// Errors for bad input name the field.
var errNoApp = errors.New("app: not given")

// Deploy builds the plan that takes the app's hosts to in.Release.
func Deploy(in Input) (*Plan, error) {
	if in.Inventory == nil {
		return nil, errors.New("plan: no inventory")
	}
	if in.App == "" {
		return nil, errNoApp
	}
	app := in.Inventory.App(in.App)
	if app == nil {
		var names []string
		for _, a := range in.Inventory.Apps {
			names = append(names, a.Name)
		}
		return nil, fmt.Errorf("app %q: not in the inventory (apps: %s)", in.App, strings.Join(names, ", "))
	}
	if len(app.Hosts) == 0 {
		return nil, fmt.Errorf("app %s: the inventory lists no hosts", in.App)
	}
	if err := hostrelease.ValidateID(in.Release); err != nil {
		return nil, err
	}
	st, err := normalize(in.Strategy)
	if err != nil {
		return nil, err
	}
	if err := checkPrepare(in, st); err != nil {
		return nil, err
	}
	b := &builder{in: in, st: st, app: app, l: hostrelease.Layout{App: in.App, Base: in.Base}, hosts: append([]string(nil), app.Hosts...)}
	if app.Standby != "" && !in.SkipStandby {
		b.standby = app.Standby
	}
	p := &Plan{App: in.App, Release: in.Release, Kind: "deploy", Hosts: b.hosts, Standby: b.standby, Strategy: describe(st)}
	if st.Direct {
		p.Kind = "direct"
	}
	if err := b.build(p); err != nil {
		return nil, err
	}
	return p, nil
}

// Abort builds the plan that undoes a rollout that never switched `current`:
// all traffic to stable, canary stopped. It needs no release on disk.
func Abort(inv *inventory.Inventory, appName, base string) (*Plan, error) {
	return AbortDrain(inv, appName, base, 0)
}

// AbortDrain is Abort with the drain timeout of its route step (0: the default).
func AbortDrain(inv *inventory.Inventory, appName, base string, drain time.Duration) (*Plan, error) {
	if drain == 0 {
		drain = DefaultDrainTimeout
	}
	if drain < 0 {
		return nil, fmt.Errorf("drain timeout: %s, expected > 0", drain)
	}
	app := inv.App(appName)
	if app == nil {
		return nil, fmt.Errorf("app %q: not in the inventory", appName)
	}
	b := &builder{in: Input{Inventory: inv, App: appName, Base: base}, app: app, l: hostrelease.Layout{App: appName, Base: base}, hosts: append([]string(nil), app.Hosts...)}
	p := &Plan{App: appName, Kind: "abort", Hosts: b.hosts, Strategy: "all traffic to stable, stop canary"}
	b.st.DrainTimeout = drain
	if err := b.route(p, "stable", traffic.Stage{Kind: traffic.Stable}, "0%", true); err != nil {
		return nil, err
	}
	b.stopCanary(p, "")
	number(p)
	return p, nil
}
