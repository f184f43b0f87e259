package converge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/belay-sh/belay/converge"
	"github.com/belay-sh/belay/hostconverge"
	"github.com/belay-sh/belay/hostspec"
	"github.com/belay-sh/belay/internal/cli"
	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/lab"
	"github.com/belay-sh/belay/remote"
	"github.com/belay-sh/belay/roles"
	"github.com/belay-sh/belay/seedkeys"
	"github.com/belay-sh/belay/topology"
)

const (
	testSeed  = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	adminKey  = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIChIgJ6+x/s9NpdeqMrKwxxyCS68KL8HYo5XvJoE6jYu admin"
	secondKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl second"
)

// sourceFor builds the Source of the lab default stack after edit.
func sourceFor(t *testing.T, edit func(string) string) *Source {
	t.Helper()
	text := string(lab.DefaultStack())
	if edit != nil {
		text = edit(text)
	}
	file := filepath.Join(t.TempDir(), "stack.yaml")
	if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := lab.LoadStack(lab.StackInput{File: file}, testSeed, adminKey)
	if err != nil {
		t.Fatal(err)
	}
	topo, err := topology.Plan(cfg)
	if err != nil {
		t.Fatal(err)
	}
	env, err := hostspec.DefaultEnv(cfg, topo, true)
	if err != nil {
		t.Fatal(err)
	}
	specs, err := hostspec.Build(cfg, topo, lab.StackName, env)
	if err != nil {
		t.Fatal(err)
	}
	src := &Source{Stack: lab.StackName, Seed: testSeed, Specs: specs, Inv: &inventory.Inventory{Stack: lab.StackName}}
	for _, h := range topo.Hosts {
		src.Order = append(src.Order, h.Name)
		src.Inv.Hosts = append(src.Inv.Hosts, inventory.Host{Name: h.Name})
	}
	return src
}

// fleet is every host as a temp root running the real root helper; the
// runner stands in for SSH as the deploy user.
type fleet struct {
	mu     sync.Mutex
	roots  map[string]string
	owners map[string]map[string]string
	ran    map[string][]string
	fail   map[string]string // host -> command prefix that fails there
}

func newFleet(t *testing.T, src *Source) *fleet {
	t.Helper()
	f := &fleet{roots: map[string]string{}, owners: map[string]map[string]string{}, ran: map[string][]string{}, fail: map[string]string{}}
	key, err := seedkeys.ConvergeKey(testSeed, lab.StackName)
	if err != nil {
		t.Fatal(err)
	}
	jobs, _, err := prepare(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range jobs {
		root := t.TempDir()
		f.roots[j.name], f.owners[j.name] = root, map[string]string{}
		files := append(j.host.Files, converge.File{Path: roles.ConvergePubFile, Content: seedkeys.ConvergePublic(key) + "\n", Mode: 0o600, Owner: "root:root"})
		for _, fl := range files {
			p := filepath.Join(root, fl.Path)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(fl.Content), os.FileMode(fl.Mode)); err != nil {
				t.Fatal(err)
			}
			os.Chmod(p, os.FileMode(fl.Mode))
			f.owners[j.name][fl.Path] = fl.Owner
		}
		for _, d := range j.host.Dirs {
			os.MkdirAll(filepath.Join(root, d.Path), os.FileMode(d.Mode))
		}
	}
	return f
}

// RunInput is the deploy user's SSH session: exactly the sudoers command,
// the bundle on stdin.
func (f *fleet) RunInput(ctx context.Context, host, cmd string, stdin io.Reader) ([]byte, error) {
	if cmd != "sudo -n /usr/local/bin/belay host converge" {
		return nil, errors.New("unexpected command " + cmd)
	}
	wire, err := io.ReadAll(stdin)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	root, fail := f.roots[host], f.fail[host]
	f.mu.Unlock()
	o := hostconverge.Options{Root: root, Hostname: host,
		Run: func(_ context.Context, argv []string) (string, error) {
			c := strings.Join(argv, " ")
			f.mu.Lock()
			f.ran[host] = append(f.ran[host], c)
			f.mu.Unlock()
			if fail != "" && strings.HasPrefix(c, fail) {
				return "Error: syntax error", errors.New("exit status 1")
			}
			return "", nil
		},
		IDs: func(string) (int, int, error) { return os.Getuid(), os.Getgid(), nil },
		OwnerOf: func(p string, _ fs.FileInfo) string {
			f.mu.Lock()
			defer f.mu.Unlock()
			return f.owners[host][p]
		},
		UserExists: func(string) bool { return true },
	}
	var out bytes.Buffer
	res, aerr := hostconverge.Apply(ctx, wire, o)
	if aerr != nil {
		res.Error = aerr.Error()
	}
	json.NewEncoder(&out).Encode(res)
	if aerr != nil {
		return out.Bytes(), errors.New("Process exited with status 1")
	}
	return out.Bytes(), nil
}

