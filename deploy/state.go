package deploy

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/belay-sh/belay/deploy/lease"
	"github.com/belay-sh/belay/deploy/plan"
	"github.com/belay-sh/belay/deploy/sshx"
	"github.com/belay-sh/belay/deploy/traffic"
	"github.com/belay-sh/belay/hostrelease/journal"
	"github.com/belay-sh/belay/internal/shq"
)

// HostState is what one app host runs, as `belay status` shows it.
type HostState struct {
	Host string `json:"host"`
	// Standby marks the standby site's app server (not part of traffic decisions).
	Standby bool   `json:"standby,omitempty"`
	Current string `json:"current"`
	Canary  string `json:"canary,omitempty"`
	// Stable and CanaryUnit are the systemd states (active, inactive, failed).
	Stable     string `json:"stableUnit"`
	CanaryUnit string `json:"canaryUnit"`
	// Stage is the routing stage nginx runs (stable, whitelist, percent N, full).
	Stage string `json:"stage"`
	// Maintenance is "on (retry after …, since …, by …)" while the host's nginx
	// answers the app with 503 (`belay maintenance`), else empty.
	Maintenance string `json:"maintenance,omitempty"`
	// CanaryShare is the canary's traffic share as text ("0%", "whitelist", "10%", "100%").
	CanaryShare string `json:"canaryShare"`
	// Health is the HTTP status of the stable instance's health path (000: no answer).
	Health       string `json:"health"`
	CanaryHealth string `json:"canaryHealth,omitempty"`
	// Releases on disk, newest first.
	Releases []string        `json:"releases"`
	Journal  *journal.Record `json:"journal,omitempty"`
	// Lease is the app's lease as the lease host (the first app host) has it.
	Lease *LeaseState `json:"lease,omitempty"`
	// Rollout tells a journal left "running" apart: "running" while some run
	// holds a live lease on the app, "died" when none does (the next deploy or
	// rollback converges it); "paused" for a --stop-after rollout.
	Rollout string `json:"rollout,omitempty"`
	Error   string `json:"error,omitempty"`
	hostNow int64
}

// LeaseState is a lease file as status shows it.
type LeaseState struct {
	Who     string    `json:"who"`
	Host    string    `json:"host,omitempty"`
	PID     int       `json:"pid,omitempty"`
	CI      string    `json:"ci,omitempty"`
	Action  string    `json:"action"`
	Since   time.Time `json:"since"`
	Expires time.Time `json:"expires"`
	// Live: unexpired by the lease host's clock.
	Live bool `json:"live"`
}

func (l *LeaseState) String() string {
	state := "expired"
	if l.Live {
		state = "held"
	}
	ci := ""
	if l.CI != "" {
		ci = ", CI " + l.CI
	}
	return fmt.Sprintf("%s by %s (pid %d on %s%s): %s, since %s, expires %s", state, l.Who, l.PID, l.Host, ci, l.Action,
		l.Since.UTC().Format(time.RFC3339), l.Expires.UTC().Format(time.RFC3339))
}

func (d *Deployer) probeCommand() (string, error) {
	app, err := d.app()
	if err != nil {
		return "", err
	}
	l := d.Layout()
	h := func(port int) string {
		return "$(curl -s -o /dev/null -m 3 -w '%{http_code}' " + shq.Quote("http://127.0.0.1:"+strconv.Itoa(port)+app.HealthPath) + " 2>/dev/null || true)"
	}
	// The links and the journal as belay replace reads them, then the rest.
	probe := []string{
		"echo \"stable=$(systemctl is-active " + shq.Quote("belay-app@"+d.App+".service") + " 2>/dev/null || true)\"",
		"cu=$(systemctl is-active " + shq.Quote("belay-canary@"+d.App+".service") + " 2>/dev/null || true)",
		"echo \"canaryUnit=$cu\"",
		"echo \"stage=$(sed -n 's/^# Managed by belay deploy.*stage \\(.*\\)\\.$/\\1/p' " + shq.Quote(traffic.RoutingPath(d.App)) + " 2>/dev/null | head -n 1)\"",
		"echo \"maintenance=$(grep -m 1 '^# maintenance on' " + shq.Quote(traffic.RoutingPath(d.App)) + " 2>/dev/null)\"",
		"echo \"health=" + h(app.Port) + "\"",
		"if [ \"$cu\" = active ]; then echo \"canaryHealth=" + h(app.Port+1) + "\"; fi",
		"echo \"releases=$(ls -1t " + shq.Quote(l.Releases()) + " 2>/dev/null | tr '\\n' ' ')\"",
		"echo \"lease=$(tr '\\n' ' ' < " + shq.Quote(lease.Path(l)) + " 2>/dev/null)\"",
		"echo \"hostNow=$(date +%s)\"",
	}
	return strings.Join(append(journal.ActiveLines(l), probe...), "\n"), nil
}

