package drill

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/belay-sh/belay/failover"
	"github.com/belay-sh/belay/hostcmd"
	"github.com/belay-sh/belay/inventory"
)

// Kind names a drill.
type Kind string

// The drills.
const (
	AppNode   Kind = "app-node"
	DBPrimary Kind = "db-primary"
	Restore   Kind = "restore"
	Site      Kind = "site"
)

// Kinds lists the drills in the order the runbook documents them.
var Kinds = []Kind{AppNode, DBPrimary, Restore, Site}

// Variants lists each drill's variants; the first is the default.
var Variants = map[Kind][]string{
	AppNode:   {"kill", "cut-link", "stop-nginx"},
	DBPrimary: {"kill", "cut-link", "stop-service"},
	Restore:   {"verify", "corrupt"},
	Site:      {"partition"},
}

// CheckVariant returns the variant to run (the default for "") or an error naming the choices.
func CheckVariant(k Kind, v string) (string, error) {
	vs, ok := Variants[k]
	if !ok {
		return "", fmt.Errorf("drill %q: expected one of app-node, db-primary, restore, site", k)
	}
	if v == "" {
		return vs[0], nil
	}
	for _, x := range vs {
		if x == v {
			return v, nil
		}
	}
	return "", fmt.Errorf("--variant %q: drill %s has variants %s", v, k, strings.Join(vs, ", "))
}

// Step is one runbook step a drill executes: what it does, where, and the exact
// commands. The drill code runs exactly these steps (by ID) and the runbook
// prints them, so the two cannot drift apart.
type Step struct {
	ID    string `json:"id"`
	Title string `json:"title"`
	// Where is the host or role the step acts on ("operator" for this machine).
	Where string `json:"where"`
	// Commands are the exact commands (remote shell lines, lab faults, HTTP probes).
	Commands []string `json:"commands,omitempty"`
}

func (s Step) String() string { return s.ID + ": " + s.Title }

// Command lines the drills run on hosts (pure data, shared by code and runbook).
const (
	// VIPProbeCmd lists a host's IPv4 addresses; the VIP holder shows the VIP.
	VIPProbeCmd = "ip -o -4 addr show"
	// VerifyResultFile is what every verification writes (roles.VerifyResultFile).
	VerifyResultFile = "/var/lib/belay/last-verified-restore.json"
	// WritesTable is where the write load inserts; an id is recorded only once COMMIT returned OK.
	WritesTable = "belay_drill_writes"
	// ProbeInterval and ProbeTimeout pace the HTTP probe of the VIP. The
	// timeout is a client's, not a monitor's: far above nginx's 300 ms connect
	// timeout to a dead upstream (a probe must not give up before nginx has
	// tried the other member) and well below a browser's own patience
	// (docs/drills.md).
	ProbeInterval = 20 * time.Millisecond
	ProbeTimeout  = 5 * time.Second
)

// StandbySeedWait bounds how long the corrupt drill waits for the standby to
// finish seeding (its restore checks for a backup every 5 s; the restore itself
// takes minutes on a large database).
const StandbySeedWait = 12 * time.Minute

// CreateWritesSQL creates the write-load table.
const CreateWritesSQL = "CREATE TABLE IF NOT EXISTS " + WritesTable + " (id bigint PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())"

// InsertWriteSQL is one write of the load, in its own transaction.
const InsertWriteSQL = "INSERT INTO " + WritesTable + " (id, at) VALUES ($1, now())"

