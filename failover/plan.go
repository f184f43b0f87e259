// Package failover switches a stack's serving site: the plan is data (a pure
// function of the inventory), printed before it runs and in docs/runbook.md;
// the executor runs it step by step over SSH, records completed steps in a
// state file so an interrupted switch resumes, and moves DNS.
package failover

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/belay-sh/belay/hostcmd"
	"github.com/belay-sh/belay/internal/shq"
	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/router"
)

// Direction is the site a switch moves to.
type Direction string

// The two directions.
const (
	ToStandby Direction = "standby"
	ToPrimary Direction = "primary"
)

// StepKind says how the executor runs a step.
type StepKind string

// Step kinds.
const (
	// KindCheck runs Commands as the deploy user; a failure stops the switch.
	KindCheck StepKind = "check"
	// KindFence runs Commands as root on a host of the old site; skipped with a
	// warning when that site is unreachable (partitioned, down).
	KindFence StepKind = "fence"
	// KindRoot runs Commands as root; a failure stops the switch.
	KindRoot StepKind = "root"
	// KindDeploy runs Commands as the deploy user (its sudoers allow them).
	KindDeploy StepKind = "deploy"
	// KindHealth retries Commands as the deploy user until they pass or the timeout.
	KindHealth StepKind = "health"
	// KindDNS points Domain at Address through the DNS provider.
	KindDNS StepKind = "dns"
	// KindHTTP GETs the app's front page through Address as its users do
	// (httpprobe: HTTPS with SNI Domain and a verified chain once the
	// servers redirect there, else HTTP) until it answers below 500.
	KindHTTP StepKind = "http"
	// KindCert runs Argv as root to obtain the app's ACME certificate on the
	// servers that now serve it. A failure is a warning, not a stop: the app
	// answers (HTTPS on the placeholder until the unit's timer succeeds).
	KindCert StepKind = "certificate"
	// KindRouter runs Commands[0] (RouterStatusCommand) as the deploy user on
	// a router until its answer shows the router's own report changed since
	// the first answer (router-sync runs and reports), without an error (it
	// loaded the current mapping into nginx), and every cell reachable from
	// the router, or the timeout (default 2 min).
	KindRouter StepKind = "router"
	// KindManual is a step belay does not perform; the plan is refused.
	KindManual StepKind = "manual"
)

// Step is one step of a site switch.
type Step struct {
	ID    string   `json:"id"`
	Title string   `json:"title"`
	Kind  StepKind `json:"kind"`
	// Host is where the step runs ("" = this machine).
	Host string `json:"host,omitempty"`
	// Commands are the exact command lines (root steps: argv joined for display, see Argv).
	Commands []string `json:"commands,omitempty"`
	// Argv is the root command (KindRoot/KindFence), run without a shell.
	Argv   []string `json:"argv,omitempty"`
	Domain string   `json:"domain,omitempty"`
	// Address is the DNS target / HTTP check address.
	Address string `json:"address,omitempty"`
	// Expect is the trimmed stdout a check must print ("" = exit status only).
	Expect string `json:"expect,omitempty"`
	// Retry repeats a root step until it passes (Expect included) or Timeout.
	Retry bool `json:"retry,omitempty"`
	// Timeout bounds the step (default 6 min for root steps).
	Timeout time.Duration `json:"timeoutNs,omitempty"`
}

// Plan is a whole site switch.
type Plan struct {
	Stack string    `json:"stack"`
	To    Direction `json:"to"`
	Steps []Step    `json:"steps"`
	// Refusal is set when belay will not run the plan itself: the steps are manual.
	Refusal string `json:"refusal,omitempty"`
}