// probe reads every app host's state; an unreachable host is an error (a
// deploy must not decide with a host missing).
func (d *Deployer) probe(ctx context.Context) (map[string]*HostState, error) {
	states, err := d.States(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]*HostState{}
	var errs []string
	for _, s := range states {
		if s.Standby {
			continue // its release follows the group's; it never decides one
		}
		if s.Error != "" {
			errs = append(errs, s.Error)
		}
		out[s.Host] = s
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("reading host state: %s", strings.Join(errs, "; "))
	}
	return out, nil
}

// States reads every app host's state; per-host failures land in HostState.Error.
func (d *Deployer) States(ctx context.Context) ([]*HostState, error) {
	app, err := d.app()
	if err != nil {
		return nil, err
	}
	cmd, err := d.probeCommand()
	if err != nil {
		return nil, err
	}
	hosts := d.servers(app)
	states := make([]*HostState, len(hosts))
	idx := map[string]int{}
	for i, h := range hosts {
		idx[h] = i
		states[i] = &HostState{Host: h, Standby: h == app.Standby}
	}
	sshx.Parallel(ctx, hosts, d.Runner.Parallel, func(ctx context.Context, h string) error {
		s := states[idx[h]]
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		c, err := d.Pool.Get(ctx, h)
		if err != nil {
			s.Error = err.Error()
			return nil
		}
		res, err := c.Run(ctx, cmd, nil)
		if err != nil {
			s.Error = err.Error()
			return nil
		}
		if err := parseState(res.Stdout, s); err != nil {
			s.Error = fmt.Sprintf("host %s: %v", h, err)
		}
		return nil
	})
	classify(states)
	return states, nil
}

// classify sets each host's Rollout: a journal "running" is a run under way
// while the app's lease is live, else one that died unfinished.
func classify(states []*HostState) {
	live := false
	for _, s := range states {
		if s.Lease != nil && s.Lease.Live {
			live = true
		}
	}
	for _, s := range states {
		switch {
		case s.Journal == nil:
		case s.Journal.Status == journal.Paused:
			s.Rollout = "paused"
		case s.Journal.Unfinished() && live:
			s.Rollout = "running"
		case s.Journal.Unfinished():
			s.Rollout = "died"
		}
	}
}

func parseState(b []byte, s *HostState) error {
	// The links and the journal: read as belay replace reads them.
	a, err := journal.ParseActive(string(b))
	if err != nil {
		return err
	}
	s.Current, s.Canary, s.Journal = a.Current, a.Canary, a.Journal
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "stable":
			s.Stable = v
		case "canaryUnit":
			s.CanaryUnit = v
		case "stage":
			s.Stage = v
		case "maintenance":
			s.Maintenance = traffic.ParseMaintenanceLine(v)
		case "health":
			s.Health = v
		case "canaryHealth":
			s.CanaryHealth = v
		case "releases":
			s.Releases = strings.Fields(v)
		case "lease":
			if v != "" {
				h, err := lease.Parse([]byte(strings.Replace(v, " ", "\n", 2)))
				if err != nil {
					// Acquire treats such a file as free; say so rather than fail the host.
					s.Lease = &LeaseState{Action: "unreadable lease file (" + err.Error() + "), treated as free"}
					continue
				}
				o := h.Owner
				s.Lease = &LeaseState{Who: o.Who, Host: o.Host, PID: o.PID, CI: o.CI, Action: o.Action, Since: o.Since, Expires: h.Expires}
			}
		case "hostNow":
			s.hostNow, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	s.CanaryShare = share(s.Stage)
	if s.Lease != nil {
		s.Lease.Live = s.hostNow > 0 && s.Lease.Expires.Unix() > s.hostNow
	}
	return sc.Err()
}

// share turns the routing stage into the canary's traffic share.
func share(stage string) string {
	switch {
	case stage == "", stage == string(traffic.Stable):
		return "0%"
	case stage == string(traffic.Full):
		return "100%"
	case stage == string(traffic.Whitelist):
		return "whitelist"
	case strings.HasPrefix(stage, "percent "):
		f := strings.Fields(stage)
		return f[1] + "%"
	}
	return stage
}

// Audit reads the last n audit entries from the first app host that answers.
func (d *Deployer) Audit(ctx context.Context, n int) ([]journal.Entry, string, error) {
	app, err := d.app()
	if err != nil {
		return nil, "", err
	}
	var errs []string
	for _, h := range app.Hosts {
		c, err := d.Pool.Get(ctx, h)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		res, err := c.Run(ctx, journal.ReadAuditCommand(d.Layout(), n), nil)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		es, err := journal.ParseAudit(res.Stdout)
		return es, h, err
	}
	return nil, "", fmt.Errorf("no app host answered: %s", strings.Join(errs, "; "))
}

// AccessLog is the app's nginx access log path (for docs and messages).
func AccessLog(app string) string { return plan.AccessLog(app) }
