// Package replace is `belay replace HOST` and `belay db resize`: a deliberate
// replacement (or resize) of one server at a time, after moving traffic or the
// database primary away from it. The plan is data, a pure function of the
// inventory and of what was observed on the hosts (Facts); Execute runs it
// step by step through injected runners, so tests drive it with fakes and
// `--dry-run` prints exactly what would run.
package replace

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/belay-sh/belay/hostcmd"
	"github.com/belay-sh/belay/internal/shq"
	"github.com/belay-sh/belay/inventory"
)

// Kind says how the executor runs a step.
type Kind string

// Step kinds.
const (
	// KindCheck runs Command as the deploy user once; it must pass (and print Expect if set).
	KindCheck Kind = "check"
	// KindWait repeats Command (deploy user) or Argv (root) until it passes
	// (and prints Expect, or the Want predicate holds) or Timeout.
	KindWait Kind = "wait"
	// KindRoot runs Argv as root once; it must pass (and print Expect if set).
	KindRoot Kind = "root"
	// KindFence runs Argv as root on a host that may be dead already: an
	// unreachable host is skipped with a note (the point is that it stops
	// serving, and a dead host does not serve).
	KindFence Kind = "fence"
	// KindVIP waits until exactly one of Peers holds VIP (and Host does not).
	KindVIP Kind = "vip"
	// KindHTTP GETs http://Address/ with Host: Domain until it answers below 500.
	KindHTTP Kind = "http"
	// KindReplace replaces Host's server through the Replacer.
	KindReplace Kind = "replace"
	// KindResize changes Host's server size to Size through the Resizer.
	KindResize Kind = "resize"
	// KindSetSize records the new database size in the stack config (Resizer.SetSize).
	KindSetSize Kind = "set-size"
	// KindBoot drops the cached connection and waits until Host answers SSH
	// with its pinned host key and cloud-init's final stage is done.
	KindBoot Kind = "boot"
	// KindConverge brings Host's files up to the stack config (Converger).
	KindConverge Kind = "converge"
	// KindRecord runs Command and records its trimmed output as Fact (an
	// unreachable host records nothing, with a note).
	KindRecord Kind = "record"
	// KindSame runs Command and compares its output with the recorded Fact.
	KindSame Kind = "same"
	// KindCopyRelease copies release Release of App from From (where it is
	// active) to Host and activates it there, not started (copy.go).
	KindCopyRelease Kind = "copy-release"
)

// Want is a predicate a wait step's output must satisfy, named so a plan
// stays data (and prints, and compares in tests).
type Want struct {
	// Node and States: the monitor's node-state listing shows Node with
	// reported and goal state both one of States.
	Node   string   `json:"node,omitempty"`
	States []string `json:"states,omitempty"`
}

// Step is one step of a replacement or resize.
type Step struct {
	ID    string `json:"id"`
	Title string `json:"title"`
	Kind  Kind   `json:"kind"`
	Host  string `json:"host,omitempty"`
	// Command is a deploy-user shell line; Argv a root command (run without a shell).
	Command string   `json:"command,omitempty"`
	Argv    []string `json:"argv,omitempty"`
	Expect  string   `json:"expect,omitempty"`
	Want    *Want    `json:"want,omitempty"`
	// Peers and VIP are a KindVIP step's group.
	Peers []string `json:"peers,omitempty"`
	VIP   string   `json:"vip,omitempty"`
	// Address and Domain are a KindHTTP step's target.
	Address string `json:"address,omitempty"`
	Domain  string `json:"domain,omitempty"`
	// Size is a KindResize/KindSetSize step's new size.
	Size string `json:"size,omitempty"`
	// SizeKey is where a KindSetSize step records Size: nil for the
	// stack's pair (belay:database.size), a dedicated cell's databaseSize.
	SizeKey *SizeKey `json:"sizeKey,omitempty"`
	// Fact names what a KindRecord step records and a KindSame step compares.
	Fact string `json:"fact,omitempty"`
	// From, App and Release are a KindCopyRelease step's source host, app and release.
	From    string        `json:"from,omitempty"`
	App     string        `json:"app,omitempty"`
	Release string        `json:"release,omitempty"`
	Timeout time.Duration `json:"timeoutNs,omitempty"`
	// Hint says what to do when the step fails.
	Hint string `json:"hint,omitempty"`
}

