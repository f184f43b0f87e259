// Package failover switches a stack's serving site: the plan is data (a pure
// function of the inventory), printed before it runs and in docs/runbook.md;
// the executor runs it step by step over SSH, records completed steps in a
// state file so an interrupted switch resumes, and moves DNS.
package failover

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/belay-sh/belay/deploy/sshx"
	"github.com/belay-sh/belay/inventory"
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
	// KindHTTP GETs http://Address/ with Host: Domain until it answers below 500.
	KindHTTP StepKind = "http"
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
}

// Plan is a whole site switch.
type Plan struct {
	Stack string    `json:"stack"`
	To    Direction `json:"to"`
	Steps []Step    `json:"steps"`
	// Refusal is set when belay will not run the plan itself (--to primary): the steps are manual.
	Refusal string `json:"refusal,omitempty"`
}

// Digest identifies the plan's content; a resumed switch must run the same plan.
func (p *Plan) Digest() string {
	b, _ := json.Marshal(p.Steps)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// Exact commands of the switch (shared by plan, executor and runbook).
const (
	// PromoteSQL promotes the standby DB and waits up to 300 s for it to accept writes (the SQL form of docs/ha-engine.md's `pg_ctl promote -w -t 300`; it needs no version-specific path).
	PromoteSQL = "SELECT pg_promote(true, 300)"
	// InRecoverySQL is 't' on a standby, 'f' once promoted.
	InRecoverySQL = "SELECT pg_is_in_recovery()"
	// ReplayTimestampSQL is the commit time of the last transaction the standby replayed (the RPO edge).
	ReplayTimestampSQL = "SELECT coalesce(pg_last_xact_replay_timestamp()::text, 'none')"
)

// PsqlArgv runs one SQL statement as the postgres superuser.
func PsqlArgv(sql string) []string {
	return []string{"runuser", "-u", "postgres", "--", "psql", "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-c", sql}
}

// fenceDBArgv stops pg_auto_failover's keeper (or monitor) and PostgreSQL on a
// primary-site DB host. systemctl matches the patterns against loaded units, so
// the same line fits data nodes and the monitor.
func fenceDBArgv() []string {
	return []string{"systemctl", "stop", "pgautofailover*", "postgresql*"}
}

func fenceAppArgv(app string) []string {
	return []string{"systemctl", "stop", "keepalived.service", "nginx.service", "belay-canary@" + app + ".service", "belay-app@" + app + ".service"}
}

// ShellLine renders argv as one POSIX shell line (for display and the runbook).
func ShellLine(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = sshx.Quote(a)
	}
	return strings.Join(q, " ")
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
	p := &Plan{Stack: inv.Stack, To: ToStandby}
	add := func(s Step) {
		if len(s.Argv) > 0 && len(s.Commands) == 0 {
			s.Commands = []string{ShellLine(s.Argv)}
		}
		p.Steps = append(p.Steps, s)
	}
	for _, a := range inv.Apps {
		if a.Standby == "" || inv.Host(a.Standby) == nil {
			return nil, fmt.Errorf("inventory apps[%s].standbyHost %q: the app has no standby app server", a.Name, a.Standby)
		}
		add(Step{ID: "check-release/" + a.Name, Kind: KindCheck, Host: a.Standby,
			Title:    fmt.Sprintf("the standby app server %s carries a release of %s", a.Standby, a.Name),
			Commands: []string{fmt.Sprintf("test -x /srv/%s/current/start", a.Name)}})
	}
	add(Step{ID: "check-standby-db", Kind: KindRoot, Host: sdb, Title: "the standby database answers (in recovery, or already promoted by an interrupted switch)", Argv: PsqlArgv(InRecoverySQL)})
	for _, a := range inv.Apps {
		for _, h := range a.Hosts {
			add(Step{ID: "fence-app/" + h, Kind: KindFence, Host: h, Title: fmt.Sprintf("fence %s on %s: stop keepalived (gives up the VIP), nginx and the app", a.Name, h), Argv: fenceAppArgv(a.Name)})
		}
	}
	dbHosts := append([]string(nil), inv.Database.Nodes...)
	if inv.Database.Monitor != "" {
		dbHosts = append(dbHosts, inv.Database.Monitor)
	}
	for _, h := range dbHosts {
		add(Step{ID: "fence-db/" + h, Kind: KindFence, Host: h, Title: "fence " + h + ": stop pg_auto_failover and PostgreSQL (no second primary may accept writes)", Argv: fenceDBArgv()})
	}
	add(Step{ID: "rpo", Kind: KindRoot, Host: sdb, Title: "record the last transaction the standby replayed (the cross-site RPO edge)", Argv: PsqlArgv(ReplayTimestampSQL)})
	add(Step{ID: "promote-db", Kind: KindRoot, Host: sdb, Title: "promote the standby database (pg_promote, waits until it accepts writes)", Argv: PsqlArgv(PromoteSQL), Expect: "t"})
	add(Step{ID: "check-promoted", Kind: KindRoot, Host: sdb, Title: "the standby database accepts writes", Argv: PsqlArgv(InRecoverySQL), Expect: "f"})
	for _, a := range inv.Apps {
		unit := "belay-app@" + a.Name + ".service"
		add(Step{ID: "start-app/" + a.Standby, Kind: KindDeploy, Host: a.Standby, Title: fmt.Sprintf("enable and start %s on %s", a.Name, a.Standby),
			Commands: []string{"sudo -n /usr/bin/systemctl enable " + unit, "sudo -n /usr/bin/systemctl start " + unit}})
		add(Step{ID: "health-app/" + a.Standby, Kind: KindHealth, Host: a.Standby, Title: fmt.Sprintf("%s answers its health check on %s", a.Name, a.Standby),
			Commands: []string{fmt.Sprintf("curl -fsS -m 2 -o /dev/null http://127.0.0.1:%d%s", a.Port, a.HealthPath)}})
	}
	for _, a := range inv.Apps {
		addr := publicAddress(inv.Host(a.Standby))
		for _, d := range a.Domains {
			add(Step{ID: "dns/" + d, Kind: KindDNS, Title: fmt.Sprintf("point %s at the standby app server %s (%s)", d, a.Standby, addr), Domain: d, Address: addr})
		}
	}
	for _, a := range inv.Apps {
		addr := publicAddress(inv.Host(a.Standby))
		add(Step{ID: "verify/" + a.Name, Kind: KindHTTP, Title: fmt.Sprintf("%s answers from the standby site: GET http://%s/ (Host: %s)", a.Name, addr, firstDomain(a)), Domain: firstDomain(a), Address: addr})
	}
	return p, nil
}

