package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/belay-sh/belay/hostspec"
	"github.com/belay-sh/belay/roles"
	"github.com/belay-sh/belay/topology"
)

// UpOptions configures `belay lab up`.
type UpOptions struct {
	Paths Paths
	Stack StackInput
	// BelayBinary is copied into every machine as /usr/local/bin/belay (the CLI passes os.Executable).
	BelayBinary string
	// Progress receives one line per machine event; nil discards.
	Progress io.Writer
	Runner   Runner
	// Mirrors default to the host's APT sources.
	Mirrors *Mirrors
	// CloudInitTimeout bounds each machine's boot to "cloud-init done" (default 10 min).
	CloudInitTimeout time.Duration
}

// UpSummary is what `lab up` did (printed with --json).
type UpSummary struct {
	Stack        string           `json:"stack"`
	Image        string           `json:"image"`
	ImageCached  bool             `json:"imageCached"`
	ImageSeconds float64          `json:"imageSeconds"`
	AlreadyUp    bool             `json:"alreadyUp"`
	Seconds      float64          `json:"seconds"`
	Inventory    string           `json:"inventory"`
	KnownHosts   string           `json:"knownHosts"`
	AdminKey     string           `json:"adminKey"`
	Machines     []MachineSummary `json:"machines"`
	Removed      []string         `json:"removed,omitempty"`
}

// MachineSummary is one machine's outcome.
type MachineSummary struct {
	Name    string `json:"name"`
	Site    string `json:"site"`
	Address string `json:"address"`
	// Action is created, replaced (its inputs changed), started (it was stopped) or unchanged.
	Action    string  `json:"action"`
	CloudInit string  `json:"cloudInit"`
	Seconds   float64 `json:"seconds"`
	Error     string  `json:"error,omitempty"`
}