// Line is the step's command as a person would type it ("" when the step is an API call).
func (s Step) Line() string {
	switch {
	case s.Kind == KindCopyRelease:
		return copyLine(s)
	case len(s.Argv) > 0:
		return shq.Join(s.Argv...)
	case s.Command != "":
		return s.Command
	}
	return ""
}

// Plan is one replacement or resize.
type Plan struct {
	Stack  string `json:"stack"`
	Action string `json:"action"` // "replace" or "resize"
	// Host is the replaced host (replace); Size the new size (resize).
	Host  string   `json:"host,omitempty"`
	Size  string   `json:"size,omitempty"`
	Role  string   `json:"role"`
	Apps  []string `json:"apps,omitempty"`
	Steps []Step   `json:"steps"`
	// Notes say what the plan does not do, or what the operator should know.
	Notes []string `json:"notes,omitempty"`
}

// Print writes the plan for people: one numbered line per step with its command.
func (p *Plan) Print(w io.Writer) error {
	var b strings.Builder
	what := "Replacement of " + p.Host
	if p.Action == ActionResize {
		what = "Rolling resize of the database nodes to " + p.Size
	}
	fmt.Fprintf(&b, "%s (stack %s, %s, %d steps)\n", what, p.Stack, p.Role, len(p.Steps))
	for i, s := range p.Steps {
		where := s.Host
		if where == "" {
			where = "operator"
		}
		fmt.Fprintf(&b, "%d. [%s] %s (%s, %s)\n", i+1, s.ID, s.Title, where, s.Kind)
		if l := s.Line(); l != "" {
			fmt.Fprintf(&b, "     $ %s\n", l)
		}
	}
	for _, n := range p.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Actions.
const (
	ActionReplace = "replace"
	ActionResize  = "resize"
)

// ErrRefused marks a replacement or resize belay will not do; the message says why.
var ErrRefused = errors.New("refused")

func refuse(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrRefused, fmt.Sprintf(format, a...))
}

// Timeouts of the long waits.
const (
	BootTimeout    = 15 * time.Minute
	RejoinTimeout  = 30 * time.Minute
	PromoteTimeout = 3 * time.Minute
	VIPTimeout     = time.Minute
	ServeTimeout   = 5 * time.Minute
	ReplaceTimeout = 30 * time.Minute
)

// Deploy-user commands the plans run.
const (
	// VIPProbeCmd lists the host's IPv4 addresses (drill.VIPProbeCmd's twin).
	VIPProbeCmd = "ip -o -4 addr show"
	// BootDoneCmd prints "active" once cloud-init's final stage finished on
	// this boot (the deploy user cannot read cloud-init's own state).
	BootDoneCmd = "systemctl is-active cloud-final.service"
	// PGHome is where a data node's volume is mounted (components/volumes.go).
	PGHome = "/var/lib/postgresql"
	// BackupMount is where the backup host's volume is mounted.
	BackupMount = "/srv/belay-data"
)

// VolumeUUIDCmd prints the UUID of the filesystem mounted at mnt, or nothing
// when mnt is not a mount point (the lab keeps data on the root disk).
func VolumeUUIDCmd(mnt string) string {
	return "findmnt -n -o UUID --mountpoint " + shq.Quote(mnt) + " || true"
}

// AppHealthCmd checks one app server: keepalived and nginx active, the app
// healthy on loopback.
func AppHealthCmd(a *inventory.App) string {
	return "systemctl is-active --quiet keepalived.service nginx.service && curl -fsS -m 2 -o /dev/null " +
		shq.Quote(fmt.Sprintf("http://127.0.0.1:%d%s", a.Port, a.HealthPath))
}

// ReleaseCmd succeeds when host carries a release of app.
func ReleaseCmd(app string) string {
	return "test -x " + shq.Quote("/srv/"+app+"/current/start")
}

// Healthy reports whether a data node state counts as a live formation
// member that can take over.
func healthyDB(state string) bool { return state == "primary" || state == "secondary" }