func (f *fleet) Run(context.Context, string, string) ([]byte, error) {
	return nil, errors.New("converge sends bundles on stdin only")
}
func (f *fleet) RunRoot(context.Context, string, ...string) ([]byte, error) {
	return nil, errors.New("converge never runs commands as root directly")
}
func (f *fleet) DialTCP(context.Context, string, string) (net.Conn, error) {
	return nil, errors.New("no")
}
func (f *fleet) Forget(string) {}

func (f *fleet) read(t *testing.T, host, p string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(f.roots[host], p))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

type run struct {
	out, errOut bytes.Buffer
	held        int
	err         error
}

func runConverge(t *testing.T, src *Source, fl *fleet, args ...string) *run {
	t.Helper()
	r := &run{}
	f := &cli.Factory{IO: cli.IO{In: strings.NewReader(""), Out: &r.out, ErrOut: &r.errOut}, Getenv: func(string) string { return "" }}
	cmd := NewCmdConverge(f, func(ctx context.Context, o *Options) error {
		o.Source = func(context.Context, *Options) (*Source, error) { return src, nil }
		o.Connect = func(*inventory.Inventory) (Runner, func(), error) { return fl, func() {}, nil }
		o.Hold = func(ctx context.Context, _ remote.Runner, _ *inventory.Inventory, _ io.Writer) (context.Context, func(), error) {
			r.held++
			return ctx, func() {}, nil
		}
		o.Now = time.Now
		return Run(ctx, o)
	})
	cmd.SetArgs(args)
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	r.err = cmd.Execute()
	return r
}

func addKey(s string) string {
	return strings.Replace(s, "    deployUser: deploy\n", "    deployUser: deploy\n    sshKeys: [\""+secondKey+"\"]\n", 1)
}