// Up brings the lab to the state the stack describes: image, network, one
// machine per server, each provisioned by its own cloud-init user data. Running
// it again with nothing changed is a no-op.
func Up(ctx context.Context, o UpOptions) (*UpSummary, error) {
	start := time.Now()
	if o.Runner == nil {
		o.Runner = ExecRunner{}
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.CloudInitTimeout == 0 {
		o.CloudInitTimeout = 10 * time.Minute
	}
	if err := Preflight(true); err != nil {
		return nil, err
	}
	if o.BelayBinary == "" {
		return nil, errors.New("lab up: no belay binary to put into the machines")
	}
	unlock, err := o.Paths.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()

	seed, err := ensureSeed(o.Paths)
	if err != nil {
		return nil, err
	}
	adminKey, err := ensureAdminKey(o.Paths)
	if err != nil {
		return nil, err
	}
	cfg, err := LoadStack(o.Stack, seed, adminKey)
	if err != nil {
		return nil, err
	}
	topo, err := topology.Plan(cfg)
	if err != nil {
		return nil, err
	}
	if err := checkPlan(topo, len(cfg.Apps)); err != nil {
		return nil, err
	}
	if err := checkCellVIPs(topo, len(cfg.Apps)); err != nil {
		return nil, err
	}
	env, err := hostspec.DefaultEnv(cfg, topo, true)
	if err != nil {
		return nil, err
	}
	specs, err := hostspec.Build(cfg, topo, StackName, env)
	if err != nil {
		return nil, err
	}
	inv, err := buildInventory(cfg, topo, StackName)
	if err != nil {
		return nil, err
	}
	var machines []MachineSpec
	for _, h := range topo.Hosts {
		ud, err := render(specs[h.Name])
		if err != nil {
			return nil, fmt.Errorf("user data of %s: %w", h.Name, err)
		}
		seg, err := SegmentFor(h.PrivateAddress)
		if err != nil {
			return nil, fmt.Errorf("host %s: %w", h.Name, err)
		}
		machines = append(machines, MachineSpec{Name: h.Name, Site: string(h.Site), Address: h.PrivateAddress, Segment: seg, UserData: ud,
			DataDisk: specs[h.Name].DataVolume != nil})
	}

	mirrors := o.Mirrors
	if mirrors == nil {
		m := DetectMirrors("/etc/apt")
		mirrors = &m
	}
	if _, err := os.Stat(filepath.Join(o.Paths.Cache, "images")); err != nil {
		fmt.Fprintln(o.Progress, "[image] building the lab image (first run: a few minutes; cached afterwards)")
	}
	img, err := EnsureImage(ctx, o.Paths, *mirrors, o.Progress)
	if err != nil {
		return nil, err
	}
	if !img.Cached {
		fmt.Fprintf(o.Progress, "[image] built %s in %.1fs\n", img.Key, img.Duration.Seconds())
	}
	binHash, err := fileHash(o.BelayBinary)
	if err != nil {
		return nil, fmt.Errorf("belay binary %s: %w", o.BelayBinary, err)
	}

	st, err := o.Paths.loadState()
	if err != nil {
		return nil, err
	}
	st.Stack = StackName
	if err := ensureNetwork(ctx, o.Runner, st); err != nil {
		return nil, err
	}

	sum := &UpSummary{Stack: StackName, Image: img.Key, ImageCached: img.Cached, ImageSeconds: img.Duration.Seconds(),
		Inventory: o.Paths.inventory(), KnownHosts: o.Paths.knownHosts(), AdminKey: o.Paths.adminKey()}

	// Machines no longer in the stack go first (their addresses may be reused).
	wanted := map[string]bool{}
	for _, m := range machines {
		wanted[m.Name] = true
	}
	var gone []string
	for name := range st.Machines {
		if !wanted[name] {
			gone = append(gone, name)
		}
	}
	sort.Strings(gone)
	for _, name := range gone {
		fmt.Fprintf(o.Progress, "[%s] not in the stack any more: removing\n", name)
		stopMachine(ctx, st.Machines[name].PID, name, 20*time.Second)
		if err := destroyMachine(ctx, o.Runner, o.Paths, name); err != nil {
			return nil, err
		}
		// Its data goes too: a lab host removed from the stack is not coming back.
		if err := removeDataDisk(ctx, o.Runner, o.Paths, name); err != nil {
			return nil, err
		}
		delete(st.Machines, name)
		sum.Removed = append(sum.Removed, name)
	}

	var mu sync.Mutex
	save := func() error {
		mu.Lock()
		defer mu.Unlock()
		return o.Paths.saveState(st)
	}
	results := make([]MachineSummary, len(machines))
	var wg sync.WaitGroup
	for i, m := range machines {
		wg.Add(1)
		go func(i int, m MachineSpec) {
			defer wg.Done()
			mu.Lock()
			prev := st.Machines[m.Name]
			mu.Unlock()
			results[i] = bringUp(ctx, o, img, m, m.hash(img.Key, binHash), prev, func(ms *MachineState) error {
				mu.Lock()
				if ms == nil {
					delete(st.Machines, m.Name)
				} else {
					st.Machines[m.Name] = ms
				}
				mu.Unlock()
				return save()
			})
		}(i, m)
	}
	wg.Wait()
	st.Image = img.Key
	if err := save(); err != nil {
		return nil, err
	}
	sum.Machines = results

	// The inventory and known_hosts are written even when a machine failed, so
	// `belay lab ssh` can be used to look at it.
	b, err := inv.Marshal()
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(o.Paths.inventory(), b, 0o644); err != nil {
		return nil, fmt.Errorf("lab inventory: %w", err)
	}
	if err := writeFileAtomic(o.Paths.knownHosts(), knownHosts(inv), 0o644); err != nil {
		return nil, fmt.Errorf("lab known_hosts: %w", err)
	}
	pruneImages(o.Paths, img.Key)

	sum.AlreadyUp = len(sum.Removed) == 0
	var failed []string
	for _, r := range results {
		if r.Action != "unchanged" {
			sum.AlreadyUp = false
		}
		if r.Error != "" {
			failed = append(failed, r.Error)
		}
	}
	sum.Seconds = time.Since(start).Seconds()
	if len(failed) > 0 {
		return sum, fmt.Errorf("lab up: %d of %d machines failed:\n%s", len(failed), len(machines), strings.Join(failed, "\n\n"))
	}
	return sum, nil
}

// checkPlan refuses address plans the lab cannot host: VIPs colliding with
// machines or with the lab's own router and host legs.
func checkPlan(topo *topology.Topology, apps int) error {
	used := map[netip.Addr]string{}
	for _, s := range Segments() {
		used[s.Router] = "the lab router"
		used[s.HostLeg] = "the deployer's leg"
	}
	for _, h := range topo.Hosts {
		if !LabCIDR.Contains(h.PrivateAddress) {
			return fmt.Errorf("host %s: address %s is outside the lab network %s", h.Name, h.PrivateAddress, LabCIDR)
		}
		if what, ok := used[h.PrivateAddress]; ok {
			return fmt.Errorf("host %s: address %s is %s (too many apps for the lab: use fewer --apps)", h.Name, h.PrivateAddress, what)
		}
		used[h.PrivateAddress] = "host " + h.Name
	}
	for i := 0; i < apps; i++ {
		vip, err := netip.ParseAddr(hostspec.LabVIP(i))
		if err != nil || !PrimaryCIDR.Contains(vip) {
			return fmt.Errorf("app %d: VIP %s is outside the primary site %s (too many apps for the lab: use fewer --apps)", i+1, hostspec.LabVIP(i), PrimaryCIDR)
		}
		if what, ok := used[vip]; ok {
			return fmt.Errorf("app %d: VIP %s is already %s (too many apps for the lab: use fewer --apps)", i+1, vip, what)
		}
		used[vip] = "a VIP"
	}
	return nil
}

// ensureNetwork creates the bridges and the router namespace unless they exist.
func ensureNetwork(ctx context.Context, r Runner, st *State) error {
	switch networkState() {
	case "up":
		return nil
	case "partial":
		for name, m := range st.Machines {
			if running(m.PID, name) {
				return fmt.Errorf("lab network is half there while machine %s runs; run `belay lab down` and `belay lab up` again", name)
			}
		}
		if err := runAll(ctx, r, networkDownCmds()); err != nil {
			return err
		}
	}
	if c, err := conflicts(); err != nil {
		return err
	} else if len(c) > 0 {
		return fmt.Errorf("lab: 10.213.0.0/24 is already in use on this host (%s); the lab needs it for itself", strings.Join(c, "; "))
	}
	if err := runAll(ctx, r, networkUpCmds()); err != nil {
		_ = runAll(ctx, r, networkDownCmds())
		return fmt.Errorf("lab network: %w", err)
	}
	return nil
}

// bringUp makes one machine match its spec and waits for its cloud-init.
func bringUp(ctx context.Context, o UpOptions, img *Image, m MachineSpec, hash string, prev *MachineState, record func(*MachineState) error) MachineSummary {
	t0 := time.Now()
	res := MachineSummary{Name: m.Name, Site: m.Site, Address: m.Address.String()}
	say := func(format string, a ...any) {
		fmt.Fprintf(o.Progress, "[%s] %s\n", m.Name, fmt.Sprintf(format, a...))
	}
	fail := func(err error) MachineSummary {
		res.Error = fmt.Sprintf("[%s] %v", m.Name, err)
		res.Seconds = time.Since(t0).Seconds()
		say("FAILED: %v", err)
		return res
	}
	d := o.Paths.dirs(m.Name)
	switch {
	case prev != nil && prev.UserDataHash == hash && running(prev.PID, m.Name):
		res.Action = "unchanged"
	case prev != nil && prev.UserDataHash == hash && mounted(d.root):
		res.Action = "started"
	case prev != nil:
		res.Action = "replaced"
	default:
		res.Action = "created"
	}
	if res.Action == "replaced" || (res.Action == "created" && dirExists(d.base)) {
		say("inputs changed: replacing")
		if prev != nil {
			stopMachine(ctx, prev.PID, m.Name, 20*time.Second)
		}
		if err := destroyMachine(ctx, o.Runner, o.Paths, m.Name); err != nil {
			return fail(err)
		}
		if err := record(nil); err != nil {
			return fail(err)
		}
	}
	if res.Action != "unchanged" {
		if res.Action != "started" {
			say("creating (%s on %s)", m.Address, m.Segment.Bridge)
			if err := prepareMachine(ctx, o.Runner, o.Paths, img.RootFS, m, o.BelayBinary); err != nil {
				return fail(err)
			}
		}
		// A replaced machine keeps its second disk, as a cloud server keeps its
		// volume: the role mounts the existing filesystem and formats nothing.
		var disk *DataDisk
		if m.DataDisk {
			var err error
			if disk, err = attachDataDisk(ctx, o.Runner, o.Paths, m.Name); err != nil {
				return fail(err)
			}
		}
		pid, err := startMachine(o.Paths, m, disk)
		if err != nil {
			return fail(err)
		}
		ms := &MachineState{Name: m.Name, Site: m.Site, Address: m.Address.String(), Bridge: m.Segment.Bridge, PID: pid, UserDataHash: hash, Created: time.Now().UTC(), DataDisk: disk}
		if prev != nil && res.Action == "started" {
			ms.Created = prev.Created
		}
		if err := record(ms); err != nil {
			return fail(err)
		}
		say("booting…")
		prev = ms
	}
	init, err := initPID(ctx, prev.PID, m.Name, 30*time.Second)
	if err != nil {
		return fail(fmt.Errorf("%w; console: %s", err, tailFile(d.console, 15)))
	}
	status, err := waitCloudInit(ctx, o.Runner, init, o.CloudInitTimeout)
	res.CloudInit = status
	res.Seconds = time.Since(t0).Seconds()
	if err != nil {
		return fail(fmt.Errorf("cloud-init %s: %w\n%s", status, err, cloudInitLogTail(d.root)))
	}
	if res.Action == "unchanged" {
		say("already up (cloud-init %s)", status)
	} else {
		say("cloud-init %s (%.1fs)", status, res.Seconds)
	}
	return res
}

// waitCloudInit blocks on `cloud-init status --wait` inside the machine and
// returns the final status (done, error, ...).
func waitCloudInit(ctx context.Context, r Runner, init int, timeout time.Duration) (string, error) {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	_, werr := r.Run(wctx, insideCmd(init, "cloud-init", "status", "--wait"))
	out, _ := r.Run(ctx, Cmd{Argv: insideCmd(init, "cloud-init", "status").Argv, IgnoreFail: true})
	status := parseCloudInitStatus(string(out))
	if wctx.Err() != nil {
		return "running", fmt.Errorf("not finished after %s", timeout)
	}
	if status != "done" {
		if werr == nil {
			werr = errors.New("finished with status " + status)
		}
		return status, werr
	}
	return status, nil
}

// parseCloudInitStatus picks the value of the "status:" line of `cloud-init status`.
func parseCloudInitStatus(out string) string {
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "status:"); ok {
			return strings.TrimSpace(v)
		}
	}
	if s := strings.TrimSpace(out); s != "" {
		return s
	}
	return "unknown"
}

// cloudInitLogTail is what a failed machine's report shows: cloud-init's
// warnings and errors, and the tail of the output log (what runcmd printed).
func cloudInitLogTail(root string) string {
	var b strings.Builder
	if data, err := os.ReadFile(filepath.Join(root, "var/log/cloud-init.log")); err == nil {
		var hits []string
		for _, line := range strings.Split(string(data), "\n") {
			if strings.Contains(line, "[WARNING]") || strings.Contains(line, "[ERROR]") || strings.Contains(line, "[CRITICAL]") {
				hits = append(hits, line)
			}
		}
		if len(hits) > 15 {
			hits = hits[len(hits)-15:]
		}
		if len(hits) > 0 {
			b.WriteString("  /var/log/cloud-init.log (warnings and errors):\n    " + strings.Join(hits, "\n    ") + "\n")
		}
	}
	b.WriteString("  /var/log/cloud-init-output.log (tail):\n    " + strings.ReplaceAll(tailFile(filepath.Join(root, "var/log/cloud-init-output.log"), 25), "\n", "\n    "))
	return b.String()
}

func dirExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// render is roles.Render; a variable so the lab's own tests can observe it.
var render = roles.Render