// appGroup is the VRRP group host serves: its app (or cell) name, VIP and members.
type appGroup struct {
	App   *inventory.App
	Name  string
	VIP   string
	Hosts []string
	// Public: the VIP is where clients reach the app (not a cell's private VIP).
	Public bool
}

func groupOf(inv *inventory.Inventory, h *inventory.Host) (*appGroup, error) {
	a := inv.App(h.App)
	if a == nil {
		return nil, fmt.Errorf("inventory host %s: app %q is not in the inventory's apps", h.Name, h.App)
	}
	if h.Cell != "" {
		c := a.Cell(h.Cell)
		if c == nil {
			return nil, fmt.Errorf("inventory host %s: cell %q is not a cell of app %s", h.Name, h.Cell, a.Name)
		}
		return &appGroup{App: a, Name: a.Name + "/" + c.Name, VIP: c.VIP, Hosts: c.Hosts}, nil
	}
	return &appGroup{App: a, Name: a.Name, VIP: a.VIP, Hosts: a.Hosts, Public: true}, nil
}

func others(hosts []string, h string) []string {
	var out []string
	for _, x := range hosts {
		if x != h {
			out = append(out, x)
		}
	}
	return out
}

func firstDomain(a *inventory.App) string {
	if len(a.Domains) > 0 {
		return strings.TrimPrefix(a.Domains[0], "*.")
	}
	return a.Name
}

// PlanReplace returns the replacement of host, or an error wrapping
// ErrRefused that says why belay will not do it.
func PlanReplace(inv *inventory.Inventory, host string, f Facts) (*Plan, error) {
	h := inv.Host(host)
	if h == nil {
		var names []string
		for _, x := range inv.Hosts {
			names = append(names, x.Name)
		}
		return nil, refuse("host %q is not in the inventory of stack %s (hosts: %s)", host, inv.Stack, strings.Join(names, ", "))
	}
	p := &Plan{Stack: inv.Stack, Action: ActionReplace, Host: host}
	switch {
	case h.Has(inventory.RoleApp):
		p.Role = string(inventory.RoleApp)
		return p, planApp(inv, h, f, p)
	case h.Has(inventory.RoleDB):
		// The stack's pair or a dedicated cell's (planDB reads its formation).
		p.Role = string(inventory.RoleDB)
		return p, planDB(inv, h, f, p)
	case h.Has(inventory.RoleDBMonitor):
		return nil, refuse("%s is the pg_auto_failover monitor: its formation state is not on a volume, so a new monitor starts empty and both data nodes must be re-registered (the failback's reseed, docs/runbook.md); automatic failover is off meanwhile. belay does not automate it", host)
	case h.Has(inventory.RoleRouter), h.Has(inventory.RoleStandbyRouter):
		return nil, refuse("%s is a cell router: replacing routers is not covered by belay replace yet", host)
	case h.Has(inventory.RoleStandbyApp):
		p.Role = string(inventory.RoleStandbyApp)
		return p, planStandbyApp(inv, h, f, p)
	case h.Has(inventory.RoleStandbyDB):
		p.Role = string(inventory.RoleStandbyDB)
		return p, planStateful(inv, h, f, p, PGHome, Step{ID: "recovering/" + host, Kind: KindWait, Host: host, Timeout: RejoinTimeout,
			Title: "the standby database replays the archive again (in recovery)", Argv: hostcmd.Psql(hostcmd.InRecoverySQL), Expect: "t"})
	case h.Has(inventory.RoleBackupRepo):
		p.Role = string(inventory.RoleBackupRepo)
		if inv.Backup.Stanza == "" {
			return nil, fmt.Errorf("inventory backup.stanza: empty, expected the pgBackRest stanza (checked after the replacement)")
		}
		return p, planStateful(inv, h, f, p, BackupMount, Step{ID: "repository/" + host, Kind: KindWait, Host: host, Timeout: 5 * time.Minute,
			Title: "the pgBackRest repository answers (pgbackrest info)", Argv: hostcmd.PgBackRestInfo(inv.Backup.Stanza)})
	}
	return nil, refuse("%s has roles %v: nothing belay replace knows how to move away first", host, h.Roles)
}