// planToPrimary is the way back after a switch: the old primary site's data
// is behind (or forked from) the promoted standby and must be rebuilt from it.
// belay does not automate this yet; the plan lists the manual steps and is refused.
func planToPrimary(inv *inventory.Inventory) (*Plan, error) {
	p := &Plan{Stack: inv.Stack, To: ToPrimary,
		Refusal: "switching back to the primary site needs its database rebuilt from the promoted standby (a re-seed); belay does not automate it yet: follow these steps by hand"}
	sdb := inv.Database.Standby
	repo := inv.Backup.Host
	stanza := inv.Backup.Stanza
	nodes := inv.Database.Nodes
	first := ""
	if len(nodes) > 0 {
		first = nodes[0]
	}
	m := func(id, host, title string, cmds ...string) {
		p.Steps = append(p.Steps, Step{ID: id, Kind: KindManual, Host: host, Title: title, Commands: cmds})
	}
	m("fence-primary-site", first, "make sure nothing on the primary site serves or accepts writes (apps, pg_auto_failover and PostgreSQL stopped on every primary-site host)",
		ShellLine(fenceDBArgv()))
	m("archive-from-standby", sdb, "make the promoted standby archive its WAL to the repository (archive_mode=on, archive_command=pgbackrest --stanza="+stanza+" archive-push %p) and take a full backup of it",
		"pgbackrest --stanza="+stanza+" --type=full backup")
	m("rebuild-primary-db", first, "drop "+first+"'s old data and restore it from that backup as a standby of the promoted standby (pgbackrest restore --type=standby), then let it catch up",
		"pgbackrest --stanza="+stanza+" --delta --type=standby restore")
	m("quiesce-standby", sdb, "stop the apps on the standby site and wait until "+first+" has replayed everything (pg_last_wal_replay_lsn() = the standby's pg_current_wal_lsn())")
	m("promote-primary-db", first, "promote "+first+", re-create the pg_auto_failover formation (monitor, then the other data node joins as secondary)",
		ShellLine(PsqlArgv(PromoteSQL)))
	m("restore-standby-role", sdb, "re-create "+sdb+" as a standby restored from the repository on "+repo+" (as `belay up` provisions it)")
	for _, a := range inv.Apps {
		for _, d := range a.Domains {
			m("dns/"+d, "", "point "+d+" back at the app's floating IP "+a.VIP)
		}
		m("start-apps/"+a.Name, strings.Join(a.Hosts, ","), "start keepalived, nginx and "+a.Name+" on the primary app servers; stop "+a.Name+" on "+a.Standby)
	}
	return p, nil
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
