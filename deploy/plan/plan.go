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
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/belay-sh/belay/deploy/release"
	"github.com/belay-sh/belay/deploy/traffic"
	"github.com/belay-sh/belay/internal/shq"
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
	Artifact *release.Artifact
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
	if err := release.ValidateID(in.Release); err != nil {
		return nil, err
	}
	st, err := normalize(in.Strategy)
	if err != nil {
		return nil, err
	}
	if err := checkPrepare(in, st); err != nil {
		return nil, err
	}
	b := &builder{in: in, st: st, app: app, l: release.Layout{App: in.App, Base: in.Base}, hosts: append([]string(nil), app.Hosts...)}
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
	b := &builder{in: Input{Inventory: inv, App: appName, Base: base}, app: app, l: release.Layout{App: appName, Base: base}, hosts: append([]string(nil), app.Hosts...)}
	p := &Plan{App: appName, Kind: "abort", Hosts: b.hosts, Strategy: "all traffic to stable, stop canary"}
	b.st.DrainTimeout = drain
	if err := b.route(p, "stable", traffic.Stage{Kind: traffic.Stable}, "0%", true); err != nil {
		return nil, err
	}
	b.stopCanary(p, "")
	number(p)
	return p, nil
}

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

type builder struct {
	in    Input
	st    Strategy
	app   *inventory.App
	l     release.Layout
	hosts []string
	// standby is the standby site's app server ("" if none or skipped).
	standby string
}

// withStandby is the app hosts plus the standby server: the steps every server
// of the app needs (receiving and keeping releases).
func (b *builder) withStandby() []string {
	if b.standby == "" {
		return b.hosts
	}
	return append(append([]string(nil), b.hosts...), b.standby)
}

func (b *builder) step(p *Plan, s Step) {
	if s.Hosts == nil {
		s.Hosts = b.hosts
	}
	p.Steps = append(p.Steps, s)
}

func (b *builder) build(p *Plan) error {
	id, l := b.in.Release, b.l
	if a := b.in.Artifact; a != nil {
		b.step(p, Step{ID: "upload", Stage: Upload, Hosts: b.withStandby(), Pipeline: "prepare", Title: fmt.Sprintf("upload %s (%s, %s, sha256 %s)", id, a.Kind, size(a.Size), a.SHA256[:12]),
			Command: l.ReceiveCommand(id, a.SHA256), Skip: l.Unpacked(id, a.SHA256), Stdin: "artifact", Timeout: Duration(15 * time.Minute)})
		b.step(p, Step{ID: "unpack", Stage: Unpack, Title: "unpack " + id, Hosts: b.withStandby(), Pipeline: "prepare",
			Command: l.UnpackCommand(id, a), Skip: l.Unpacked(id, a.SHA256), Timeout: Duration(5 * time.Minute)})
	} else if b.in.CopyFrom != "" {
		b.copyStep(p)
	} else {
		b.step(p, Step{ID: "verify", Stage: Verify, Title: "check " + id + " is on disk", Hosts: b.withStandby(), Pipeline: "prepare",
			Command: "test -x " + shq.Quote(l.Release(id)+"/start") + " || { echo " + shq.Quote("release "+id+" is not on this host ("+l.Release(id)+"/start missing); deploy it with --artifact") + " >&2; exit 1; }",
			Timeout: Duration(30 * time.Second)})
	}
	if b.in.Env {
		b.envStep(p)
	}
	if len(b.in.ReleaseCommand) > 0 {
		b.hookSteps(p)
	}
	if b.st.CanaryServes {
		return b.promote(p)
	}
	b.step(p, Step{ID: "canary-start", Stage: Canary, Title: "start canary " + id, Pipeline: "prepare",
		// Already running this release (resuming a paused rollout): leave it serving.
		Skip:    "test \"$(readlink " + shq.Quote(l.Canary()) + ")\" = " + shq.Quote(l.Releases()+"/"+id) + " && systemctl is-active --quiet " + shq.Quote(canaryUnit(b.in.App)),
		Command: linkCommand(l.Releases()+"/"+id, l.Canary()) + "\n" + restart(canaryUnit(b.in.App)),
		Timeout: Duration(2 * time.Minute)})
	b.step(p, Step{ID: "canary-health", Stage: Health, Title: fmt.Sprintf("health canary %s :%d%s", id, b.app.Port+1, b.app.HealthPath), Pipeline: "prepare",
		Command: b.healthCommand(b.app.Port+1, canaryUnit(b.in.App)), Timeout: b.healthTimeout()})
	if !b.st.Rules.Empty() {
		if err := b.route(p, "whitelist", traffic.Stage{Kind: traffic.Whitelist, Rules: b.st.Rules}, "whitelist", false); err != nil {
			return err
		}
		b.analyze(p, "whitelist")
		if b.st.StopAfter == "whitelist" {
			p.PausedAfter = "whitelist"
			number(p)
			return nil
		}
	}
	for _, pct := range b.st.Steps {
		name := strconv.Itoa(pct)
		if err := b.route(p, name+"%", traffic.Stage{Kind: traffic.Percent, Percent: pct, Rules: b.st.Rules, Sticky: b.st.Sticky}, name+"%", false); err != nil {
			return err
		}
		b.analyze(p, name+"%")
		if b.st.StopAfter == name+"%" {
			p.PausedAfter = name + "%"
			number(p)
			return nil
		}
	}
	// Promotion without a gap: the canary (already healthy) takes all traffic
	// while the stable unit restarts on the new release, then stable takes it back.
	// The stable side restarts next: drain it (on every host: each nginx sends
	// to every member) before the barrier lets any host restart it.
	if err := b.route(p, "full", traffic.Stage{Kind: traffic.Full}, "100%", true); err != nil {
		return err
	}
	return b.promote(p)
}