// planApp: fence the server (keepalived gives the VIP up), wait until a peer
// holds the VIP and the app answers through it, replace, boot, converge, and
// bring it the release its healthy peer runs, start it and check it is
// healthy and could take the VIP back.
func planApp(inv *inventory.Inventory, h *inventory.Host, f Facts, p *Plan) error {
	g, err := groupOf(inv, h)
	if err != nil {
		return err
	}
	p.Apps = []string{g.App.Name}
	peers := others(g.Hosts, h.Name)
	if len(peers) == 0 {
		return refuse("%s is the only server of %s: replacing it takes the app down", h.Name, g.Name)
	}
	var healthy []string
	for _, x := range peers {
		if f.AppHealthy[x] {
			healthy = append(healthy, x)
		}
	}
	if len(healthy) == 0 {
		return refuse("no other server of %s is healthy (%s: %s): replacing %s would take the last serving node",
			g.Name, strings.Join(peers, ", "), f.why(peers), h.Name)
	}
	// Before anything stops: the release the new server will get.
	from, rel, err := copySource(g.Name, "healthy server", healthy, f)
	if err != nil {
		return err
	}
	add := func(s Step) { p.Steps = append(p.Steps, s) }
	for _, x := range healthy {
		add(Step{ID: "check-peer/" + x, Kind: KindCheck, Host: x, Title: fmt.Sprintf("%s serves %s (keepalived, nginx, app health)", x, g.Name), Command: AppHealthCmd(g.App)})
	}
	add(Step{ID: "fence/" + h.Name, Kind: KindFence, Host: h.Name, Argv: hostcmd.FenceApp(g.App.Name),
		Title: fmt.Sprintf("stop keepalived, nginx and %s on %s (keepalived gives the VIP up to its peer)", g.App.Name, h.Name)})
	add(Step{ID: "vip/" + g.Name, Kind: KindVIP, Host: h.Name, Peers: healthy, VIP: g.VIP, Timeout: VIPTimeout,
		Title: fmt.Sprintf("the VIP %s is on %s, not on %s (%s on each)", g.VIP, strings.Join(healthy, " or "), h.Name, VIPProbeCmd)})
	if g.Public {
		add(Step{ID: "serve/" + g.Name, Kind: KindHTTP, Address: g.VIP, Domain: firstDomain(g.App), Timeout: VIPTimeout,
			Title: fmt.Sprintf("%s answers through its VIP: GET http://%s/ (Host: %s)", g.App.Name, g.VIP, firstDomain(g.App))})
	}
	add(Step{ID: "replace/" + h.Name, Kind: KindReplace, Host: h.Name, Timeout: ReplaceTimeout, Title: "replace the server " + h.Name + " (only it)"})
	add(bootStep(h.Name))
	add(Step{ID: "converge/" + h.Name, Kind: KindConverge, Host: h.Name, Title: "bring " + h.Name + "'s files up to the stack config (belay converge)"})
	add(copyStep(g.App.Name, h.Name, from, rel))
	add(Step{ID: "release/" + h.Name, Kind: KindCheck, Host: h.Name, Command: ReleaseCmd(g.App.Name),
		Title: fmt.Sprintf("%s carries release %s of %s (current/start is executable)", h.Name, rel, g.App.Name)})
	add(Step{ID: "start/" + h.Name, Kind: KindRoot, Host: h.Name, Argv: hostcmd.StartApp(g.App.Name),
		Title: fmt.Sprintf("start keepalived, nginx and %s on %s", g.App.Name, h.Name)})
	add(Step{ID: "health/" + h.Name, Kind: KindWait, Host: h.Name, Command: AppHealthCmd(g.App), Timeout: ServeTimeout,
		Title: fmt.Sprintf("%s serves %s (keepalived, nginx, app health)", h.Name, g.Name)})
	if g.Public {
		add(Step{ID: "serve-after/" + g.Name, Kind: KindHTTP, Address: g.VIP, Domain: firstDomain(g.App), Timeout: VIPTimeout,
			Title: fmt.Sprintf("%s still answers through its VIP", g.App.Name)})
	}
	return nil
}