// Steps returns the steps of drill k (variant v) against inv, in order.
func Steps(inv *inventory.Inventory, k Kind, v string, app string) ([]Step, error) {
	v, err := CheckVariant(k, v)
	if err != nil {
		return nil, err
	}
	switch k {
	case AppNode:
		a, err := pickApp(inv, app)
		if err != nil {
			return nil, err
		}
		fault := map[string]string{
			"kill":       "kill the VIP holder hard (lab: SIGKILL the machine; cloud: provider power-off)",
			"cut-link":   "cut the VIP holder's network link",
			"stop-nginx": "stop nginx on the VIP holder (keepalived's track_script must give up the VIP)",
		}[v]
		hosts := strings.Join(a.Hosts, ", ")
		return []Step{
			{ID: "locate", Title: "find the VIP holder: the app server whose addresses include " + a.VIP, Where: hosts, Commands: []string{VIPProbeCmd}},
			{ID: "probe", Title: fmt.Sprintf("start the HTTP probe, a browser-like client (up to %d kept-alive connections, timeout %s): GET %s://%s/ (Host: %s%s) every %s; the VIP must answer 10 in a row, then >= %.0f %% for %s (the latency baseline) before the fault",
				BrowserConns, ProbeTimeout, probeScheme(*a), a.VIP, appDomain(a), probeTLSNote(*a), ProbeInterval, SustainRatio*100, BaselineWindow), Where: "operator"},
			{ID: "inject", Title: fault, Where: "VIP holder", Commands: []string{faultCommand(v)}},
			{ID: "detect", Title: "poll the other app servers until one holds the VIP (keepalived MASTER): detection time", Where: hosts, Commands: []string{VIPProbeCmd}},
			{ID: "recover", Title: fmt.Sprintf("wait until the VIP answers again (first answer: the recovery time), probe %s more, then read the timeline: sustainably back (>= %.0f %% of the probes of the next %s answered), latency added after the failover (p50/p99 against the baseline) and requests over %s", VIPWatch, SustainRatio*100, SustainWindow, SlowThreshold), Where: "operator"},
			{ID: "heal", Title: "undo the fault (boot the machine / plug the link / start nginx) and wait until every app server runs keepalived and nginx", Where: "VIP holder", Commands: []string{"systemctl is-active keepalived.service nginx.service"}},
			{ID: "verify", Title: "exactly one app server holds the VIP", Where: hosts, Commands: []string{VIPProbeCmd}},
		}, nil
	case DBPrimary:
		nodes := strings.Join(inv.Database.Nodes, ", ")
		return []Step{
			{ID: "locate", Title: "find the primary: the data node that answers pg_is_in_recovery() = false (through an SSH tunnel from an app server; 5432 admits app servers only)", Where: nodes, Commands: []string{"SELECT pg_is_in_recovery()"}},
			{ID: "prepare", Title: "create the write-load table", Where: "primary", Commands: []string{CreateWritesSQL}},
			{ID: "load", Title: "start the write load through the multi-host writer URL (target_session_attrs=read-write); an id counts as acknowledged only when COMMIT returned OK", Where: "operator (tunnel via an app server)", Commands: []string{"BEGIN; " + InsertWriteSQL + "; COMMIT"}},
			{ID: "inject", Title: map[string]string{"kill": "kill the primary hard", "cut-link": "cut the primary's network link", "stop-service": "stop pg_auto_failover's keeper on the primary (it shuts PostgreSQL down)"}[v], Where: "primary", Commands: []string{faultCommand(v)}},
			{ID: "detect", Title: "poll the other data node until pg_is_in_recovery() = false (the monitor promoted it; it stays read-only until the old primary's demote timeout): detection time", Where: nodes, Commands: []string{"SELECT pg_is_in_recovery()"}},
			{ID: "recover", Title: "wait for the first acknowledged write after the fault: time to writable", Where: "operator"},
			{ID: "count", Title: "stop the load and count acknowledged writes missing on the new primary (synchronous: must be zero)", Where: "new primary", Commands: []string{"SELECT id FROM " + WritesTable + " WHERE id >= $1 AND id < $2"}},
			{ID: "heal", Title: "undo the fault; the old primary must rejoin as a replica", Where: "old primary"},
			{ID: "verify", Title: "exactly one data node is writable and the old primary is in recovery; the new primary has a streaming replica", Where: nodes, Commands: []string{"SELECT pg_is_in_recovery()", shellJoin(hostcmd.Psql(hostcmd.StreamingReplicasSQL))}},
		}, nil
	case Restore:
		repo := inv.Backup.Host
		steps := []Step{
			{ID: "backup", Title: "make sure the repository holds a backup (take a full one if it holds none; the corrupt variant always takes a fresh one)", Where: repo, Commands: []string{shellJoin(hostcmd.PgBackRestInfo(inv.Backup.Stanza)), "systemctl start " + hostcmd.FullBackupUnit}},
		}
		if v == "corrupt" {
			steps = append(steps,
				Step{ID: "baseline", Title: "verify the fresh full backup first: it must pass, so a failure after the corruption is the corruption's", Where: repo, Commands: []string{"systemctl start " + hostcmd.VerifyUnit, "cat " + VerifyResultFile}},
				Step{ID: "corrupt", Title: "corrupt one file of the latest backup on purpose (32 random bytes in the middle); refused while the standby database restores from the repository", Where: repo, Commands: []string{shellJoin(hostcmd.StandbyRestoreState()) + "   # on " + inv.Database.Standby + ", must not print running", "find " + hostcmd.PgBackRestRepo + "/backup/" + inv.Backup.Stanza + "/<latest label>/pg_data -type f -size +1k", "dd if=/dev/urandom of=<file> bs=1 count=32 seek=<size/2> conv=notrunc"}},
				Step{ID: "verify", Title: "run the restore verification: it must FAIL (corruption caught)", Where: repo, Commands: []string{"systemctl start " + hostcmd.VerifyUnit, "cat " + VerifyResultFile}},
				Step{ID: "heal", Title: "take a new full backup, expire the corrupted one, verify again: it must pass", Where: repo, Commands: []string{"systemctl start " + hostcmd.FullBackupUnit, shellJoin(hostcmd.PgBackRest(inv.Backup.Stanza, "--set=<corrupted label>", "expire")), "systemctl start " + hostcmd.VerifyUnit, "cat " + VerifyResultFile}},
			)
			return steps, nil
		}
		return append(steps, Step{ID: "verify", Title: "run the restore verification (restore the latest backup into a scratch instance, check the canary) and read its result: it must pass", Where: repo, Commands: []string{"systemctl start " + hostcmd.VerifyUnit, "cat " + VerifyResultFile}}), nil
	case Site:
		return []Step{
			{ID: "ready", Title: "the standby site is ready: the site switch's checks pass (a release on every standby app server, the standby database in recovery); apps with cells: pick up to " + fmt.Sprint(SiteShopsPerCell) + " mapped shops per cell from a primary router's mapping", Where: "standby site"},
			{ID: "load", Title: "write load on the primary site (a row every 100 ms, commit time recorded) for archive_timeout + 5 s before the fault", Where: "operator (tunnel via an app server)", Commands: []string{"SELECT setting FROM pg_settings WHERE name = 'archive_timeout'", "BEGIN; " + InsertWriteSQL + "; COMMIT"}},
			{ID: "archive", Title: "read the WAL archive lag on the primary (pg_stat_archiver.last_archived_time)", Where: "primary", Commands: []string{"SELECT now() - last_archived_time FROM pg_stat_archiver"}},
			{ID: "inject", Title: "partition the primary site away from the standby site", Where: "lab router", Commands: []string{faultCommand("partition")}},
			{ID: "switch", Title: "run the site switch to the standby site (`belay failover site --to standby`, steps below)", Where: "operator"},
			{ID: "verify", Title: "the apps answer from the standby site; the newest write present on the promoted standby gives the cross-site RPO; one more write there; apps with cells: every picked shop answers from its own cell through the standby router", Where: "standby site", Commands: []string{"SELECT max(at) FROM " + WritesTable, "BEGIN; " + InsertWriteSQL + "; COMMIT"}},
			{ID: "heal", Title: "end the partition", Where: "lab router", Commands: []string{"belay lab heal"}},
			{ID: "back", Title: "run the way back to the primary site (`belay failover site --to primary`, steps below)", Where: "operator"},
			{ID: "verify-back", Title: "every write the standby site held (one taken while it served included) is on the primary site again, and it takes writes; apps with cells: every picked shop answers from its own cell through the router VIP", Where: "primary site", Commands: []string{"SELECT id FROM " + WritesTable + " WHERE id >= $1 AND id < $2", "BEGIN; " + InsertWriteSQL + "; COMMIT"}},
		}, nil
	}
	return nil, fmt.Errorf("drill %q: unknown", k)
}