// promote switches `current`, restarts stable under the canary's traffic,
// hands traffic back to stable (drained), stops the canary and cleans up.
func (b *builder) promote(p *Plan) error {
	id, l := b.in.Release, b.l
	b.step(p, Step{ID: "switch-current", Stage: Promote, Title: "current -> " + id, Switches: true, Pipeline: "promote",
		Command: linkCommand(l.Releases()+"/"+id, l.Current()), Timeout: Duration(30 * time.Second)})
	b.step(p, Step{ID: "restart-stable", Stage: Promote, Title: "restart stable on " + id, Pipeline: "promote",
		Command: restart(appUnit(b.in.App)), Timeout: Duration(3 * time.Minute)})
	b.step(p, Step{ID: "stable-health", Stage: Health, Title: fmt.Sprintf("health stable %s :%d%s", id, b.app.Port, b.app.HealthPath), Pipeline: "promote",
		Command: b.healthCommand(b.app.Port, appUnit(b.in.App)), Timeout: b.healthTimeout()})
	if err := b.route(p, "stable", traffic.Stage{Kind: traffic.Stable}, "0% (stable = "+id+")", true); err != nil {
		return err
	}
	b.stopCanary(p, "finish")
	if b.standby != "" {
		// The standby site follows: its `current` moves too, and only a standby
		// that serves (after a site switch) is restarted and health-checked.
		b.step(p, Step{ID: "standby-current", Stage: Promote, Title: "standby current -> " + id, Hosts: []string{b.standby}, Pipeline: "finish",
			Command: linkCommand(l.Releases()+"/"+id, l.Current()) + "\nif systemctl is-active --quiet " + shq.Quote(appUnit(b.in.App)) + "; then\n" +
				restart(appUnit(b.in.App)) + "\n" + b.healthCommand(b.app.Port, appUnit(b.in.App)) + "\nfi",
			Timeout: Duration(3*time.Minute) + b.healthTimeout()})
	}
	if b.in.Artifact != nil || b.in.CopyFrom != "" {
		b.step(p, Step{ID: "cleanup", Stage: Cleanup, Title: fmt.Sprintf("keep %d releases", b.st.KeepReleases), Hosts: b.withStandby(), Pipeline: "finish",
			Command: b.cleanupCommand(), Timeout: Duration(2 * time.Minute)})
	}
	number(p)
	return nil
}

func number(p *Plan) {
	for i := range p.Steps {
		p.Steps[i].ID = fmt.Sprintf("%02d-%s", i+1, p.Steps[i].ID)
	}
}