// planStandbyApp: a standby-site app server serves nothing while the primary
// site does, so it is replaced, booted, converged and given the release the
// primary site runs (not started). A stack never deployed has no release to
// give: the plan says so and goes without the copy.
func planStandbyApp(inv *inventory.Inventory, h *inventory.Host, f Facts, p *Plan) error {
	a := inv.App(h.App)
	if a == nil {
		return fmt.Errorf("inventory host %s: app %q is not in the inventory's apps", h.Name, h.App)
	}
	p.Apps = []string{h.App}
	if f.StandbyServing[h.Name] {
		return refuse("%s serves %s right now (the standby site took over): switch back first (belay failover site --to primary)", h.Name, h.App)
	}
	// Healthy servers first: any primary-site server's active release is the
	// site's (copySource refuses when they differ or a rollout is unsettled).
	srcs := standbySources(a, h.Name)
	rank := func(x string) int {
		if f.AppHealthy[x] {
			return 0
		}
		return 1
	}
	slices.SortStableFunc(srcs, func(x, y string) int { return rank(x) - rank(y) })
	from, rel, err := copySource(h.App, "primary-site server", srcs, f)
	never := len(srcs) > 0 && !slices.ContainsFunc(srcs, func(x string) bool {
		a, ok := f.Active[x]
		return !ok || a.Release != "" || a.Err != "" || a.Canary != ""
	})
	if err != nil && !never {
		return err
	}
	p.Steps = append(p.Steps,
		Step{ID: "replace/" + h.Name, Kind: KindReplace, Host: h.Name, Timeout: ReplaceTimeout, Title: "replace the standby app server " + h.Name + " (it serves nothing while the primary site does)"},
		bootStep(h.Name),
		Step{ID: "converge/" + h.Name, Kind: KindConverge, Host: h.Name, Title: "bring " + h.Name + "'s files up to the stack config (belay converge)"})
	if err != nil {
		p.Notes = append(p.Notes, fmt.Sprintf("no server of %s has a release yet (%s): the new standby app server gets one with the first deploy", h.App, strings.Join(srcs, ", ")))
		return nil
	}
	p.Steps = append(p.Steps, copyStep(h.App, h.Name, from, rel),
		Step{ID: "release/" + h.Name, Kind: KindCheck, Host: h.Name, Command: ReleaseCmd(h.App),
			Title: fmt.Sprintf("%s carries release %s of %s (current/start is executable; not started: the primary site serves)", h.Name, rel, h.App)})
	return nil
}

// planStateful replaces a standby-site host whose data is on a kept volume.
func planStateful(inv *inventory.Inventory, h *inventory.Host, f Facts, p *Plan, mnt string, ready Step) error {
	p.Apps = allApps(inv)
	add := func(s Step) { p.Steps = append(p.Steps, s) }
	add(Step{ID: "record-volume/" + h.Name, Kind: KindRecord, Host: h.Name, Command: VolumeUUIDCmd(mnt), Fact: "volume",
		Title: "record the filesystem UUID of the data volume at " + mnt})
	add(Step{ID: "replace/" + h.Name, Kind: KindReplace, Host: h.Name, Timeout: ReplaceTimeout, Title: "replace the server " + h.Name + " (its data volume is kept and re-attached)"})
	add(bootStep(h.Name))
	add(Step{ID: "volume-kept/" + h.Name, Kind: KindSame, Host: h.Name, Command: VolumeUUIDCmd(mnt), Fact: "volume",
		Title: "the same filesystem is mounted at " + mnt + " (the volume was re-attached, not reformatted)"})
	add(Step{ID: "converge/" + h.Name, Kind: KindConverge, Host: h.Name, Title: "bring " + h.Name + "'s files up to the stack config (belay converge)"})
	add(ready)
	return nil
}

func bootStep(host string) Step {
	return Step{ID: "boot/" + host, Kind: KindBoot, Host: host, Command: BootDoneCmd, Expect: "active", Timeout: BootTimeout,
		Title: host + " answers SSH with its pinned host key (derived from the seed) and cloud-init finished"}
}

func allApps(inv *inventory.Inventory) []string {
	var out []string
	for _, a := range inv.Apps {
		out = append(out, a.Name)
	}
	slices.Sort(out)
	return out
}