func faultCommand(v string) string {
	switch v {
	case "kill":
		return "belay lab fault kill <host>"
	case "cut-link":
		return "belay lab fault cut-link <host>"
	case "stop-nginx":
		return shellJoin(hostcmd.StopUnit(hostcmd.NginxUnit))
	case "stop-service":
		return shellJoin(hostcmd.StopUnit(hostcmd.PGAutoFailoverUnit))
	case "partition":
		return "belay lab fault partition"
	}
	return v
}

func shellJoin(argv []string) string { return failover.ShellLine(argv) }

func pickApp(inv *inventory.Inventory, name string) (*inventory.App, error) {
	if len(inv.Apps) == 0 {
		return nil, fmt.Errorf("inventory of stack %s lists no apps", inv.Stack)
	}
	if name == "" {
		return &inv.Apps[0], nil
	}
	if a := inv.App(name); a != nil {
		return a, nil
	}
	var names []string
	for _, a := range inv.Apps {
		names = append(names, a.Name)
	}
	sort.Strings(names)
	return nil, fmt.Errorf("--app %q: not in the inventory, expected one of %s", name, strings.Join(names, ", "))
}

func appDomain(a *inventory.App) string {
	if len(a.Domains) > 0 {
		return a.Domains[0]
	}
	return a.Name
}

