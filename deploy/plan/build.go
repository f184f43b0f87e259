package plan

// The builder: the steps of a deploy plan, stage after stage, as commands.

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/belay-sh/belay/deploy/traffic"
	"github.com/belay-sh/belay/hostrelease"
	"github.com/belay-sh/belay/internal/shq"
	"github.com/belay-sh/belay/inventory"
)

type builder struct {
	in    Input
	st    Strategy
	app   *inventory.App
	l     hostrelease.Layout
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