func size(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func appUnit(app string) string    { return "belay-app@" + app + ".service" }
func canaryUnit(app string) string { return "belay-canary@" + app + ".service" }

// systemctl uses exactly the sudo rules of the host layout contract.
func systemctl(verb, unit string) string { return "sudo -n " + shq.Join("systemctl", verb, unit) }

// linkCommand points link at target atomically: a temp link renamed over the old one.
func linkCommand(target, link string) string {
	return "ln -sfn " + shq.Join(target, link+".tmp") + " && mv -T " + shq.Join(link+".tmp", link)
}

// route hands the stage to every host's root helper (`belay host route`),
// which validates it, renders nginx's files, checks, reloads and confirms
// nginx took them. With drain the step also waits (DrainTimeout at most) until
// nginx's old workers finished their requests in flight: the side that lost
// its traffic may be stopped or restarted only after that.
func (b *builder) route(p *Plan, name string, stage traffic.Stage, share string, drain bool) error {
	var canary []string
	if stage.Kind != traffic.Stable {
		canary = b.hosts
	}
	spec, err := traffic.SpecFor(b.in.Inventory, b.in.App, canary, b.st.Keys, stage)
	if err != nil {
		return err
	}
	if _, err := traffic.Render(spec); err != nil {
		return fmt.Errorf("routing for stage %s: %w", name, err)
	}
	req := RouteRequest{Spec: spec}
	timeout := time.Minute
	title := "route " + name
	if drain {
		req.DrainMillis = b.st.DrainTimeout.Milliseconds()
		timeout += b.st.DrainTimeout
		title += " (drain " + b.st.DrainTimeout.String() + ")"
	}
	cmd, err := routeCommand(b.in.App, req)
	if err != nil {
		return err
	}
	b.step(p, Step{ID: "route-" + strings.TrimSuffix(name, "%"), Stage: Route, Title: title, Traffic: share,
		Command: cmd, Timeout: Duration(timeout)})
	return nil
}

// DefaultDrainTimeout is how long a route change waits for requests in flight
// to the side that lost its traffic (kamal-proxy's default drain timeout too).
const DefaultDrainTimeout = 30 * time.Second

// RouteRequest is the JSON `belay host route` reads on stdin (hostroute.Request).
type RouteRequest struct {
	Spec        traffic.Spec `json:"spec"`
	DrainMillis int64        `json:"drainMillis,omitempty"`
}

// RouteHelper is the root helper the app's sudoers allows (roles).
const RouteHelper = "/usr/local/bin/belay host route"

const routeEOF = "BELAY_ROUTE_EOF"

// routeCommand sends the request as a quoted here-document: one JSON line,
// which can never be the terminator line, and nothing in it is expanded.
func routeCommand(app string, req RouteRequest) (string, error) {
	js, err := json.Marshal(req)
	if err != nil {
		return "", err
	}
	return "sudo -n " + RouteHelper + " " + shq.Quote(app) + " >/dev/null <<'" + routeEOF + "'\n" + string(js) + "\n" + routeEOF, nil
}

// AccessLog is the app's nginx access log (host layout contract).
func AccessLog(app string) string { return "/var/log/nginx/belay/" + app + ".access.log" }

func (b *builder) analyze(p *Plan, stage string) {
	if b.st.Pause <= 0 {
		return
	}
	b.step(p, Step{ID: "analyze-" + strings.TrimSuffix(stage, "%"), Stage: Analyze,
		Title:   fmt.Sprintf("analyze %s for %s", stage, b.st.Pause),
		Timeout: Duration(b.st.MaxWait + time.Minute),
		Analyze: &AnalyzeSpec{Stage: stage, Pause: Duration(b.st.Pause), MaxWait: Duration(b.st.MaxWait),
			Tick: Duration(min(AnalyzeTick, b.st.Pause)), ProbeCommand: probeCommand(AccessLog(b.in.App), canaryUnit(b.in.App)), Unit: canaryUnit(b.in.App)}})
}

func (b *builder) stopCanary(p *Plan, pipeline string) {
	b.step(p, Step{ID: "stop-canary", Stage: Stop, Title: "stop canary", Pipeline: pipeline,
		Command: systemctl("stop", canaryUnit(b.in.App)) + "\nrm -f " + shq.Quote(b.l.Canary()), Timeout: Duration(3 * time.Minute)})
}

// cleanupCommand removes the oldest releases beyond KeepReleases, never the
// ones `current` or `canary` point at, nor the protected (previous, known-good).
func (b *builder) cleanupCommand() string {
	protect := append([]string{b.in.Release}, b.st.Protect...)
	sort.Strings(protect)
	l := b.l
	return strings.Join([]string{
		"set -eu",
		"cd " + shq.Quote(l.Releases()),
		"keep=" + shq.Quote(" "+strings.Join(protect, " ")+" ") + "\"$(basename \"$(readlink " + shq.Quote(l.Current()) + ")\" 2>/dev/null) $(basename \"$(readlink " + shq.Quote(l.Canary()) + ")\" 2>/dev/null) \"",
		"n=0",
		"for r in $(ls -1t); do",
		"  case \"$r\" in .*) continue;; esac",
		"  n=$((n+1))",
		"  [ $n -le " + strconv.Itoa(b.st.KeepReleases) + " ] && continue",
		"  case \"$keep\" in *\" $r \"*) continue;; esac",
		"  rm -rf -- \"$r\" " + shq.Quote(l.State()+"/releases/") + "\"$r\".sha256",
		"  echo \"removed release $r\"",
		"done",
	}, "\n")
}