// Digest identifies the plan's content; a resumed switch must run the same plan.
func (p *Plan) Digest() string {
	b, _ := json.Marshal(p.Steps)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// ShellLine renders argv as one POSIX shell line (for display and the runbook).
func ShellLine(argv []string) string {
	return shq.Join(argv...)
}

// PlanSite returns the site switch of inv to site to.
func PlanSite(inv *inventory.Inventory, to Direction) (*Plan, error) {
	switch to {
	case ToStandby:
		return planToStandby(inv)
	case ToPrimary:
		return planToPrimary(inv)
	}
	return nil, fmt.Errorf("--to %q: expected standby or primary", to)
}

func planToStandby(inv *inventory.Inventory) (*Plan, error) {
	sdb := inv.Database.Standby
	if sdb == "" || inv.Host(sdb) == nil {
		return nil, fmt.Errorf("inventory database.standbyHost %q: the stack has no standby database to switch to", sdb)
	}
	sites, err := appSites(inv)
	if err != nil {
		return nil, err
	}
	cells, err := cellDBs(inv)
	if err != nil {
		return nil, err
	}
	p := &Plan{Stack: inv.Stack, To: ToStandby}
	add := p.adder()
	for _, s := range sites {
		for i, h := range s.standby {
			add(Step{ID: s.releaseCheckID(i), Kind: KindCheck, Host: h,
				Title:    fmt.Sprintf("the standby app server %s carries a release of %s", h, s.app.Name),
				Commands: []string{"test -x " + shq.Quote("/srv/"+s.app.Name+"/current/start")}})
		}
		if s.cells() {
			add(Step{ID: "check-router/" + s.standbyRouter, Kind: KindCheck, Host: s.standbyRouter,
				Title:    fmt.Sprintf("%s is a standby router of %s (its cells.conf points each cell at the cell's standby server)", s.standbyRouter, s.app.Name),
				Commands: []string{"test -r " + shq.Quote(router.Dir(s.app.Name)+"/"+router.CellsFile)}})
		}
	}
	add(Step{ID: "check-standby-db", Kind: KindRoot, Host: sdb, Title: "the standby database answers (in recovery, or already promoted by an interrupted switch)", Argv: hostcmd.Psql(hostcmd.InRecoverySQL)})
	cellStandbyChecks(cells, add)
	for _, s := range sites {
		for _, h := range s.routers {
			add(Step{ID: "fence-router/" + h, Kind: KindFence, Host: h, Title: fmt.Sprintf("fence the router %s of %s: stop router-sync, keepalived (gives up the router VIP) and nginx", h, s.app.Name), Argv: hostcmd.FenceRouter(s.app.Name)})
		}
		for _, h := range s.primary {
			add(Step{ID: "fence-app/" + h, Kind: KindFence, Host: h, Title: fmt.Sprintf("fence %s on %s: stop keepalived (gives up the VIP), nginx and the app", s.app.Name, h), Argv: hostcmd.FenceApp(s.app.Name)})
		}
	}
	databaseStepsToStandby(inv, cells, add)
	for _, s := range sites {
		for _, h := range s.standby {
			add(Step{ID: "start-app/" + h, Kind: KindRoot, Host: h, Title: fmt.Sprintf("enable and start %s on %s", s.app.Name, h),
				Argv: hostcmd.StartStandbyApp(s.app.Name)})
			add(Step{ID: "health-app/" + h, Kind: KindHealth, Host: h, Title: fmt.Sprintf("%s answers its health check on %s", s.app.Name, h),
				Commands: []string{HealthCommand(s.app)}})
		}
		if s.cells() {
			add(Step{ID: "start-router/" + s.standbyRouter, Kind: KindRoot, Host: s.standbyRouter,
				Title: fmt.Sprintf("start router-sync of %s on the standby router %s (its database now accepts writes)", s.app.Name, s.standbyRouter),
				Argv:  hostcmd.StartStandbyRouter(s.app.Name)})
			add(routerCheck(s.app, s.standbyRouter, "standby"))
		}
	}
	for _, s := range sites {
		addr := publicAddress(inv.Host(s.entry))
		for _, d := range s.app.Domains {
			add(Step{ID: "dns/" + d, Kind: KindDNS, Title: fmt.Sprintf("point %s at the standby %s %s (%s)", d, entryKind(s), s.entry, addr), Domain: d, Address: addr})
		}
	}
	for _, s := range sites {
		addCertSteps(add, s.app, []string{s.entry})
	}
	for _, s := range sites {
		addr := publicAddress(inv.Host(s.entry))
		add(Step{ID: "verify/" + s.app.Name, Kind: KindHTTP, Title: fmt.Sprintf("%s answers from the standby site: GET %s://%s/ (Host: %s)", s.app.Name, scheme(s.app), addr, firstDomain(s.app)), Domain: firstDomain(s.app), Address: addr})
	}
	return p, nil
}

// entryKind names what an app's domains point at on the standby site.
func entryKind(s appSite) string {
	if s.cells() {
		return "router"
	}
	return "app server"
}

// adder appends a step to p, showing a root step's argv as its command line.
func (p *Plan) adder() func(Step) {
	return func(s Step) {
		if len(s.Argv) > 0 && len(s.Commands) == 0 {
			s.Commands = []string{ShellLine(s.Argv)}
		}
		p.Steps = append(p.Steps, s)
	}
}

// planToPrimary is the way back after a switch to the standby site: the
// primary site's pg_auto_failover formation is re-created around the data the
// promoted standby wrote (restored from the pgBackRest repository, which that
// standby archives to), the apps move back, then the standby site is re-seeded
// as a standby again. The service is down from "stop the standby site's apps"
// to "the apps answer on the VIP" (restore + recovery of the database).
func planToPrimary(inv *inventory.Inventory) (*Plan, error) {
	sdb := inv.Database.Standby
	if sdb == "" || inv.Host(sdb) == nil {
		return nil, fmt.Errorf("inventory database.standbyHost %q: the stack has no standby database to come back from", sdb)
	}
	nodes := inv.Database.Nodes
	if len(nodes) < 1 {
		return nil, errors.New("inventory database.nodes: empty, expected the primary site's data nodes")
	}
	for _, n := range nodes {
		if inv.Host(n) == nil {
			return nil, fmt.Errorf("inventory database.nodes: %q is not a host of the inventory", n)
		}
	}
	mon := inv.Database.Monitor
	if mon == "" || inv.Host(mon) == nil {
		return nil, fmt.Errorf("inventory database.monitor %q: the way back re-creates the pg_auto_failover formation and needs its monitor", mon)
	}
	repo, stanza := inv.Backup.Host, inv.Backup.Stanza
	if repo == "" || inv.Host(repo) == nil || stanza == "" {
		return nil, fmt.Errorf("inventory backup (host %q, stanza %q): the way back restores from the pgBackRest repository and needs both", repo, stanza)
	}
	sites, err := appSites(inv)
	if err != nil {
		return nil, err
	}
	cells, err := cellDBs(inv)
	if err != nil {
		return nil, err
	}
	p := &Plan{Stack: inv.Stack, To: ToPrimary}
	add := p.adder()
	add(Step{ID: "check-standby-serving", Kind: KindRoot, Host: sdb, Title: "the standby database is promoted (the standby site serves: there is a switch to undo)", Argv: hostcmd.Psql(hostcmd.InRecoverySQL), Expect: "f"})
	cellServingChecks(cells, add)
	// Every primary-site database server: the stack's pair, the dedicated
	// cells' pairs, the monitor (last: fenced after the nodes it watches).
	dbHosts := append(append(append([]string(nil), nodes...), cellFenceHosts(cells)...), mon)
	var primarySite []string
	for _, s := range sites {
		primarySite = append(append(primarySite, s.routers...), s.primary...)
	}
	primarySite = append(primarySite, dbHosts...)
	for _, h := range primarySite {
		add(Step{ID: "check-reachable/" + h, Kind: KindCheck, Host: h, Title: h + " (primary site) answers over SSH", Commands: []string{"true"}})
	}
	// The primary site may have come back from a partition still serving: fence
	// it for real now (these steps fail instead of skipping an unreachable host).
	for _, s := range sites {
		for _, h := range s.routers {
			add(Step{ID: "fence-router/" + h, Kind: KindRoot, Host: h, Title: fmt.Sprintf("stop router-sync, keepalived and nginx on the router %s of %s (nothing on the primary site serves during the way back)", h, s.app.Name), Argv: hostcmd.FenceRouter(s.app.Name)})
		}
		for _, h := range s.primary {
			add(Step{ID: "fence-app/" + h, Kind: KindRoot, Host: h, Title: fmt.Sprintf("stop keepalived, nginx and %s on %s (nothing on the primary site serves during the way back)", s.app.Name, h), Argv: hostcmd.FenceApp(s.app.Name)})
		}
	}
	for _, h := range dbHosts {
		add(Step{ID: "fence-db/" + h, Kind: KindRoot, Host: h, Title: "stop pg_auto_failover and PostgreSQL on " + h, Argv: hostcmd.FenceDB()})
	}
	add(Step{ID: "reseed-monitor", Kind: KindRoot, Host: mon, Timeout: 15 * time.Minute, Title: "re-create the pg_auto_failover monitor empty (its formation still lists the old primary)", Argv: hostcmd.Reseed(hostcmd.ReseedMonitor)})
	// Downtime starts: the standby site stops taking writes, and everything it
	// wrote reaches the repository.
	for _, s := range sites {
		for _, h := range s.standby {
			add(Step{ID: "stop-standby-app/" + h, Kind: KindRoot, Host: h, Title: fmt.Sprintf("stop and disable %s on the standby app server %s (downtime starts)", s.app.Name, h), Argv: hostcmd.StopStandbyApp(s.app.Name)})
		}
		if s.cells() {
			// Before the database turns read-only: router-sync reports to it.
			add(Step{ID: "stop-standby-router/" + s.standbyRouter, Kind: KindRoot, Host: s.standbyRouter,
				Title: fmt.Sprintf("stop router-sync of %s on the standby router %s (its database becomes a replica again)", s.app.Name, s.standbyRouter), Argv: hostcmd.StopStandbyRouter(s.app.Name)})
		}
	}
	add(Step{ID: "readonly-standby-db", Kind: KindRoot, Host: sdb, Title: "make the promoted standby database refuse writes (default_transaction_read_only)", Argv: hostcmd.ReadOnly()})
	add(Step{ID: "archive-standby-db", Kind: KindRoot, Host: sdb, Timeout: 10 * time.Minute, Title: "end its sessions, mark its last write with a restore point, push its timeline's history file and wait until the repository has all of it", Argv: hostcmd.FinalArchive()})
	add(Step{ID: "stop-standby-db", Kind: KindRoot, Host: sdb, Title: "stop the standby database", Argv: hostcmd.StopUnit(hostcmd.StandbyDBUnit)})
	cellStandbyStopSteps(cells, add)
	add(Step{ID: "reseed-primary/" + nodes[0], Kind: KindRoot, Host: nodes[0], Timeout: 3 * time.Hour,
		Title: "restore " + nodes[0] + " from the repository up to the standby site's restore point (all its writes included; the old data kept aside) and register it as the new primary", Argv: hostcmd.Reseed(hostcmd.ReseedPrimary)})
	for _, n := range nodes[1:] {
		add(Step{ID: "reseed-replica/" + n, Kind: KindRoot, Host: n, Timeout: 3 * time.Hour, Title: "empty " + n + " and re-clone it from " + nodes[0] + " as the secondary", Argv: hostcmd.Reseed(hostcmd.ReseedReplica)})
	}
	want := "1/" + strconv.Itoa(len(nodes)-1)
	add(Step{ID: "check-formation", Kind: KindRoot, Host: mon, Retry: true, Timeout: 10 * time.Minute,
		Title: fmt.Sprintf("the monitor reports one primary and %d secondar%s", len(nodes)-1, map[bool]string{true: "y", false: "ies"}[len(nodes) == 2]), Argv: hostcmd.MonitorPsql(hostcmd.FormationSQL), Expect: want})
	if err := cellReseedSteps(cells, mon, add); err != nil {
		return nil, err
	}
	for _, s := range sites {
		for _, h := range s.primary {
			add(Step{ID: "start-app/" + h, Kind: KindRoot, Host: h, Title: fmt.Sprintf("start keepalived, nginx and %s on %s", s.app.Name, h), Argv: hostcmd.StartApp(s.app.Name)})
		}
		for _, h := range s.primary {
			add(Step{ID: "health-app/" + h, Kind: KindHealth, Host: h, Title: fmt.Sprintf("%s answers its health check on %s", s.app.Name, h),
				Commands: []string{HealthCommand(s.app)}})
		}
		for _, h := range s.routers {
			add(Step{ID: "start-router/" + h, Kind: KindRoot, Host: h, Title: fmt.Sprintf("start keepalived, nginx and router-sync of %s on the router %s", s.app.Name, h), Argv: hostcmd.StartRouter(s.app.Name)})
		}
		for _, h := range s.routers {
			add(routerCheck(s.app, h, "primary"))
		}
	}
	for _, s := range sites {
		for _, d := range s.app.Domains {
			add(Step{ID: "dns/" + d, Kind: KindDNS, Title: fmt.Sprintf("point %s back at the %s floating IP %s", d, map[bool]string{true: "router tier's", false: "app's"}[s.cells()], s.vip), Domain: d, Address: s.vip})
		}
	}
	for _, s := range sites {
		hosts := s.app.Hosts
		if s.cells() {
			hosts = s.routers
		}
		addCertSteps(add, s.app, hosts)
	}
	for _, s := range sites {
		add(Step{ID: "verify/" + s.app.Name, Kind: KindHTTP, Title: fmt.Sprintf("%s answers from the primary site: GET %s://%s/ (Host: %s) (downtime ends)", s.app.Name, scheme(s.app), s.vip, firstDomain(s.app)), Domain: firstDomain(s.app), Address: s.vip})
	}
	// The standby site becomes a standby again, from a backup of the new primary.
	// belay-backup full backs up every stanza in turn: the dedicated cells'
	// new primaries too, whose standby databases re-restore from it. (The
	// title stays the stack's: a stack without dedicated cells keeps its
	// plan, and so resumes a switch an older belay started.)
	add(Step{ID: "backup-full", Kind: KindRoot, Host: repo, Timeout: 3 * time.Hour, Title: "take a full backup of the new primary (the standby is re-seeded from it)", Argv: hostcmd.StartUnit(hostcmd.FullBackupUnit)})
	add(Step{ID: "reseed-standby-db", Kind: KindRoot, Host: sdb, Timeout: 3 * time.Hour, Title: "re-restore the standby database from that backup (delta) as a standby replaying the archive", Argv: hostcmd.Resync()})
	add(Step{ID: "check-standby-db", Kind: KindRoot, Host: sdb, Retry: true, Timeout: 5 * time.Minute, Title: "the standby database is in recovery again", Argv: hostcmd.Psql(hostcmd.InRecoverySQL), Expect: "t"})
	cellResyncSteps(cells, add)
	return p, nil
}

// addCertSteps obtains app a's ACME certificate on hosts once DNS points at
// them (HTTP-01 validates through DNS, so not before): on the standby server
// after a switch, a first issuance; on the primary servers on the way back, a
// renewal if one fell due while DNS pointed away. A custom certificate is on
// every server already (written at first boot).
func addCertSteps(add func(Step), a inventory.App, hosts []string) {
	if a.TLS != inventory.TLSACME {
		return
	}
	for _, h := range hosts {
		add(Step{ID: "certificate/" + h, Kind: KindCert, Host: h, Timeout: 4 * time.Minute, Argv: hostcmd.IssueCertificate(a.Name),
			Title: fmt.Sprintf("obtain or renew %s's certificate on %s (ACME HTTP-01, now that DNS points there; a failure is a warning)", a.Name, h)})
	}
}

// scheme is how the verify step is expected to reach app a.
func scheme(a inventory.App) string {
	if a.TLS != "" {
		return "https"
	}
	return "http"
}

// HealthCommand checks app a on this host: its health URL, quoted as one word
// (inventory validation already refuses a health path with shell syntax; the
// quoting holds even if a caller skipped it).
func HealthCommand(a inventory.App) string {
	return "curl -fsS -m 2 -o /dev/null " + shq.Quote(fmt.Sprintf("http://127.0.0.1:%d%s", a.Port, a.HealthPath))
}

// publicAddress is where clients reach a host: its public address in a cloud,
// its SSH (lab) address otherwise.
func publicAddress(h *inventory.Host) string {
	if h.PublicAddress != "" {
		return h.PublicAddress
	}
	return h.SSHAddress
}

func firstDomain(a inventory.App) string {
	if len(a.Domains) > 0 {
		return a.Domains[0]
	}
	return a.Name
}

// Print writes the plan for people: one numbered line per step with its commands.
func (p *Plan) Print(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Site switch of stack %s to the %s site (%d steps, plan %s)\n", p.Stack, p.To, len(p.Steps), p.Digest())
	if p.Refusal != "" {
		fmt.Fprintf(&b, "NOT AUTOMATED: %s\n", p.Refusal)
	}
	for i, s := range p.Steps {
		where := s.Host
		if where == "" {
			where = "operator"
		}
		fmt.Fprintf(&b, "%s. [%s] %s (%s, %s)\n", strconv.Itoa(i+1), s.ID, s.Title, where, s.Kind)
		for _, c := range s.Commands {
			fmt.Fprintf(&b, "     $ %s\n", c)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