func TestConvergeAdminKeyTouchesOnlyAuthorizedKeys(t *testing.T) {
	fl := newFleet(t, sourceFor(t, nil))
	src := sourceFor(t, addKey)
	r := runConverge(t, src, fl, "--json", "--parallel", "8")
	if r.err != nil {
		t.Fatalf("%v\n%s\n%s", r.err, r.out.String(), r.errOut.String())
	}
	var rep Report
	if err := json.Unmarshal(r.out.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if !rep.OK || len(rep.Hosts) != 8 || r.held != 1 {
		t.Fatalf("report ok=%v hosts=%d leases held=%d", rep.OK, len(rep.Hosts), r.held)
	}
	for _, h := range rep.Hosts {
		if h.Status != StatusChanged || len(h.Changes) != 1 || h.Changes[0].Path != "/home/deploy/.ssh/authorized_keys" {
			t.Errorf("%s: %s %+v, expected only authorized_keys", h.Host, h.Status, h.Changes)
		}
		if len(fl.ran[h.Host]) != 0 {
			t.Errorf("%s: ran %q; a key change reloads nothing", h.Host, fl.ran[h.Host])
		}
		if !strings.Contains(fl.read(t, h.Host, "/home/deploy/.ssh/authorized_keys"), "AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl") {
			t.Errorf("%s: key not written", h.Host)
		}
	}
	// Converged: a second run changes nothing.
	r = runConverge(t, src, fl, "--json")
	var again Report
	json.Unmarshal(r.out.Bytes(), &again)
	for _, h := range again.Hosts {
		if h.Status != StatusUnchanged {
			t.Errorf("second run: %s %s", h.Host, h.Status)
		}
	}
}

func TestConvergeDryRunShowsMaskedDiffAndChangesNothing(t *testing.T) {
	base := sourceFor(t, nil)
	fl := newFleet(t, base)
	src := sourceFor(t, func(s string) string {
		return strings.Replace(s, "    deployUser: deploy\n", "    deployUser: deploy\n    sshCidrs: [\"198.51.100.0/24\"]\n", 1)
	})
	before := fl.read(t, "db-1", "/etc/nftables.conf")
	r := runConverge(t, src, fl, "--dry-run")
	if r.err != nil {
		t.Fatalf("%v\n%s", r.err, r.errOut.String())
	}
	out := r.out.String()
	if !strings.Contains(out, "+++ b/etc/nftables.conf") || !strings.Contains(out, "198.51.100.0/24") || !strings.Contains(out, "# then: nft -c -f /etc/nftables.conf; nft -f /etc/nftables.conf") {
		t.Errorf("dry run output lacks the firewall diff and its plan:\n%s", out)
	}
	if fl.read(t, "db-1", "/etc/nftables.conf") != before || r.held != 0 {
		t.Error("dry run changed a file or took the leases")
	}
	for h, ran := range fl.ran {
		if len(ran) != 0 {
			t.Errorf("%s: dry run ran %q", h, ran)
		}
	}
	// Nothing secret in a dry run, even of every file at once (all hosts' files created).
	empty := newFleet(t, base)
	for h, root := range empty.roots {
		os.RemoveAll(filepath.Join(root, "etc"))
		os.RemoveAll(filepath.Join(root, "usr"))
		os.MkdirAll(filepath.Join(root, filepath.Dir(roles.ConvergePubFile)), 0o755)
		key, _ := seedkeys.ConvergeKey(testSeed, lab.StackName)
		os.WriteFile(filepath.Join(root, roles.ConvergePubFile), []byte(seedkeys.ConvergePublic(key)+"\n"), 0o600)
		_ = h
	}
	r = runConverge(t, base, empty, "--dry-run")
	for name, spec := range base.Specs {
		for _, s := range converge.SpecSecrets(spec) {
			for _, line := range strings.Split(s, "\n") {
				if len(line) >= 8 && !strings.HasPrefix(line, "-----") && strings.Contains(r.out.String(), line) {
					t.Errorf("%s: a secret is in the dry-run output: %q", name, line)
				}
			}
		}
	}
}

func TestConvergeFailedCheckStopsAndRestores(t *testing.T) {
	fl := newFleet(t, sourceFor(t, nil))
	src := sourceFor(t, func(s string) string {
		return strings.Replace(s, "    deployUser: deploy\n", "    deployUser: deploy\n    sshCidrs: [\"198.51.100.0/24\"]\n", 1)
	})
	failing := src.Order[2]
	fl.fail[failing] = "nft -c"
	before := fl.read(t, failing, "/etc/nftables.conf")
	r := runConverge(t, src, fl, "--json", "--parallel", "1")
	var ee cli.ExitError
	if !errors.As(r.err, &ee) || ee.Code != 1 {
		t.Fatalf("err = %v, expected exit status 1", r.err)
	}
	var rep Report
	if err := json.Unmarshal(r.out.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.OK {
		t.Error("report ok after a failure")
	}
	for i, h := range rep.Hosts {
		want := StatusChanged
		switch {
		case i == 2:
			want = StatusFailed
		case i > 2:
			want = StatusNotStarted
		}
		if h.Status != want {
			t.Errorf("%s: %s, expected %s", h.Host, h.Status, want)
		}
	}
	if f := rep.Hosts[2]; !f.Restored || !strings.Contains(f.Error, "nft -c") {
		t.Errorf("failed host: %+v", f)
	}
	if fl.read(t, failing, "/etc/nftables.conf") != before {
		t.Error("failed host keeps the new firewall")
	}
	for _, c := range fl.ran[failing] {
		if strings.HasPrefix(c, "nft -f") {
			t.Errorf("failed host loaded the firewall: %q", fl.ran[failing])
		}
	}
}

// TestConvergeSkipsHostsOnlyOnOneSide: a host the config has but the
// inventory not (a new app's server) and the reverse are reported, untouched,
// and do not fail the run.
func TestConvergeSkipsHostsOnlyOnOneSide(t *testing.T) {
	src := sourceFor(t, nil)
	fl := newFleet(t, src)
	src.Inv.Hosts = append(src.Inv.Hosts[1:], inventory.Host{Name: "old-app-1"})
	r := runConverge(t, src, fl, "--json")
	if r.err != nil {
		t.Fatalf("%v\n%s", r.err, r.errOut.String())
	}
	var rep Report
	if err := json.Unmarshal(r.out.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	skipped := map[string]bool{}
	for _, h := range rep.Hosts {
		if h.Status == StatusSkipped {
			skipped[h.Host] = true
		}
	}
	if !skipped[src.Order[0]] || !skipped["old-app-1"] || len(skipped) != 2 || !rep.OK {
		t.Errorf("skipped %v ok %v", skipped, rep.OK)
	}
}