// stepper runs a drill's steps by ID, printing progress, so code and plan stay one.
type stepper struct {
	drill string
	steps []Step
	out   io.Writer
	run   int
}

func (s *stepper) do(id, detail string, fn func() error) error {
	idx := -1
	for i, st := range s.steps {
		if st.ID == id {
			idx = i
		}
	}
	if idx < 0 {
		return fmt.Errorf("drill %s: step %q is not in its plan (a bug)", s.drill, id)
	}
	st := s.steps[idx]
	msg := st.Title
	if detail != "" {
		msg += " [" + detail + "]"
	}
	fmt.Fprintf(s.out, "drill %s run %d: step %d/%d %s: %s\n", s.drill, s.run, idx+1, len(s.steps), st.ID, msg)
	start := time.Now()
	err := fn()
	if err != nil {
		fmt.Fprintf(s.out, "drill %s run %d: step %s FAILED after %s: %v\n", s.drill, s.run, st.ID, time.Since(start).Round(time.Millisecond), err)
		return fmt.Errorf("step %s: %w", st.ID, err)
	}
	fmt.Fprintf(s.out, "drill %s run %d: step %s ok (%s)\n", s.drill, s.run, st.ID, time.Since(start).Round(time.Millisecond))
	return nil
}

func (s *stepper) note(format string, a ...any) {
	fmt.Fprintf(s.out, "drill %s run %d:   %s\n", s.drill, s.run, fmt.Sprintf(format, a...))
}

// StepTitles renders steps for Report.Steps.
func StepTitles(steps []Step) []string {
	out := make([]string, len(steps))
	for i, s := range steps {
		out[i] = s.String()
	}
	return out
}

// probeScheme is how the runbook names the probe of app a: an app with TLS
// is probed over HTTPS (SNI and Host its domain, chain verified) once its
// servers redirect there, over HTTP while they serve the placeholder.
func probeScheme(a inventory.App) string {
	if a.TLS != "" {
		return "https"
	}
	return "http"
}

func probeTLSNote(a inventory.App) string {
	if a.TLS != "" {
		return ", SNI the same, chain verified against --ca-file or the system roots; plain http while the servers serve the placeholder certificate"
	}
	return ""
}
